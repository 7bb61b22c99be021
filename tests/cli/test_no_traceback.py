"""No traceback, ever: every option is checked before a model loads, the OS's refusals and bugs are one
line, and a property-based run of `fewtune train` over option values and file contents never ends in
a traceback or leaves a partial output behind."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import synthetic
from tests.helpers.cli import run_cli
from tests.helpers.fast import FAST_SETFIT, as_options
from tests.helpers.files import write_csv
from tests.helpers.reviews import tree

FAST = as_options({**FAST_SETFIT, "steps": 2})


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("shots") / "shots.csv", zip(*synthetic.make(per_class=8)))


def one_line_error(r, *fragments: str, code: int = 2) -> str:
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err and len(r.err_lines) == 1, r.err
    for fragment in fragments:
        assert fragment in r.err_lines[0], r.err_lines[0]
    return r.err_lines[0]


def test_an_output_under_a_file_is_refused_before_training(shots, st_folder, tmp_path, capfd):
    (tmp_path / "afile").write_text("x")
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, *FAST, "-o", tmp_path / "afile" / "model")
    one_line_error(r, "is a file, not a folder")
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, *FAST, "-o", tmp_path / "afile",
                "--overwrite")
    one_line_error(r, "is a file, not a model folder")


@pytest.mark.parametrize("args, fragment", [
    (["--max-test", "-5"], "--max-test must be 0 (all) or more"),
    (["--device", "tpu9"], "not a device"),
    (["-p", "head_c=-1"], "head_c must not be negative"),
    (["-p", "encode_batch_size=0"], "encode_batch_size must be at least"),
    (["-p", "max_tokens=-5"], "max_tokens must not be negative"),
])
def test_bad_values_are_one_line_before_any_model_loads(shots, st_folder, capfd, args, fragment):
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, *FAST, *args)
    one_line_error(r, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_torch_is_one_line(shots, st_folder, capfd):
    one_line_error(run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, "--device", "cuda"),
                   "sees no CUDA GPU")


def test_evaluate_refuses_a_negative_max_test(capfd, tmp_path):
    one_line_error(run_cli(capfd, "evaluate", tmp_path, "--dataset", "mr", "--max-test", "-1"), "--max-test")


def test_a_refusal_of_the_os_is_one_line(shots, st_folder, capfd, monkeypatch):
    import fewtune.experiment

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/model")

    monkeypatch.setattr(fewtune.experiment, "run", denied)
    one_line_error(run_cli(capfd, "train", "--data", shots), "/somewhere/model: Permission denied")


def test_a_bug_is_one_line_and_debug_shows_the_traceback(shots, capfd, monkeypatch):
    import fewtune.experiment

    monkeypatch.setattr(fewtune.experiment, "run", lambda *a, **k: {}["missing"])
    one_line_error(run_cli(capfd, "train", "--data", shots), "unexpected KeyError", "--debug", code=1)
    with pytest.raises(KeyError):
        run_cli(capfd, "--debug", "train", "--data", shots)


def test_saved_files_get_the_process_umask_not_0600(shots, st_folder, tmp_path, capfd):
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, *FAST, "-o", tmp_path / "m", "-q")
    assert r.code == 0, r.err
    mask = os.umask(0)
    os.umask(mask)
    for path in (tmp_path / "m").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


# --- property-based: any options, any file --------------------------------------------------------
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
files = st.one_of(
    st.lists(st.tuples(cell, st.sampled_from(["pos", "neg", "0", "1", ""])), max_size=12),  # arbitrary rows
    st.just(list(zip(*synthetic.make(per_class=8)))),  # a good file
)
options = st.fixed_dictionaries({}, optional={
    "--shots": st.integers(-1, 9).map(str), "--max-test": st.integers(-2, 4).map(str),
    "--seed": st.integers(0, 3).map(str), "--method": st.sampled_from(["setfit", "linear-probe", "majority", "nope"]),
    "--device": st.sampled_from(["cpu", "tpu9", "cuda:7"]), "--select": st.sampled_from(["cv", "nope"]),
    "--cv-folds": st.integers(0, 3).map(str), "--label-col": st.sampled_from(["label", "text", "missing"]),
    "--posterior": st.sampled_from(["laplace", "nope"]), "--class-prior": st.sampled_from(["pos=2", "x=1", "bad"]),
})
params = st.lists(st.sampled_from(["steps=-1", "steps=2", "batch_size=0", "head_c=-1", "head_c=0.5",
                                   "max_tokens=-5", "max_tokens=16", "max_seq_length=16", "nope=1", "steps=x"]),
                max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=files, opts=options, extra=params, out=st.sampled_from(["model", "afile/model", None]))
def test_train_never_ends_in_a_traceback_or_leaves_a_partial_output(st_folder, tmp_path_factory, capfd, rows, opts,
                                                                    extra, out):
    work = tmp_path_factory.mktemp("fuzz")
    data = write_csv(work / "d.csv", rows)
    (work / "afile").write_text("x")
    before = tree(work)
    args = ["train", "--data", data, "--backbone", st_folder, "-p", "steps=2", "-q", "--max-test", "8"]
    for key, value in opts.items():
        args += [key, value]
    for item in extra:
        args += ["-p", item]
    if out is not None:
        args += ["-o", work / out]
    r = run_cli(capfd, *args)
    assert "Traceback" not in r.err, r.err
    assert r.code in (0, 2), (r.code, r.err)
    if r.code == 2:  # one error line, last; warnings about the data may come before it
        assert r.err_lines[-1].startswith("error: "), r.err
        assert all(line.startswith("warning: ") for line in r.err_lines[:-1]), r.err
        assert tree(work) == before  # nothing half-written, no hidden temporary folder left


# --- labels the model does not know; labels that mix numbers and words --------------------------
def test_scoring_on_unknown_labels_is_an_error_unless_allowed(shots, st_folder, tmp_path, capfd):
    texts, _ = synthetic.held_out(per_class=8)
    numbered = write_csv(tmp_path / "test.csv", [(t, i % 2) for i, t in enumerate(texts)])  # 0/1, not words
    args = ["train", "--data", shots, "--test", numbered, "--backbone", st_folder, *FAST]
    one_line_error(run_cli(capfd, *args, "-o", tmp_path / "m"), "labels the model does not know ('0', '1')",
                   "--allow-unknown-labels")
    assert not (tmp_path / "m").exists()
    r = run_cli(capfd, *args, "--allow-unknown-labels", "--json", "-q", "-o", tmp_path / "m")
    assert r.code == 0, r.err
    one_line_error(run_cli(capfd, "evaluate", tmp_path / "m", "--data", numbered), "does not know")
    r = run_cli(capfd, "evaluate", tmp_path / "m", "--data", numbered, "--allow-unknown-labels", "--json", "-q")
    assert r.code == 0 and '"accuracy": 0.0' in r.out


def test_labels_that_mix_numbers_and_words_are_named_in_a_warning(st_folder, tmp_path, capfd):
    texts, labels = synthetic.make(per_class=8)
    mixed = [("1" if label == "positive" and i % 2 else label) for i, label in enumerate(labels)]
    data = write_csv(tmp_path / "mixed.csv", zip(texts, mixed))
    r = run_cli(capfd, "train", "--data", data, "--backbone", st_folder, *FAST)
    assert r.code == 0, r.err
    assert "mix numbers (1) and words (negative, positive)" in r.err


def test_the_same_text_under_two_labels_stops_train_as_it_fails_check_data(st_folder, tmp_path, capfd):
    texts, labels = synthetic.make(per_class=8)
    rows = [*zip(texts, labels), (texts[0].upper(), "positive" if labels[0] == "negative" else "negative")]
    data = write_csv(tmp_path / "conflict.csv", rows)
    r = run_cli(capfd, "train", "--data", data, "--backbone", st_folder, *FAST)
    assert r.code == 2 and "the same text under two labels, line 2" in r.err_lines[-1] and "line 18" in r.err_lines[-1]
    assert len(r.err_lines) == 1  # the error alone: the reading's warning about the same rows is for a run that goes on
    audit = run_cli(capfd, "check-data", "--data", data, "--backbone", st_folder, "--json", "-q")
    assert audit.code == 2 and "label-conflict" in audit.out
