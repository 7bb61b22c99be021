"""`fewtune models`, `datasets`, `methods` and `--version`; bench's interpreter check."""

from __future__ import annotations

import json
import os

from tests.helpers.cli import run_cli


# --- 7. models, datasets, methods ------------------------------------------------------------------------
def test_models_lists_minilm_installed(capfd):
    r = run_cli(capfd, "models")
    assert r.code == 0, r.err
    line = next(line for line in r.out.splitlines() if line.split()[:1] == ["minilm"])
    assert " yes " in f" {line} "
    rows = json.loads(run_cli(capfd, "models", "--json").out)
    minilm = next(row for row in rows if row["name"] == "minilm")
    assert minilm["installed"] is True and minilm["kind"] == "encoder"


def test_datasets_lists_the_builtins(capfd):
    r = run_cli(capfd, "datasets")
    assert r.code == 0, r.err
    names = {line.split()[0] for line in r.out.splitlines()[1:] if line.strip()}
    assert {"mr", "imdb", "bbc", "tweets"} <= names
    rows = json.loads(run_cli(capfd, "datasets", "--json").out)
    by_name = {row["name"]: row for row in rows}
    assert {"mr", "imdb", "bbc", "tweets"} <= set(by_name)
    assert all(row["n_test"] > 0 and len(row["classes"]) >= 2 for row in by_name.values() if row["task"] != "generate")
    assert by_name["chitchat"]["task"] == "generate" and by_name["chitchat"]["n_train"] > 3000


def test_methods_lists_setfit_and_its_params(capfd):
    r = run_cli(capfd, "methods")
    assert r.code == 0, r.err
    assert r.out.startswith("setfit:") or "\nsetfit:" in r.out
    assert "  epochs = 4.0" in r.out and "  batch_size = 16" in r.out
    assert "  --select cv searches: learning_rate in [0.0002, 5e-05]; l2sp in [0.0, 1.0]" in r.out
    rows = json.loads(run_cli(capfd, "methods", "--json").out)
    setfit = next(row for row in rows if row["name"] == "setfit")
    assert setfit["params"]["epochs"]["default"] == 4.0 and setfit["params"]["steps"]["default"] == -1
    assert setfit["selection_grid"] == {"learning_rate": [2e-4, 5e-5], "l2sp": [0.0, 1.0]}
    assert "encoder" in setfit["backbones"]


def test_version_prints_the_installed_version(capfd):
    from importlib.metadata import version

    r = run_cli(capfd, "--version")
    assert r.code == 0 and r.out.strip() == f"fewtune {version('fewtune')}"


def test_bench_names_a_missing_interpreter_in_one_line(capfd, tmp_path):
    r = run_cli(capfd, "bench", "--dataset", "mr", "--python", "venv-that-is-not-there/bin/python",
                "--out", tmp_path / "runs.jsonl")
    assert r.code == 2 and r.err_lines == [r.err_lines[0]] and "no such interpreter" in r.err
    assert os.path.abspath("venv-that-is-not-there/bin/python") in r.err  # read from here, not the workers' folder
    assert not (tmp_path / "runs.jsonl").exists()


def test_help_starts_with_train_and_shows_examples_and_groups(capfd):
    r = run_cli(capfd, "--help")
    commands = [line.split()[0] for line in r.out.split("Commands:")[1].splitlines()[1:8] if line.strip()]
    assert commands[:4] == ["train", "predict", "evaluate", "check-data"]
    assert "fewtune train --data reviews.csv --shots 8 -o my-model" in r.out and "serve and export:" in r.out
    r = run_cli(capfd, "train", "--help")
    assert "Examples:" in r.out and "fewtune train --data reviews.csv --text-col review" in r.out
