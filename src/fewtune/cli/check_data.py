"""`fewtune check-data`: audit labeled examples before training (the audit itself: fewtune.check_data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..backbones.catalog import DEFAULT_ENCODER
from ..data.audit_backbone import run_audit, render
from ..data.audit import ERROR, IMBALANCE, NEAR_DUPLICATE
from ..errors import FewtuneError
from ..experiment.spec import RunSpec

H = RunSpec.help


def check_data(
    data: Annotated[Optional[Path], typer.Option(help=H("data"))] = None,
    dataset: Annotated[Optional[str], typer.Option(help=H("dataset"))] = None,
    text_col: Annotated[str, typer.Option(help=H("text_col"))] = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help=H("text_pair_col"))] = None,
    label_col: Annotated[str, typer.Option(help=H("label_col"))] = "label",
    shots: Annotated[Optional[int], typer.Option(help="Check the K examples per class `train --shots K --seed S` would draw. Default: all rows.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the k-shot draw and of the cross-validation folds.")] = 0,
    backbone: Annotated[str, typer.Option(help="Backbone whose embeddings and tokenizer are used (the one you will train).")] = DEFAULT_ENCODER,
    max_tokens: Annotated[int, typer.Option(help="Flag texts longer than this many tokens (0 = the backbone's own limit).")] = 0,
    near_duplicate: Annotated[float, typer.Option(help="Cosine similarity at or above which two texts are near-duplicates.")] = NEAR_DUPLICATE,
    imbalance: Annotated[float, typer.Option(help="Warn when the largest class has more than this many times the examples of the smallest.")] = IMBALANCE,
    encoding: Annotated[str, typer.Option(help=H("encoding"))] = "utf-8",
    trust: Annotated[bool, typer.Option("--trust", help="Load pickle weights and a model folder's own code (only from a source you trust).")] = False,
    device: Annotated[Optional[str], typer.Option(help=H("device"))] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars; only errors on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")] = False,
):
    """Audit labeled examples before training: likely mislabeled ones (with the suggested label), near-duplicates, the same text under two labels, class imbalance, over-long texts. Exit 2 when there are errors."""
    spec = RunSpec(data=data, dataset=dataset, text_col=text_col, text_pair_col=text_pair_col, label_col=label_col,
                   encoding=encoding, shots=shots, seed=seed)
    spec.check()
    if not 0 < near_duplicate <= 1:
        raise FewtuneError(f"--near-duplicate is a cosine similarity in (0, 1], got {near_duplicate}")
    if imbalance < 1:
        raise FewtuneError(f"--imbalance is a ratio of at least 1, got {imbalance}")
    from ..experiment import prepare

    examples = prepare(spec, heldout=False).train  # the rows `train` with these options would train on
    report = run_audit(examples, backbone=backbone, max_tokens=max_tokens or None, near_duplicate=near_duplicate,
                       imbalance=imbalance, seed=seed, trust=trust, device=device, show_progress=not quiet)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render(report, dict(zip(examples.rows, examples.texts))))
    if any(f.severity == ERROR for f in report.findings):
        raise typer.Exit(2)
