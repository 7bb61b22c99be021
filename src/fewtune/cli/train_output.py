"""What `fewtune train` prints for a person (--json prints the result as it is): what training chose,
the held-out scores, where the model went."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .options import table


def print_result(result: dict[str, Any], train_info: dict[str, Any], what: Optional[str],
                 output: Optional[Path], strategies=()) -> None:
    if result.get("selection"):
        _print_selection(result["selection"])
    if "auto" in train_info:
        _print_auto(train_info["auto"])
    prompt = train_info.get("prompt")
    if prompt and "template_candidates" in prompt:
        scores = ", ".join(f"{k} {v['cv_nll']:.3f}" for k, v in prompt["template_candidates"].items())
        kept = (f"the ensemble of all {len(prompt['template_candidates'])}" if prompt["template"] == "ensemble"
                else prompt["template"])
        typer.echo(f"templates by cross-validated NLL of their calibrated scores on the shots: {scores}; kept {kept}")
    for strategy in strategies:  # the posterior and calibration, each in its own words
        typer.echo(strategy.describe())
    if "distance_from_pretrained" in result:
        typer.echo(f"encoder moved ‖θ−θ₀‖ = {result['distance_from_pretrained']:.4g} from the pretrained weights")
    evaluation = result.get("evaluation")
    if evaluation:
        typer.echo(f"held-out accuracy {evaluation['accuracy']:.3f}, macro-F1 {evaluation['macro_f1']:.3f} "
                   f"on {evaluation['n']} examples ({what}); trained in {result['train_seconds']:.1f} s")
    else:
        typer.echo(f"trained in {result['train_seconds']:.1f} s; no held-out data to evaluate on "
                   "(use --shots or --test)")
    if output is not None:
        typer.echo(f"model saved to {output}; next: fewtune predict {output} new.csv -o labeled.csv "
                   f"(or fewtune serve {output})")
    else:
        typer.echo("model not saved: pass -o FOLDER to keep it")
    _print_logged(result)


def _print_logged(result: dict[str, Any]) -> None:
    logged = result.get("logged")
    if logged:
        typer.echo(f"loss curve and scores sent to {', '.join(logged['trackers'])} in {logged['logging_dir']} "
                   f"(run {logged['run']})")


def _print_auto(info: dict) -> None:
    """What method="auto" tried, each candidate's out-of-fold score and time, and what it kept."""
    rows = [[name, f"{r['cv_nll']:.3f}", f"{r['cv_accuracy']:.3f}", f"{r['seconds']:.1f}", r["backbone"]]
            for name, r in info["candidates"].items()]
    if "stack" in info:
        s = info["stack"]
        rows.append(["stack", f"{s['cv_nll']:.3f}", f"{s['cv_accuracy']:.3f}", "", "log-linear pool"])
    table(["candidate", "out-of-fold NLL", "accuracy", "seconds", "backbone"], rows)
    for name, why in info["skipped"].items():
        typer.echo(f"skipped {name}: {why}")
    kept = info["chosen"] if info["chosen"] != "stack" else "stack of " + ", ".join(
        f"{m} (w={w:.2f})" for m, w in zip(info["members"], info["weights"]))
    typer.echo(f"auto chose {kept} by out-of-fold NLL on the shots ({info['folds']} folds, "
               f"{info['search_seconds']:.0f} s)")


def _print_selection(selection: dict) -> None:
    keys = list(selection["grid"])
    if selection["method"] == "evidence":
        typer.echo("prior strength by the Laplace evidence (log marginal likelihood of the training labels):")
        rows = [[*(str(r["params"][k]) for k in keys), f"{r['log_evidence']:.2f}", f"{r['log_likelihood']:.2f}",
                 f"{r['prior_penalty']:.2f}", f"{r['occam']:.2f}", f"{r['distance_from_pretrained']:.4f}",
                 "chosen" if r["params"] == selection["chosen"] else ""] for r in selection["results"]]
        table([*keys, "log evidence", "log lik", "prior", "Occam", "‖θ−θ₀‖", ""], rows)
        return
    typer.echo(f"cross-validation on the training shots ({selection['folds']} folds):")
    rows = [[*(str(r["params"][k]) for k in keys), f"{r['accuracy']:.3f} ± {r['accuracy_std']:.3f}",
             f"{r['macro_f1']:.3f}", f"{r['log_loss']:.3f}", "chosen" if r["params"] == selection["chosen"] else ""]
            for r in selection["results"]]
    table([*keys, "accuracy", "macro-F1", "log-loss", ""], rows)


def print_generation(result: dict[str, Any]) -> None:
    """`train --task generate|lm`: how far the weights moved, perplexity before and after, where it went."""
    typer.echo(f"weights moved ‖θ−θ₀‖ = {result['distance_from_pretrained']:.4g} from the pretrained model")
    evaluation = result.get("evaluation")
    if evaluation:
        typer.echo(f"held-out perplexity {evaluation['perplexity_before']:.2f} before → "
                   f"{evaluation['perplexity_after']:.2f} after, on {evaluation['n']} examples "
                   f"({evaluation['held_out']}); trained in {result['train_seconds']:.1f} s")
    else:
        typer.echo(f"trained in {result['train_seconds']:.1f} s; no held-out data (use --shots or --test)")
    if "output" in result:
        next_step = "chat" if result["task"] == "generate" else "generate"
        typer.echo(f"model saved to {result['output']}; next: fewtune {next_step} {result['output']}")
    else:
        typer.echo("model not saved: pass -o FOLDER to keep it")
    _print_logged(result)
