"""`fewtune evaluate`: a saved classifier's scores on labeled data, printed (or as JSON), and with --plot DIR
its figures: the option, its check before the model loads, the report with the figures written, and the
lines that say where they went.

Light at import (typer only), as every command module: numpy, matplotlib and the model come later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import checks
from .options import Encoding, Json, LabelSep, MaxTest, Quiet, TextCol, Trust, note, print_json, table

Plot = Annotated[Optional[Path], typer.Option(
    "--plot", metavar="DIR",
    help="Also draw the evaluation as PNG files in this folder (made if missing; earlier figures of the same "
         "names are replaced): reliability.png, accuracy against confidence in the ECE's bins with their counts, "
         "and confusion_matrix.png, the counts of true against predicted class; loss_curve.png, the training "
         "loss at every step, when the model kept its curve. Multi-label models: the reliability of every "
         "text × label yes/no decision, and no confusion matrix.")]


def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train`, an ONNX export or a static student.")],
    data: Annotated[Optional[Path], typer.Option(help="Labeled data file.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="A built-in dataset's test split instead.")] = None,
    text_col: TextCol = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column.")] = None,
    label_col: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    label_sep: LabelSep = ",",
    max_test: MaxTest = 0,
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    allow_unknown_labels: Annotated[bool, typer.Option("--allow-unknown-labels", help="Count rows whose label the model does not know as wrong (by default they are an error that names them).")] = False,
    plot: Plot = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Accuracy, macro-F1, a per-class report and the confusion matrix on labeled data."""
    from ..data import fixed_subset, load_builtin, load_labeled
    from ..saved_models import check_classifier_folder, load_classifier, saved_facts

    if (data is None) == (dataset is None):
        raise FewtuneError("give exactly one of --data FILE or --dataset NAME")
    if max_test < 0:
        raise FewtuneError(f"--max-test must be 0 (all) or more, got {max_test}")
    check_plot(plot)
    if check_classifier_folder(model, trust=trust) == "pytorch":
        checks.device(device)
    # The data is read and checked before the model loads (seconds).
    if dataset is not None:
        heldout = load_builtin(dataset)[1]
    else:
        heldout = load_labeled(data, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                               encoding=encoding)
    heldout = fixed_subset(heldout, max_test)
    from ..data.ingest import check_known_labels

    facts = saved_facts(model)  # the classes, known before the load: a wrong label file fails at once
    checked = isinstance(facts.get("classes"), list) and not facts.get("multi_label")
    if checked:
        check_known_labels(heldout.labels, facts["classes"], heldout.source, allow_unknown=allow_unknown_labels)
    clf = load_classifier(model, device=device, trust=trust, show_progress=not quiet)
    if not checked and not clf.multi_label_:  # a manifest without its classes: checked once they are loaded
        check_known_labels(heldout.labels, clf.classes_, heldout.source, allow_unknown=allow_unknown_labels)
    report = report_with_plots(clf, heldout, label_sep, plot, quiet)
    if json_out:
        print_json(report)
    else:
        _print_report(report, fixed_setfit_head=fixed_setfit_head(clf), n_train=training_examples(clf))
        print_plots(report)


def check_plot(plot: Optional[Path]) -> None:
    """--plot names a folder the figures can be written into (before the model loads)."""
    from ..evaluation_plots import FIGURES

    checks.figure_folder(plot, FIGURES, "--plot")


def report_with_plots(clf, heldout, label_sep: str, plot: Optional[Path], quiet: bool) -> dict:
    """`experiment.held_out_report`; with --plot its figures are written too, their paths under "plots"
    (and, for a multi-label model, the calibration of its label decisions under "label_calibration")."""
    from ..experiment import held_out_report

    if plot is None:
        return held_out_report(clf, heldout, label_sep)
    from ..evaluation_plots import write_figures

    if clf.multi_label_:
        report = _multi_label_report(clf, heldout, label_sep)
        note(quiet, "no confusion matrix for a multi-label model (a text has several labels, or none); the "
                    "per-label table has each label's precision and recall")
    else:
        report = held_out_report(clf, heldout, label_sep)
    written = write_figures(report, plot, loss_curve=getattr(clf, "train_info_", {}).get("loss_curve"))
    return {**report, "plots": {name: str(path) for name, path in written.items()}}


def _multi_label_report(clf, heldout, label_sep: str) -> dict:
    """held_out_report's multi-label scores and the calibration of every label decision, from one pass of
    predict_proba (the model's predict is these probabilities at labels.THRESHOLD, so the scores are the
    same as held_out_report's)."""
    import numpy as np

    from ..data.multilabel import to_indicator
    from ..evaluation_plots import label_decision_calibration
    from ..experiment import inputs, targets
    from ..labels import THRESHOLD
    from ..metrics import multilabel_report

    proba = clf.predict_proba(inputs(heldout))
    truth = to_indicator(targets(heldout, True, label_sep), list(clf.classes_), source=heldout.source)
    report = multilabel_report(truth, (proba >= THRESHOLD).astype(np.int64), clf.classes_)
    return {**report, "label_calibration": label_decision_calibration(truth, proba)}


