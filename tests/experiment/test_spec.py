"""RunSpec: the CLI's train options are its fields, it survives JSON, and it refuses impossible runs early."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import typer.main

from fewtune.cli import app
from fewtune.errors import FewtuneError
from fewtune.experiment import RunSpec

CLI_ONLY = {"param", "json_out", "config", "print_config"}  # -p items become spec.params; --json is how the CLI
# prints, not the run; --config / --print-config read and print the spec itself


def _train_command():
    return typer.main.get_command(app).commands["train"]


def test_train_options_are_the_spec_fields_with_their_help_and_defaults():
    spec_fields = {f.name: f for f in dataclasses.fields(RunSpec)}
    options = {p.name: p for p in _train_command().params}
    assert set(options) - CLI_ONLY == set(spec_fields) - {"params"}
    defaults = RunSpec()
    for name, option in options.items():
        if name in CLI_ONLY:
            continue
        assert option.help == spec_fields[name].metadata["help"], name
        expected = getattr(defaults, name)
        assert option.default == (None if expected == [] else expected), name
    assert options["param"].help.startswith(RunSpec.help("params"))


def test_check_data_shares_the_help_of_the_fields_it_reads():
    options = {p.name: p for p in typer.main.get_command(app).commands["check-data"].params}
    for name in ("data", "dataset", "text_col", "text_pair_col", "label_col", "encoding", "device"):
        assert options[name].help == RunSpec.help(name)


def test_to_dict_is_json_and_from_dict_gives_the_spec_back(tmp_path):
    spec = RunSpec(data=tmp_path / "shots.csv", shots=8, seed=3, method="finetune", params={"epochs": 2},
                   grid=["l2sp=0,0.1"], select="cv", output=tmp_path / "model", class_prior="pos=0.3,neg=0.7")
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert isinstance(again.data, Path) and isinstance(again.output, Path)


def test_from_dict_names_unknown_settings():
    with pytest.raises(FewtuneError, match="unknown run setting.*shot"):
        RunSpec.from_dict({"shot": 8})


@pytest.mark.parametrize("spec, message", [
    (RunSpec(), "exactly one of --data FILE or --dataset NAME"),
    (RunSpec(data=Path("a.csv"), dataset="mr"), "exactly one of"),
    (RunSpec(dataset="mr", shots=0), "--shots must be at least 1"),
    (RunSpec(dataset="mr", task="translate"), "--task must be classify, generate or lm"),
    (RunSpec(dataset="mr", merge=True), "--merge applies to --task generate/lm"),
    (RunSpec(data=Path("a.csv"), multi_label=True, shots=4), "multi-label rows"),
    (RunSpec(dataset="mr", grid=["l2sp=0,1"]), "--grid only applies with --select"),
    (RunSpec(dataset="mr", cv_folds=1), "--cv-folds must be at least 2"),
    (RunSpec(data=Path("a.csv"), as_user_file=True), "--as-user-file applies to --dataset"),
    (RunSpec(dataset="chitchat", task="generate", method="prompt"), "--method applies to --task classify only"),
    (RunSpec(dataset="chitchat", task="generate", posterior="laplace"), "--posterior applies to --task classify"),
    (RunSpec(dataset="chitchat", task="generate", resume=True), "--resume needs --output"),
])
def test_check_refuses_what_no_run_can_do(spec, message):
    with pytest.raises(FewtuneError, match=message):
        spec.check()


def test_check_refuses_an_existing_output_unless_overwrite(tmp_path):
    with pytest.raises(FewtuneError, match="already exists"):
        RunSpec(dataset="mr", output=tmp_path).check()
    RunSpec(dataset="mr", output=tmp_path, overwrite=True).check()


def test_brought_data_needs_no_file_or_dataset():
    RunSpec(method="linear-probe").check(data_given=True)


def test_the_default_backbone_is_the_kind_the_method_reads():
    assert RunSpec(method="setfit").default_backbone() == "me5-small"
    assert RunSpec(method="prompt").default_backbone() == "smollm2-135m"
    assert RunSpec(task="lm").default_backbone() == "smollm2-135m"
    assert RunSpec(method="prompt", backbone="minilm").default_backbone() == "minilm"


def test_paths_given_as_text_become_paths(tmp_path):
    spec = RunSpec(data=str(tmp_path / "a.csv"), output=str(tmp_path))
    assert isinstance(spec.data, Path) and isinstance(spec.output, Path)
    with pytest.raises(FewtuneError, match="already exists"):
        spec.check()
