"""`fewtune train`: few-shot train a classifier (or, --task generate|lm, a causal LM), evaluate it on
held-out data, save it. The options are generated from `fewtune.experiment.RunSpec`'s fields (name, type,
default, help), so a new field is a new option; the run itself is `fewtune.experiment.run`."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any, Optional

import typer

from ..errors import FewtuneError
from ..experiment.spec import RunSpec
from . import config as config_file
from .options import Json, note, parse_params, print_json
from .train_output import print_generation, print_result

EXAMPLES = """\b
Examples:
  fewtune train --data reviews.csv --text-col review --label-col sentiment --shots 8 -o my-model
  fewtune train --data reviews.csv --method auto --time-budget 300 -o my-model   # the method chosen on the shots
  fewtune train --dataset mr --shots 8 --posterior laplace -o m                  # calibrated probabilities
  fewtune train --data shots.csv --test held-out.csv --log-with tensorboard      # scored, loss curve in runs/
  fewtune train --task generate --dataset chitchat --shots 64 -o bot             # a dialogue model
  fewtune train --dataset mr --shots 8 --print-config > run.yaml                 # every setting, as YAML
  fewtune train --config run.yaml --seed 1 -o m                                  # rerun it, one setting changed
  fewtune train --config my-model/spec.yaml -o again                             # what my-model was trained with
\b
The held-out rows (those not drawn by --shots, --test, or a built-in test split) are scored after
training; `fewtune methods` lists every method's -p parameters."""

# The flags of the fields whose flags are not typer's default (`--field-name`, and `--x/--no-x` for a bool):
# short aliases, and switches that only turn something on (one name: no --no- form). The first flag names
# the function parameter (params -> param: the flag takes one KEY=VALUE at a time).
FLAGS = {"params": ("--param", "-p"), "output": ("--output", "-o"), "quiet": ("--quiet", "-q"),
         "as_user_file": ("--as-user-file",), "allow_unknown_labels": ("--allow-unknown-labels",),
         "trust": ("--trust",), "check_data": ("--check-data",)}
# The options that are not settings of the run: (parameter name, annotation, default), around the fields.
FIRST = [("config", config_file.Config, None)]
LAST = [("json_out", Json, False), ("print_config", config_file.PrintConfig, False)]


def _check_params(value, where: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise FewtuneError(f"{where}: must be a mapping of method parameters (KEY: VALUE), got {value!r}")


# The file gives `params` as a mapping, where the flag is a repeatable KEY=VALUE.
config_file.EXTRA_KEYS["train"] = {"params": _check_params}


def field_options(spec_class: type = RunSpec) -> dict[str, inspect.Parameter]:
    """field name -> the typer option of that field of `spec_class` (a RunSpec, or a subclass in tests)."""
    hints = typing.get_type_hints(spec_class)
    options = {}
    for field in dataclasses.fields(spec_class):
        flags = FLAGS.get(field.name, ())
        kind, default, help = hints[field.name], field.default, field.metadata["help"]
        if field.default_factory is not dataclasses.MISSING:  # a list or a dict: a repeatable option
            kind, default = Optional[list[str]], None  # None: not given (RunSpec makes it [] or {})
            if typing.get_origin(hints[field.name]) is dict or hints[field.name] is dict:
                help += " Repeatable."  # KEY=VALUE items (a list's help says what one item is)
        name = flags[0][2:].replace("-", "_") if flags else field.name
        options[field.name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=Annotated[kind, typer.Option(*flags, help=help)])
    return options


def signature(fields: dict[str, inspect.Parameter]) -> inspect.Signature:
    """train's parameters as typer reads them: the context, --config, the fields' options, --json, --print-config."""
    def extra(names):
        return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                for name, annotation, default in names]

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    return inspect.Signature([context, *extra(FIRST), *fields.values(), *extra(LAST)])


OPTIONS = field_options()


def train(ctx: typer.Context, **options: Any) -> None:
    """Few-shot train a classifier (or fine-tune a causal LM: --task generate/lm), evaluate it on held-out data, and save it."""
    from ..experiment import run

    settings = {field: options[option.name] for field, option in OPTIONS.items()}
    # -p KEY=VALUE over the file's `params` mapping, key by key
    settings["params"] = {**(config_file.from_file(ctx).get("params") or {}), **parse_params(settings["params"])}
    spec = RunSpec(**settings)
    for line in config_file.overrides(ctx):
        note(spec.quiet, line)
    if options["print_config"]:
        typer.echo(spec.to_yaml(), nl=False)
        return
    done = run(spec, note=lambda message: note(spec.quiet, message))
    if options["json_out"]:
        print_json(done.result)
    elif spec.task == "classify":
        print_result(done.result, done.model.train_info_, done.prepared.what, spec.output, done.model.strategies_)
    else:
        print_generation(done.result)


train.__signature__ = signature(OPTIONS)  # typer reads the options from it, not from the def
