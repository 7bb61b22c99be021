"""`fewtune predict` and `suggest`: a saved classifier on texts or a pool (`evaluate`, on labeled data: evaluate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import checks
from .options import ClassPrior, Encoding, Json, LabelSep, Quiet, TextCol, Trust, note, print_json, stdin_texts, table


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
    from ..saved_models import check_classifier_folder, load_classifier, saved_facts

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
    from ..saved_models import check_classifier_folder, saved_facts

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
