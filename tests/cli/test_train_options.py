"""`fewtune train`'s options are generated from RunSpec's fields: every field is an option, with its help
and default, and a new field is a new option without retyping it in the CLI."""

from __future__ import annotations

import dataclasses

from fewtune.cli import app, train
from fewtune.experiment.spec import RunSpec
from fewtune.params import param

CLI_ONLY = {"config", "json_out", "print_config"}  # options that are not settings of the run


def _train_command():
    import typer.main

    return typer.main.get_command(app).commands["train"]


def test_every_runspec_field_is_a_train_option_and_nothing_else():
    command = _train_command()
    fields = {f.name for f in dataclasses.fields(RunSpec)}
    names = {p.name for p in command.params}
    assert names == (fields - {"params"}) | {"param"} | CLI_ONLY  # -p KEY=VALUE fills params
    by_name = {p.name: p for p in command.params}
    for field in dataclasses.fields(RunSpec):
        option = by_name["param" if field.name == "params" else field.name]
        assert option.help.startswith(field.metadata["help"]), field.name
        if field.default_factory is dataclasses.MISSING:
            assert option.default == field.default, field.name
        else:  # list and dict fields: repeatable options
            assert option.multiple, field.name


def test_the_cli_specific_flags():
    by_name = {p.name: p for p in _train_command().params}
    assert set(by_name["param"].opts) == {"--param", "-p"} and set(by_name["output"].opts) == {"--output", "-o"}
    for name in ("as_user_file", "trust", "check_data", "allow_unknown_labels", "quiet"):
        assert not by_name[name].secondary_opts, name  # a switch: no --no- form
    assert by_name["merge"].secondary_opts == ["--no-merge"]


def test_a_new_runspec_field_becomes_an_option():
    @dataclasses.dataclass
    class Wider(RunSpec):
        warmup_ratio: float = param(0.1, "Share of the steps spent warming up.")

    options = train.field_options(Wider)
    assert list(options) == [f.name for f in dataclasses.fields(Wider)]
    new = options["warmup_ratio"]
    assert new.name == "warmup_ratio" and new.default == 0.1
    assert new.annotation.__metadata__[0].help == "Share of the steps spent warming up."
    assert set(train.signature(options).parameters) == {"ctx", *options, *CLI_ONLY} - {"params"} | {"param"}
