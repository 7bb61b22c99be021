"""`fewtune predict`, `suggest` and `evaluate`: a saved classifier on texts, a pool or labeled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import checks
from .options import (ClassPrior, Encoding, Json, LabelSep, MaxTest, Quiet, TextCol, Trust,
                      note, print_json, stdin_texts, table)


def predict(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train`, exported by `fewtune export` (run by ONNX Runtime), or a static student from `fewtune distill --student static`.")],
    input: Annotated[Optional[str], typer.Argument(help="Data file with a text column (read in chunks: any size), or - (default) for one text per line on stdin (blank lines skipped).")] = None,
    text_col: TextCol = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column, for sentence-pair models.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file.")] = False,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "csv",
    keep_columns: Annotated[bool, typer.Option(help="Keep the input file's other columns (an id, say) beside the predictions; an input column named like a prediction column is kept as input_NAME.")] = True,
    label_sep: LabelSep = ",",
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    abstain_below: Annotated[Optional[float], typer.Option(help="Answer --abstain-label instead of a class when the top probability is below this.")] = None,
    abstain_label: Annotated[str, typer.Option(help="The label written when the model abstains.")] = "unknown",
    class_prior: ClassPrior = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout: the classes and every row's prediction (with -o: where they went, how many, how many abstained).")] = False,
):
    """Label texts with a saved model: label, its probability and every class's probability."""
    from ..batch import predict_file, write_rows
    from ..data import as_labeled
    from ..label_shift import check_class_prior
    from ..storage.saved_models import check_classifier_folder, load_classifier, saved_facts

    # Everything that can be wrong with the options, the model folder, the input and the output is said
    # before the model loads (seconds).
    if format not in {"csv", "jsonl"}:
        raise FewtuneError(f"--format must be csv or jsonl, got {format!r}")
    if abstain_below is not None and not 0.0 <= abstain_below <= 1.0:
        raise FewtuneError(f"--abstain-below is a probability between 0 and 1, got {abstain_below}")
    prior = check_class_prior(class_prior)
    checks.output_file(output, overwrite=overwrite)
    runtime = check_classifier_folder(model, trust=trust)
    facts = saved_facts(model)
    if abstain_below is not None and facts.get("multi_label"):
        raise FewtuneError("--abstain-below applies to single-label models (a multi-label model says no label below 0.5)")
    if class_prior is not None and isinstance(facts.get("classes"), list) and not facts.get("multi_label"):
        from ..label_shift import prior_vector

        prior_vector(prior, facts["classes"])  # its classes, before the load
    if runtime == "pytorch":  # an ONNX export or a static student runs without torch, on the CPU
        checks.device(device)
    stdin = input is None or input == "-"
    if stdin:
        texts, blank = stdin_texts(encoding, skip_blank=True)
    else:
        checks.text_file(Path(input), text_col=text_col, text_pair_col=text_pair_col, encoding=encoding)
    clf = load_classifier(model, device=device, trust=trust, show_progress=not quiet)
    if class_prior is not None:
        clf.set_class_prior(class_prior)
    if abstain_below is not None and clf.multi_label_:
        raise FewtuneError("--abstain-below applies to single-label models (a multi-label model says no label below 0.5)")
    abstained, collected = 0, []
    columns = ("text", None) if stdin else (text_col, text_pair_col)

    def rows_for(inputs: list, records: Optional[list] = None) -> list[dict]:
        nonlocal abstained
        rows = _output_rows(inputs, records if keep_columns else None, clf, columns, label_sep, abstain_below,
                            abstain_label)
        abstained += sum(abstain for _, abstain in rows)
        rows = [row for row, _ in rows]
        if json_out and output is None:
            collected.extend(rows)
            return []
        return rows

    if stdin:
        if blank:
            note(quiet, f"skipped {blank} blank line(s) of stdin")
        rows = rows_for(as_labeled(texts, source="stdin").texts)
        if not (json_out and output is None):
            write_rows(rows, format=format, output=output)
        n = len(texts)
    else:  # a file streams through in chunks, with a progress bar
        n = predict_file(input, rows_for, text_col=text_col, text_pair_col=text_pair_col, encoding=encoding,
                         format=format, output=None if (json_out and output is None) else output,
                         show_progress=not quiet)
        n = len(collected) if json_out and output is None else n
    if abstain_below is not None:
        note(quiet, f"abstained on {abstained} of {n} texts (top probability below {abstain_below})")
    if json_out:
        summary = {"model": str(model), "classes": [str(c) for c in clf.classes_], "n": n}
        if abstain_below is not None:
            summary["abstained"] = abstained
        print_json({**summary, "output": str(output)} if output is not None else {**summary, "predictions": collected})


