"""`--config FILE` and `--print-config` (train and bench): a run's settings as a file, read back the same."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.reviews import PREDICT_TEXTS, train_args


def _no_model_loads(monkeypatch):
    """Any attempt to train or load a model fails the test: config errors are said before."""
    import fewtune.experiment

    def refuse(*args, **kwargs):
        raise AssertionError("a run started although the config was bad")

    monkeypatch.setattr(fewtune.experiment, "run", refuse)
    monkeypatch.setattr("fewtune.experiment.run", refuse, raising=False)


def test_print_config_prints_every_setting_and_runs_nothing(tmp_path, capfd):
    result = run_cli(capfd, "train", "--dataset", "mr", "--shots", "8", "-p", "steps=2", "-o", tmp_path / "m",
                     "--print-config")
    assert result.code == 0, result.err
    settings = yaml.safe_load(result.out)
    from fewtune.experiment.spec import RunSpec
    import dataclasses

    assert list(settings) == [f.name for f in dataclasses.fields(RunSpec)]
    assert settings["dataset"] == "mr" and settings["shots"] == 8 and settings["params"] == {"steps": "2"}
    assert settings["output"] == str(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_print_config_then_config_trains_the_same_model(data_dir, st_folder, tmp_path, capfd):
    args = train_args(data_dir / "my.csv", tmp_path / "a", st_folder, "--seed", "3", "--quiet")
    printed = run_cli(capfd, *args, "--print-config")
    assert printed.code == 0, printed.err
    config = tmp_path / "run.yaml"
    config.write_text(printed.out.replace(str(tmp_path / "a"), str(tmp_path / "b")), encoding="utf-8")
    first = run_cli(capfd, *args, "--json")
    second = run_cli(capfd, "train", "--config", config, "--json")
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert json.loads(first.out)["evaluation"] == json.loads(second.out)["evaluation"]
    # The model folder keeps its settings (checksummed with the rest); --config of the folder reruns it.
    saved = yaml.safe_load((tmp_path / "a" / "spec.yaml").read_text(encoding="utf-8"))
    assert saved == yaml.safe_load(printed.out)
    assert "spec.yaml" in json.loads((tmp_path / "a" / "fewtune.json").read_text(encoding="utf-8"))["files"]
    third = run_cli(capfd, "train", "--config", tmp_path / "a", "-o", tmp_path / "c", "--json")
    assert third.code == 0, third.err
    outputs = [run_cli(capfd, "predict", tmp_path / name, "-", "-q", stdin="\n".join(PREDICT_TEXTS).encode()).out
               for name in ("a", "b", "c")]
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].strip()


def test_a_flag_overrides_the_file_and_says_so(data_dir, tmp_path, capfd):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: mr\nshots: 8\nmax-test: 20\nparams: {steps: 2}\n", encoding="utf-8")
    result = run_cli(capfd, "train", "--config", config, "--shots", "4", "-p", "batch_size=4", "--print-config")
    assert result.code == 0, result.err
    settings = yaml.safe_load(result.out)
    assert settings["shots"] == 4 and settings["max_test"] == 20  # the flag wins; the rest from the file
    assert settings["params"] == {"steps": 2, "batch_size": "4"}
    assert result.err_lines == [f"note: --shots 4 overrides shots: 8 in {config}"]


def test_a_json_config_works_as_well(tmp_path, capfd):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": "bbc", "shots": 4, "log_with": "tensorboard"}), encoding="utf-8")
    result = run_cli(capfd, "train", "--config", config, "--print-config")
    assert result.code == 0, result.err
    settings = yaml.safe_load(result.out)
    assert (settings["dataset"], settings["shots"], settings["log_with"]) == ("bbc", 4, ["tensorboard"])


@pytest.mark.parametrize("text, message", [
    ("shot: 8\n", "unknown setting 'shot'; did you mean 'shots'?"),
    ("zzz: 1\n", "unknown setting 'zzz'; known: "),
    ("shots: eight\n", "shots: Input should be a valid integer"),
    ("shots: true\n", "shots: got True, which is true/false"),
    ("multi_label: 3\n", "multi_label: must be true or false, got 3"),
    ("params: 3\n", "params: must be a mapping of method parameters"),
    ("shots: [8, 16]\n", "shots: must be a single value"),
    ("shots: [1\n", ", line 2, column 1: not valid YAML or JSON"),
    ("- dataset\n- mr\n", "expected settings as `name: value` lines (a mapping), got a list"),
])
def test_a_bad_config_is_one_line_before_anything_runs(tmp_path, capfd, monkeypatch, text, message):
    _no_model_loads(monkeypatch)
    config = tmp_path / "bad.yaml"
    config.write_text(text, encoding="utf-8")
    result = run_cli(capfd, "train", "--config", config, "-o", tmp_path / "m")
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith(f"error: --config {config}") and message in result.err_lines[0]
    assert not (tmp_path / "m").exists()


def test_a_missing_or_binary_config_is_one_line(tmp_path, capfd, monkeypatch):
    _no_model_loads(monkeypatch)
    result = run_cli(capfd, "train", "--config", tmp_path / "nope.yaml")
    assert result.code == 2 and result.err_lines == [f"error: --config {tmp_path / 'nope.yaml'}: no such file"]
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"shots: \xff\xfe\n")
    result = run_cli(capfd, "train", "--config", binary)
    assert result.code == 2 and "not UTF-8 text" in result.err_lines[0] and len(result.err_lines) == 1
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    result = run_cli(capfd, "train", "--config", folder)
    assert result.code == 2 and "without spec.yaml" in result.err_lines[0]


def test_bench_prints_and_reads_its_config(tmp_path, capfd):
    printed = run_cli(capfd, "bench", "--dataset", "mr", "--shots", "8", "--seeds", "2", "--print-config")
    assert printed.code == 0, printed.err
    settings = yaml.safe_load(printed.out)
    assert settings["dataset"] == "mr" and settings["shots"] == "8" and settings["seeds"] == "2"
    config = tmp_path / "bench.yaml"
    config.write_text(printed.out, encoding="utf-8")
    planned = run_cli(capfd, "bench", "--config", config, "--dry-run", "-o", tmp_path / "runs.jsonl", "--json")
    assert planned.code == 0, planned.err
    again = run_cli(capfd, "bench", "--dataset", "mr", "--shots", "8", "--seeds", "2", "--dry-run",
                    "-o", tmp_path / "runs.jsonl", "--json")
    assert planned.out == again.out
    assert len(json.loads(planned.out)["todo"]) == 2 * len(settings["methods"].split(",")) + 2  # + majority
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 2\n", encoding="utf-8")
    result = run_cli(capfd, "bench", "--config", bad)
    assert result.code == 2 and "unknown setting 'seed'; did you mean 'seeds'?" in result.err_lines[0]