def print_plots(report: dict) -> None:
    """After the printed report: a multi-label model's label-decision ECE (the diagram's), and the figures."""
    if "plots" not in report:
        return
    if "label_calibration" in report:
        from ..evaluation_plots import bin_count

        cal = report["label_calibration"]
        typer.echo(f"\nlabel-decision ECE  {cal['ece']:.4f}   (every text × label yes/no at 0.5, "
                   f"{bin_count(cal['reliability'])} bins)")
    typer.echo("")
    names = {"reliability": "reliability diagram", "confusion_matrix": "confusion matrix",
             "loss_curve": "training loss"}
    for key, path in report["plots"].items():
        typer.echo(f"{names[key]:<20} {path}")


HIGH_ECE = 0.05  # above this the probabilities mislead a threshold such as --abstain-below


def calibration_hint(calibration: dict, accuracy: float, *, fixed_setfit_head: bool = False,
                     n_train: int | None = None) -> str:
    """What to do about probabilities that do not match the accuracy (empty when they do). A timid setfit
    model whose head had a fixed C is pointed to head_c=0 first: the lowest ECE of the shots' own fixes
    there (benchmarks/README.md "setfit_crossfit"). Where the model's n_train examples measure its accuracy
    more loosely than HIGH_ECE, any fix fitted on them inherits that, and the hint says so: at K=8 even a
    head chosen on as many new labeled texts was off by 0.06 on average ("what the shots can tell")."""
    if calibration["ece"] <= HIGH_ECE:
        return ""
    bins = [b for b in calibration["reliability"] if b["n"]]
    confidence = sum(b["n"] * b["confidence"] for b in bins) / max(1, sum(b["n"] for b in bins))
    how = "timid" if confidence < accuracy else "overconfident"
    fixes = "--calibrate temperature (fitted on the shots) or --calibrate auto"
    if fixed_setfit_head and how == "timid":
        fixes = "-p head_c=0 (setfit's default: the head chosen by bodies that never saw the shots), " + fixes
    hint = (f"          the probabilities are {how}: {confidence:.0%} confidence on average where {accuracy:.0%} "
            f"are right; retrain with {fixes} before trusting them, e.g. for --abstain-below")
    spread = math.sqrt(accuracy * (1 - accuracy) / n_train) if n_train else 0.0  # the accuracy's standard error
    if spread > HIGH_ECE:
        hint += (f"\n          {n_train} training examples measure this accuracy only to ±{spread:.0%}, and no fix "
                 f"fitted on them can be surer than that: more labeled examples are the surest fix")
    return hint


def training_examples(clf) -> int | None:
    """How many labeled examples a single-label model was trained on (None where its folder does not say)."""
    counts = (getattr(clf, "train_info_", None) or {}).get("class_counts")
    if not isinstance(counts, dict) or getattr(clf, "multi_label_", False):
        return None
    return sum(int(v) for v in counts.values()) or None


def fixed_setfit_head(clf) -> bool:
    """A setfit model trained with a fixed head_c and no calibration (head_c=0 would choose it on the shots)."""
    params = getattr(clf, "params", None) or {}
    return (getattr(clf, "method", None) == "setfit" and not getattr(clf, "calibrate", None)
            and float(params.get("head_c", 1.0)) != 0)


def _print_report(report: dict, *, fixed_setfit_head: bool = False, n_train: int | None = None) -> None:
    typer.echo(f"examples  {report['n']}")
    if report.get("multi_label"):
        typer.echo(f"subset accuracy  {report['accuracy']:.4f}")
        typer.echo(f"micro-F1         {report['micro_f1']:.4f}")
        typer.echo(f"macro-F1         {report['macro_f1']:.4f}")
        typer.echo(f"Hamming loss     {report['hamming_loss']:.4f}\n")
    else:
        typer.echo(f"accuracy  {report['accuracy']:.4f}")
        typer.echo(f"macro-F1  {report['macro_f1']:.4f}")
        if "calibration" in report:
            cal = report["calibration"]
            typer.echo(f"ECE       {cal['ece']:.4f}   (expected calibration error, 10 bins; 0 = probabilities match accuracy)")
            typer.echo(f"NLL       {cal['nll']:.4f}   (mean −log p(true class))")
            typer.echo(f"Brier     {cal['brier']:.4f}")
            hint = calibration_hint(cal, report["accuracy"], fixed_setfit_head=fixed_setfit_head, n_train=n_train)
            if hint:
                typer.echo(hint)
        typer.echo("")
    table(
        ["class", "precision", "recall", "f1", "support"],
        [[c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
         for c, v in report["per_class"].items()],
    )
    if "confusion_matrix" not in report:
        return
    typer.echo("\nconfusion matrix (rows: true, columns: predicted)")
    labels = report["labels"]
    table(["", *labels], [[t, *map(str, row)] for t, row in zip(labels, report["confusion_matrix"])])