def _output_rows(inputs: list, records: Optional[list], clf, columns: tuple, label_sep: str,
                 abstain_below: Optional[float], abstain_label: str) -> list[tuple[dict, bool]]:
    """predict's CSV/JSONL rows (the input's columns, the label(s), a p_CLASS column per class), each with
    whether it abstained. The text keeps its column's name; other input columns come first, as read."""
    from ..labels import prediction_rows  # torch-free: an ONNX model predicts without torch

    text_col, pair_col = columns
    out = []
    rows = prediction_rows(clf.predict_proba(inputs), clf.classes_, multi_label=clf.multi_label_,
                           abstain_below=abstain_below, abstain_label=abstain_label)
    for i, (x, row) in enumerate(zip(inputs, rows)):
        flat = dict(records[i]) if records else {}
        flat.update({text_col: x} if isinstance(x, str) else {text_col: x[0], pair_col: x[1]})
        predicted = ({"labels": label_sep.join(str(c) for c in row["labels"])} if clf.multi_label_
                     else {"label": row["label"], "probability": row["probability"]})
        predicted.update({f"p_{c}": p for c, p in row["probabilities"].items()})
        for key in set(predicted) & set(flat):  # the input's own "label" column (a labeled file) is kept too
            flat[f"input_{key}"] = flat.pop(key)
        out.append(({**flat, **predicted}, row.get("abstained", False)))
    return out


def suggest(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train` (with --posterior laplace, ensemble or mc-dropout for bald).")],
    pool: Annotated[Path, typer.Option(help="Unlabeled texts: CSV, TSV, JSONL or Parquet with a text column.")],
    n: Annotated[int, typer.Option("-n", help="How many texts to suggest.")] = 10,
    strategy: Annotated[str, typer.Option(help="bald (needs a posterior: laplace, ensemble or mc-dropout), entropy or margin.")] = "bald",
    text_col: TextCol = "text",
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Rank unlabeled texts by how much labeling them would teach the model (active learning)."""
    from ..bayes.acquisition import STRATEGIES, suggest as rank
    from ..classifier import FewShotClassifier
    from ..data import load_labeled
    from ..storage.saved_models import check_classifier_folder, saved_facts

    if strategy not in STRATEGIES:
        raise FewtuneError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    checks.at_least(n, 1, "-n")
    if check_classifier_folder(model, trust=trust) != "pytorch":
        raise FewtuneError(f"{model} is an ONNX export or a static student; suggest ranks with the fewtune model "
                           "folder it came from: give that folder")
    config = saved_facts(model)
    if config.get("multi_label"):
        raise FewtuneError(f"{model} is a multi-label model; suggest ranks texts for single-label models")
    if strategy == "bald" and not config.get("posterior"):
        raise FewtuneError(f"{model} has no posterior, which bald needs: train with --posterior laplace, ensemble or "
                           "mc-dropout, or use --strategy entropy")
    checks.device(device)
    data = load_labeled(pool, text_col=text_col, label_col=None, encoding=encoding)  # before the model loads
    clf = FewShotClassifier.load(model, device=device, trust=trust, show_progress=not quiet)
    picks = rank(clf, data.texts, n, strategy)
    proba = clf.predict_proba([data.texts[i] for i, _ in picks])
    rows = [{"row": data.rows[i], "text": data.texts[i], "score": round(score, 6),
             "predicted": str(clf.classes_[int(p.argmax())]), "probability": round(float(p.max()), 6)}
            for (i, score), p in zip(picks, proba)]
    if json_out:
        print_json({"strategy": strategy, "pool": str(pool), "n_pool": len(data), "suggestions": rows})
        return
    table(["where", strategy, "predicted", "p", "text"],
          [[str(r["row"]), f"{r['score']:.4f}", r["predicted"], f"{r['probability']:.2f}",
            r["text"][:80] + ("…" if len(r["text"]) > 80 else "")] for r in rows])


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
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Accuracy, macro-F1, a per-class report and the confusion matrix on labeled data."""
    from ..data import fixed_subset, load_builtin, load_labeled
    from ..storage.saved_models import check_classifier_folder, load_classifier, saved_facts

    if (data is None) == (dataset is None):
        raise FewtuneError("give exactly one of --data FILE or --dataset NAME")
    if max_test < 0:
        raise FewtuneError(f"--max-test must be 0 (all) or more, got {max_test}")
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
    from ..experiment import held_out_report

    report = held_out_report(clf, heldout, label_sep)
    if json_out:
        print_json(report)
    else:
        _print_report(report)


HIGH_ECE = 0.05  # above this the probabilities mislead a threshold such as --abstain-below


def calibration_hint(calibration: dict, accuracy: float) -> str:
    """What to do about probabilities that do not match the accuracy (empty when they do)."""
    if calibration["ece"] <= HIGH_ECE:
        return ""
    bins = [b for b in calibration["reliability"] if b["n"]]
    confidence = sum(b["n"] * b["confidence"] for b in bins) / max(1, sum(b["n"] for b in bins))
    how = "timid" if confidence < accuracy else "overconfident"
    return (f"          the probabilities are {how}: {confidence:.0%} confidence on average where {accuracy:.0%} "
            "are right; retrain with --calibrate temperature (fitted on the shots) or --calibrate auto before "
            "trusting them, e.g. for --abstain-below")


def _print_report(report: dict) -> None:
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
            hint = calibration_hint(cal, report["accuracy"])
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
