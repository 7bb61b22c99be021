"""`fewtune train`: few-shot train a classifier (or, --task generate|lm, a causal LM), evaluate it on
held-out data, save it. The options are `fewtune.experiment.RunSpec`'s fields, their help its help;
the run itself is `fewtune.experiment.run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from ..experiment.spec import RunSpec
from . import config as config_file
from .options import Json, note, parse_params, print_json
from .train_output import print_generation, print_result

H = RunSpec.help

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


def _check_params(value, where: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise FewtuneError(f"{where}: must be a mapping of method parameters (KEY: VALUE), got {value!r}")


config_file.EXTRA_KEYS["train"] = {"params": _check_params}


def train(
    ctx: typer.Context,
    config: config_file.Config = None,
    data: Annotated[Optional[Path], typer.Option(help=H("data"))] = None,
    dataset: Annotated[Optional[str], typer.Option(help=H("dataset"))] = None,
    text_col: Annotated[str, typer.Option(help=H("text_col"))] = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help=H("text_pair_col"))] = None,
    label_col: Annotated[str, typer.Option(help=H("label_col"))] = "label",
    multi_label: Annotated[bool, typer.Option(help=H("multi_label"))] = False,
    label_sep: Annotated[str, typer.Option(help=H("label_sep"))] = ",",
    shots: Annotated[Optional[int], typer.Option(help=H("shots"))] = None,
    seed: Annotated[int, typer.Option(help=H("seed"))] = 0,
    task: Annotated[str, typer.Option(help=H("task"))] = "classify",
    method: Annotated[str, typer.Option(help=H("method"))] = "setfit",
    time_budget: Annotated[Optional[float], typer.Option(help=H("time_budget"))] = None,
    as_user_file: Annotated[bool, typer.Option("--as-user-file", help=H("as_user_file"))] = False,
    allow_unknown_labels: Annotated[bool, typer.Option("--allow-unknown-labels", help=H("allow_unknown_labels"))] = False,
    backbone: Annotated[Optional[str], typer.Option(help=H("backbone"))] = None,
    prompt_col: Annotated[str, typer.Option(help=H("prompt_col"))] = "prompt",
    response_col: Annotated[str, typer.Option(help=H("response_col"))] = "response",
    merge: Annotated[bool, typer.Option(help=H("merge"))] = False,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help=H("params") + " Repeatable.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=H("output"))] = None,
    log_with: Annotated[Optional[list[str]], typer.Option("--log-with", help=H("log_with"))] = None,
    logging_dir: Annotated[Optional[Path], typer.Option(help=H("logging_dir"))] = None,
    overwrite: Annotated[bool, typer.Option(help=H("overwrite"))] = False,
    standalone: Annotated[bool, typer.Option(help=H("standalone"))] = False,
    select: Annotated[Optional[str], typer.Option(help=H("select"))] = None,
    grid: Annotated[Optional[list[str]], typer.Option(help=H("grid"))] = None,
    cv_folds: Annotated[int, typer.Option(help=H("cv_folds"))] = 4,
    posterior: Annotated[Optional[str], typer.Option(help=H("posterior"))] = None,
    posterior_samples: Annotated[int, typer.Option(help=H("posterior_samples"))] = 0,
    calibrate: Annotated[Optional[str], typer.Option(help=H("calibrate"))] = None,
    class_prior: Annotated[Optional[str], typer.Option(help=H("class_prior"))] = None,
    test: Annotated[Optional[Path], typer.Option(help=H("test"))] = None,
    max_test: Annotated[Optional[int], typer.Option(help=H("max_test"))] = None,
    encoding: Annotated[str, typer.Option(help=H("encoding"))] = "utf-8",
    device: Annotated[Optional[str], typer.Option(help=H("device"))] = None,
    trust: Annotated[bool, typer.Option("--trust", help=H("trust"))] = False,
    resume: Annotated[bool, typer.Option(help=H("resume"))] = False,
    check_data: Annotated[bool, typer.Option("--check-data", help=H("check_data"))] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=H("quiet"))] = False,
    json_out: Json = False,
    print_config: config_file.PrintConfig = False,
):
    """Few-shot train a classifier (or fine-tune a causal LM: --task generate/lm), evaluate it on held-out data, and save it."""
    from ..experiment import run

    spec = RunSpec(data=data, dataset=dataset, text_col=text_col, text_pair_col=text_pair_col, label_col=label_col,
                   multi_label=multi_label, label_sep=label_sep, encoding=encoding, shots=shots, seed=seed, test=test,
                   max_test=max_test, as_user_file=as_user_file, allow_unknown_labels=allow_unknown_labels,
                   task=task, method=method, backbone=backbone,
                   params={**(config_file.from_file(ctx).get("params") or {}), **parse_params(param)},
                   time_budget=time_budget, select=select, grid=list(grid or []),
                   cv_folds=cv_folds, posterior=posterior, posterior_samples=posterior_samples, calibrate=calibrate,
                   class_prior=class_prior, prompt_col=prompt_col, response_col=response_col, merge=merge,
                   resume=resume, device=device, trust=trust, output=output, overwrite=overwrite, standalone=standalone,
                   check_data=check_data, quiet=quiet, log_with=list(log_with or []), logging_dir=logging_dir)
    for line in config_file.overrides(ctx):
        note(quiet, line)
    if print_config:
        typer.echo(spec.to_yaml(), nl=False)
        return
    done = run(spec, note=lambda message: note(quiet, message))
    if json_out:
        print_json(done.result)
    elif task == "classify":
        print_result(done.result, done.model.train_info_, done.prepared.what, output, done.model.strategies_)
    else:
        print_generation(done.result)
