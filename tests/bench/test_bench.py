"""`fewtune bench` and `fewtune report` end to end on the tiny random backbone, plus the pieces:
the draws every method shares, resuming, failures, determinism, paired tests and the report files.

Runs happen in real worker processes (`python -m fewtune.bench.worker`), as they do for users;
one benchmark is run once per module and its output shared by the tests that read it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from fewtune.bench.plan import DataSource, Variant, check_variant, data_source, held_out_rows, parse_variant, plan_runs
from fewtune.bench.records import load_runs
from fewtune.bench.stats import format_mean_std, paired_tests, sign_flip_p
from fewtune.cli import main
from fewtune.errors import DataError, FewtuneError

from tests.helpers import synthetic
from tests.helpers.files import write_csv

CLASSES = ("negative", "positive", "neutral")


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench_data")
    train = write_csv(folder / "reviews.csv", zip(*synthetic.make(CLASSES, 8)))
    test = write_csv(folder / "reviews_test.csv", zip(*synthetic.held_out(CLASSES, 8)))
    return train, test


def bench_args(data_files, st_folder, out: Path, *extra: str) -> list[str]:
    train, test = data_files
    return ["bench", "--dataset", str(train), "--test", str(test), "--backbone", str(st_folder),
            # head_c=1: a fixed head; the default's fold bodies would train 4 more setfits a run
            "--methods", "linear-probe,setfit:steps=4,batch_size=8,head_c=1", "--baselines", "majority,setfit-lib",
            "--shots", "2,4", "--seeds", "2", "--max-tokens", "16", "--out", str(out), "--quiet", "--json", *extra]


@pytest.fixture(scope="module")
def first_run(data_files, st_folder, tmp_path_factory):
    """One benchmark: 2 methods + majority, K = 2 and 4, 2 seeds, and one variant that must fail."""
    out = tmp_path_factory.mktemp("bench") / "runs.jsonl"
    code = main(bench_args(data_files, st_folder, out, "--variant", "linear-probe:head_c=-1", "--no-report"))
    return out, code


def summary(capfd) -> dict:
    return json.loads(capfd.readouterr().out)


def test_every_run_is_recorded_with_its_scores(first_run):
    out, code = first_run
    records = load_runs(out)
    assert code == 1  # the failing variant
    # 2 K × 2 seeds × (linear-probe, setfit, majority); setfit-lib skipped: .venv has no setfit.
    assert len(records) == 12
    assert {r["method"] for r in records} == {"linear-probe", "setfit", "majority"}
    for r in records:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and r["nll"] > 0 and 0 <= r["brier"] <= 2
        assert r["n_train"] == 3 * r["K"] and r["n_test"] == 24
        assert sum(b["n"] for b in r["reliability"]) == r["n_test"]
        assert r["train_seconds"] >= 0 and r["peak_rss_mb"] > 0 and r["versions"]["fewtune"]
        assert r["max_tokens"] == 16  # applied to every method that reads text, skipped by majority
        if r["method"] != "majority":
            assert r["train_info"]["params_resolved"]["max_tokens"] == 16
    assert any("setfit-lib skipped" in n for n in records[0]["notes"])


def test_the_words_are_learned_above_chance(first_run):
    records = load_runs(first_run[0])
    lp = [r["accuracy"] for r in records if r["method"] == "linear-probe" and r["K"] == 4]
    majority = [r["accuracy"] for r in records if r["method"] == "majority"]
    assert min(lp) > 0.5 > max(majority)  # 3 balanced classes: majority is chance (1/3)


def test_every_method_sees_the_same_draw(first_run):
    records = load_runs(first_run[0])
    by_split = {}
    for r in records:
        by_split.setdefault((r["K"], r["seed"]), set()).add((r["split_sha"], r["texts_sha"]))
    assert all(len(shas) == 1 for shas in by_split.values())
    assert len({next(iter(s)) for s in by_split.values()}) == 4  # and each (K, seed) its own draw


def test_a_failed_run_is_logged_and_the_others_go_on(first_run):
    out, _ = first_run
    failed = [json.loads(line) for line in out.with_suffix(".failed.jsonl").read_text().splitlines()]
    assert len(failed) == 4 and all("head_c" in f["key"] for f in failed)
    assert "head_c" in failed[0]["error"]


def test_resume_skips_finished_runs(first_run, data_files, st_folder, capfd):
    out, _ = first_run
    before = out.read_text()
    capfd.readouterr()
    assert main(bench_args(data_files, st_folder, out, "--no-report")) == 0
    result = summary(capfd)
    assert result["skipped"] == 12 and result["done"] == 0
    assert out.read_text() == before


def test_same_seed_same_numbers_with_two_jobs(first_run, data_files, st_folder, tmp_path, capfd):
    """Determinism: a second benchmark, two runs at a time, gives the same predictions run by run."""
    again = tmp_path / "again.jsonl"
    capfd.readouterr()
    assert main(bench_args(data_files, st_folder, again, "--jobs", "2", "--no-report")) == 0
    assert summary(capfd)["done"] == 12
    first = {r["key"]: r for r in load_runs(first_run[0])}
    second = {r["key"]: r for r in load_runs(again)}
    assert first.keys() == second.keys()
    for key, r in second.items():
        assert r["torch_threads"] == 1 and r["jobs"] == 2
        assert r["predictions_sha"] == first[key]["predictions_sha"], key
        assert r["accuracy"] == first[key]["accuracy"]
        assert math.isclose(r["nll"], first[key]["nll"], rel_tol=1e-3)


def test_report_writes_markdown_html_and_plots(first_run, tmp_path, capfd):
    out, _ = first_run
    capfd.readouterr()
    assert main(["report", str(out), "--out-dir", str(tmp_path / "rep"), "--json",
                 "--compare", "linear-probe:majority"]) == 0
    written = summary(capfd)
    md = Path(written["markdown"]).read_text()
    page = Path(written["html"]).read_text()
    assert len(written["plots"]) >= 4 and all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in written["plots"])
    # The markdown links the PNGs beside it; the HTML carries them inside.
    for p in written["plots"]:
        assert f"]({Path(p).name})" in md
    assert page.count("data:image/png;base64,") == len(written["plots"]) and "src='http" not in page
    # The paired comparison asked for, with its three p-values, on 2 seeds at each K.
    rows = [line for line in md.splitlines() if line.startswith("| reviews | ") and "| linear-probe | majority |" in line]
    assert len(rows) == 2 and all(line.count("|") == 13 for line in rows)
    lp4 = [r["accuracy"] for r in load_runs(out) if r["method"] == "linear-probe" and r["K"] == 4]
    assert f"{100 * sum(lp4) / 2:.1f} ± " in md


@pytest.mark.parametrize("engine", [[], ["--ray", "local"]], ids=["local", "ray"])
def test_a_run_past_the_timeout_is_killed_and_recorded(data_files, st_folder, tmp_path, capfd, engine):
    if engine:
        pytest.importorskip("ray")
    out = tmp_path / "slow.jsonl"
    args = bench_args(data_files, st_folder, out, "--run-timeout", "1", "--no-report", *engine)
    args[args.index("--shots") + 1], args[args.index("--seeds") + 1] = "2", "1"
    args[args.index("--methods") + 1], args[args.index("--baselines") + 1] = "linear-probe", ""
    assert main(args) == 1
    assert summary(capfd)["failed"] == 1 and not out.exists()
    failed = json.loads(out.with_suffix(".failed.jsonl").read_text())
    assert failed["error"].startswith("killed after the run timeout")


def test_an_interrupt_stops_the_workers_and_keeps_finished_runs(data_files, st_folder, tmp_path):
    from fewtune.bench.runner import run_all

    source = data_source(str(data_files[0]), test_path=str(data_files[1]))
    runs = plan_runs([source], [2], [0, 1, 2], [Variant("linear-probe")], max_test=10, backbone=str(st_folder))
    seen = []

    def on_event(kind, run, record, why):
        if kind == "done":
            seen.append(run["key"])
            if len(seen) == 1:
                raise KeyboardInterrupt  # as Ctrl-C would, between runs

    out = tmp_path / "runs.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_all(runs, out, on_event=on_event)
    assert [r["key"] for r in load_runs(out)] == seen  # the finished run is on disk, nothing else
    assert run_all(runs, out)["skipped"] == 1  # and a restart resumes after it


def test_report_of_an_empty_file_is_a_clear_error(tmp_path, capfd):
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    assert main(["report", str(empty)]) == 2
    assert "no finished runs" in capfd.readouterr().err


def test_plan_gives_each_seed_its_own_draw_and_all_methods_the_same(data_files):
    source = data_source(str(data_files[0]), test_path=str(data_files[1]))
    runs = plan_runs([source], [2], [0, 1], [Variant("majority"), Variant("linear-probe", {"head_c": 10})],
                     max_test=10)
    assert [(r["seed"], r["method"]) for r in runs] == [(0, "majority"), (0, "linear-probe"),
                                                         (1, "majority"), (1, "linear-probe")]
    assert runs[0]["train_idx"] == runs[1]["train_idx"] != runs[2]["train_idx"]
    assert runs[0]["test_idx"] == runs[2]["test_idx"] and len(runs[0]["test_idx"]) == 10
    assert len({r["key"] for r in runs}) == 4
    assert runs == plan_runs([source], [2], [0, 1], [Variant("majority"), Variant("linear-probe", {"head_c": 10})],
                             max_test=10)


def test_a_key_names_the_encoder_unless_it_is_the_one_old_keys_meant(data_files):
    # Committed records from before me5-small became the default have keys without a backbone and
    # were measured on minilm: a run on today's default must not resume from them.
    source = data_source(str(data_files[0]), test_path=str(data_files[1]))
    variants = [Variant("setfit"), Variant("prompt"), Variant("setfit-lib")]
    keys = [r["key"] for r in plan_runs([source], [2], [0], variants, max_test=10)]
    assert keys[0].endswith("|backbone=me5-small") and keys[2].endswith("|backbone=me5-small")
    assert "backbone=" not in keys[1]  # label-word methods kept their default (smollm2-135m)
    keys = [r["key"] for r in plan_runs([source], [2], [0], variants, max_test=10, backbone="minilm")]
    assert all(k.endswith("|backbone=minilm") for k in keys)


def test_a_file_without_a_test_file_holds_out_a_fixed_share_of_each_class(data_files):
    pool, test = DataSource.from_dict(data_source(str(data_files[0])).to_dict()).load()
    assert len(test) == 9 and len(pool) == 15  # ceil(0.3 × 8) = 3 of each of 3 classes
    assert sorted(set(test.labels)) == sorted(CLASSES)
    assert not set(pool.texts) & set(test.texts)
    assert held_out_rows(["a"] * 5 + ["b"] * 5, 0.3) == held_out_rows(["a"] * 5 + ["b"] * 5, 0.3)


def test_more_shots_than_a_class_has_names_the_file(data_files):
    source = data_source(str(data_files[0]), test_path=str(data_files[1]))
    with pytest.raises(DataError, match=r"reviews\.csv: K=9: class .* fewer than the 9 shots"):
        plan_runs([source], [9], [0], [Variant("majority")], max_test=10)


def test_bad_requests_are_one_line_errors(data_files, capfd):
    assert main(["bench", "--dataset", "no-such-data", "--quiet"]) == 2
    assert "neither a built-in data set" in capfd.readouterr().err
    assert main(["bench", "--dataset", "mr", "--methods", "no-such-method", "--quiet"]) == 2
    assert "no-such-method is not a fewtune method" in capfd.readouterr().err
    assert main(["bench", "--dataset", "mr", "--methods", "setfit:nope=1", "--quiet"]) == 2
    assert "setfit has no parameter nope" in capfd.readouterr().err
    assert main(["bench", "--dataset", "mr", "--shots", "4,x", "--quiet"]) == 2
    assert "--shots must be whole numbers" in capfd.readouterr().err
    assert main(["bench", "--dataset", "mr", "--seeds", "0", "--quiet"]) == 2
    assert "give at least 1" in capfd.readouterr().err
    assert main(["bench", "--dataset", "mr", "--methods", "setfit-lib", "--quiet"]) == 2
    assert "no setfit package" in capfd.readouterr().err


def test_variants_parse_json_values():
    assert parse_variant("setfit:l2sp=1,select=cv,head=logistic") == Variant(
        "setfit", {"l2sp": 1, "select": "cv", "head": "logistic"})
    with pytest.raises(FewtuneError, match="is not KEY=VALUE"):
        parse_variant("setfit:l2sp")
    assert check_variant(Variant("setfit", {"select": "grid"}), {"setfit": ["l2sp"]}) == "setfit: select must be 'cv' or 'evidence'"
    assert check_variant(Variant("setfit", {"posterior": "laplace", "calibrate": "temperature"}), {"setfit": []}) is None


def test_format_mean_std_is_exact_on_rounding_ties():
    assert format_mean_std([]) == "" and format_mean_std([0.5]) == "50.0"
    assert format_mean_std([0.5, 0.7]) == "60.0 ± 14.1"
    assert format_mean_std([1.25, 1.5], 1, 3) == "1.375 ± 0.177"
    # These accuracies' mean is a rounding tie: numpy's float sum lands below it ("61.7"), the exact mean not.
    assert format_mean_std([0.634, 0.588, 0.636, 0.612]) == "61.8 ± 2.2"


def test_paired_tests_against_known_values():
    from scipy import stats

    a, b = [0.61, 0.64, 0.66, 0.60, 0.70], [0.58, 0.60, 0.61, 0.62, 0.64]
    t = paired_tests(a, b)
    assert t["wins"] == 4 and t["losses"] == 1 and math.isclose(t["mean_diff"], 0.032)
    assert math.isclose(t["t_p"], stats.ttest_rel(a, b).pvalue)
    # Signs of (+.03, +.04, +.05, −.02, +.06): flips with |sum| ≥ .16 are ±(all as given) and
    # ±(the −.02 flipped too), 4 of 32.
    assert math.isclose(sign_flip_p([x - y for x, y in zip(a, b)]), 4 / 32)
    assert sign_flip_p([1, 1, 1, 1, 1]) == 2 / 32
    # Above 16 seeds: 20,000 seeded sign draws, close to the exact enumeration of all 2^18.
    import itertools

    import numpy as np

    diffs = np.random.default_rng(3).normal(0.01, 0.03, size=18)
    signs = np.array(list(itertools.product((1, -1), repeat=18)))
    exact = np.mean(np.abs(signs @ diffs) >= abs(diffs.sum()) - 1e-12)
    assert abs(sign_flip_p(list(diffs)) - exact) < 0.01 and sign_flip_p(list(diffs)) == sign_flip_p(list(diffs))
    same = paired_tests([0.5, 0.6], [0.5, 0.6])
    assert same["t_p"] == same["wilcoxon_p"] == same["sign_flip_p"] == 1.0
    assert math.isnan(paired_tests([0.5], [0.4])["t_p"])


def test_a_relative_interpreter_path_reaches_the_workers(data_files, st_folder, tmp_path, monkeypatch, capfd):
    # The workers start in a folder of their own: a relative --python must still name the same interpreter.
    import os
    import sys

    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(os.path.abspath(sys.executable))
    train, test = data_files
    capfd.readouterr()
    assert main(["bench", "--dataset", str(train), "--test", str(test), "--backbone", str(st_folder),
                 "--methods", "linear-probe", "--baselines", "", "--shots", "2", "--seeds", "1", "--python", relative,
                 "--out", str(tmp_path / "runs.jsonl"), "--quiet", "--json", "--no-report"]) == 0
    assert summary(capfd)["done"] == 1


def test_ray_runs_give_the_local_runners_records_hash_for_hash(first_run, data_files, st_folder, tmp_path, capfd):
    """A local Ray (this machine's cores) runs the same plan: every run's predictions_sha and scores equal
    the local runner's; the failing variant lands in the failure log there too; a rerun resumes."""
    pytest.importorskip("ray")
    local_out, _ = first_run
    out = tmp_path / "ray.jsonl"
    args = bench_args(data_files, st_folder, out, "--variant", "linear-probe:head_c=-1", "--no-report", "--ray", "local")
    assert main(args) == 1
    local = {r["key"]: r for r in load_runs(local_out)}
    ray_runs = {r["key"]: r for r in load_runs(out)}
    assert set(ray_runs) == set(local) and len(ray_runs) == 12
    for key, record in ray_runs.items():
        assert record["predictions_sha"] == local[key]["predictions_sha"], key
        assert record["accuracy"] == local[key]["accuracy"] and record["split_sha"] == local[key]["split_sha"]
        assert record["engine"] == "ray (local)"
    assert len(out.with_suffix(".failed.jsonl").read_text().splitlines()) == 4
    capfd.readouterr()
    assert main(args) == 1  # resumed: only the failed runs are tried again
    assert summary(capfd)["skipped"] == 12


def test_ray_and_python_together_are_one_line(data_files, st_folder, tmp_path, capfd):
    assert main(bench_args(data_files, st_folder, tmp_path / "r.jsonl", "--ray", "local", "--python", sys.executable)) == 2
    assert "--python applies to the local runner" in capfd.readouterr().err


def test_run_in_fresh_processes_gives_each_case_its_childs_last_json_and_where_it_ran(tmp_path):
    """A benchmark script as benchmarks/ writes them: parse_or_run_one's options in the parent, which runs each case
    as `SCRIPT --one ARGS` in a process of its own and writes the rows."""
    import os
    import subprocess
    import sys

    import numpy as np

    script = tmp_path / "bench.py"
    script.write_text(
        "import argparse, os\n"
        "from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes\n"
        "def one(arg, n):\n"
        "    print('a note first')\n"
        "    return {'arg': arg, 'n': int(n), 'pid': os.getpid()}\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--out')\n"
        "args = parse_or_run_one(parser, one, 2)\n"
        "if args is not None:\n"
        "    print('parent', os.getpid())\n"
        "    run_in_fresh_processes(__file__, [({'case': 1}, ['x', '1']), ({'case': 2}, ['y', '2'])], args.out, 'numpy')\n")
    out = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, str(script), "--out", str(out)], capture_output=True, text=True, check=True)
    printed = done.stdout.splitlines()
    parent = int(printed[0].split()[1])
    rows = [json.loads(line) for line in printed[1:]]  # each child's last line, with its case, as it finished
    assert [(r["case"], r["arg"], r["n"]) for r in rows] == [(1, "x", 1), (2, "y", 2)]
    assert len({r["pid"] for r in rows} | {parent}) == 3  # a process of its own each
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["arg"] for w in written] == ["x", "y"]
    assert written[0]["versions"] == {"numpy": np.__version__} and written[0]["machine"]["cpu_count"] == os.cpu_count()
    assert "load_avg_1min_before" in written[0] and "fewtune_git" in written[0]
