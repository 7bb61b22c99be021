"""`fewtune check-data`: audit labeled examples before training (the audit itself: fewtune.check_data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..check_data import load_examples, run_audit, render
from ..data.audit import ERROR, IMBALANCE, NEAR_DUPLICATE
from ..errors import FewtuneError


def check_data(
    data: Annotated[Optional[Path], typer.Option(help="Labeled data: CSV, TSV, JSONL or Parquet.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="A built-in dataset instead (see `fewtune datasets`).")] = None,
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column, for sentence-pair tasks.")] = None,
    label_col: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    shots: Annotated[Optional[int], typer.Option(help="Check the K examples per class `train --shots K --seed S` would draw. Default: all rows.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the k-shot draw and of the cross-validation folds.")] = 0,
    backbone: Annotated[str, typer.Option(help="Backbone whose embeddings and tokenizer are used (the one you will train).")] = "minilm",
    max_tokens: Annotated[int, typer.Option(help="Flag texts longer than this many tokens (0 = the backbone's own limit).")] = 0,
    near_duplicate: Annotated[float, typer.Option(help="Cosine similarity at or above which two texts are near-duplicates.")] = NEAR_DUPLICATE,
    imbalance: Annotated[float, typer.Option(help="Warn when the largest class has more than this many times the examples of the smallest.")] = IMBALANCE,
    encoding: Annotated[str, typer.Option(help="Text encoding of the data file, e.g. latin-1.")] = "utf-8",
    trust: Annotated[bool, typer.Option("--trust", help="Load pickle weights and a model folder's own code (only from a source you trust).")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (default: best available).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars; only errors on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")] = False,
):
    """Audit labeled examples before training: likely mislabeled ones (with the suggested label), near-duplicates, the same text under two labels, class imbalance, over-long texts. Exit 2 when there are errors."""
    if shots is not None and shots < 1:
        raise FewtuneError(f"--shots must be at least 1, got {shots}")
    if not 0 < near_duplicate <= 1:
        raise FewtuneError(f"--near-duplicate is a cosine similarity in (0, 1], got {near_duplicate}")
    if imbalance < 1:
        raise FewtuneError(f"--imbalance is a ratio of at least 1, got {imbalance}")
    examples = load_examples(data=data, dataset=dataset, text_col=text_col, label_col=label_col,
                             text_pair_col=text_pair_col, shots=shots, seed=seed, encoding=encoding)
    report = run_audit(examples, backbone=backbone, max_tokens=max_tokens or None, near_duplicate=near_duplicate,
                       imbalance=imbalance, seed=seed, trust=trust, device=device, show_progress=not quiet)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render(report, dict(zip(examples.rows, examples.texts))))
    if any(f.severity == ERROR for f in report.findings):
        raise typer.Exit(2)
