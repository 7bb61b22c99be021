"""The audit of `fewtune check-data` and `train --check-data` (the command: cli/check_data.py): the few shots checked before any training.

The checks themselves are `fewtune.data.audit` (pure logic); this module supplies what they need
from a backbone: embeddings (a causal LM is mean-pooled, see backbones.load_encoder) and lengths in
the backbone's own tokens. Torch is imported only when an audit runs (the encoder and its embeddings), so
the CLI, which imports this module for check-data, stays quick.
"""

from __future__ import annotations

import dataclasses

import typer

from .. import backbones
from ..backbones.catalog import CAUSAL_LM, DEFAULT_ENCODER
from ..backbones.prefix import text_prefix, with_prefix
from ..backbones.quiet_loading import quiet_libraries
from ..errors import FewtuneError
from ..model_texts import join_pairs
from ..progress import Progress
from .audit import IMBALANCE, NEAR_DUPLICATE, AuditReport, audit
from .language import warn_if_unreadable


def run_audit(data, *, backbone: str = DEFAULT_ENCODER, max_tokens: int | None = None,
              near_duplicate: float = NEAR_DUPLICATE, imbalance: float = IMBALANCE, seed: int = 0,
              trust: bool = False, device: str | None = None, show_progress: bool = False) -> AuditReport:
    """Audit LabeledTexts with `backbone`'s embeddings and tokenizer; max_tokens None: the backbone's own limit."""
    from ..training.embed_texts import encode  # why: torch; the CLI imports this module for check-data's --help

    if data.labels is None:
        raise FewtuneError(f"{data.source}: no labels to check")
    resolved = dataclasses.replace(backbones.resolve_backbone(backbone), trusted=trust)
    encoder = backbones.load_encoder(resolved, device=device)
    texts = joined_texts(data, encoder.tokenizer)
    # An English-only encoder's embeddings say little about Chinese text: the suspects would be noise.
    warn_if_unreadable(texts, resolved.name, resolved.kind)
    with Progress(show_progress and len(texts) > 64) as progress:
        embeddings = encode(encoder, texts, progress=progress, description="Embedding the examples")
    # Counted with the special tokens and without truncation: what the backbone would be given
    # (quiet: transformers warns about every text over the limit, which is what is being counted).
    with quiet_libraries():
        token_counts = [len(ids) for ids in encoder.tokenizer(with_prefix(texts, text_prefix(encoder)),
                                                              truncation=False)["input_ids"]]
    return audit(data.texts, data.labels, data.rows, embeddings=embeddings, token_counts=token_counts,
                 max_tokens=max_tokens or encoder.max_seq_length, source=data.source, text_pairs=data.text_pairs,
                 near_duplicate=near_duplicate, imbalance=imbalance, seed=seed,
                 centre=resolved.kind == CAUSAL_LM)


def joined_texts(data, tokenizer) -> list[str]:
    """Sentence pairs as the encoder methods see them: one input, the two joined by the separator."""
    if data.text_pairs is None:
        return list(data.texts)
    return join_pairs(data.texts, data.text_pairs, getattr(tokenizer, "sep_token", None))


def render(report: AuditReport, texts_by_row: dict[str, str] | None = None) -> str:
    """The report for a terminal: errors, then warnings, each naming rows; a summary line last."""
    texts_by_row = texts_by_row or {}
    counts = ", ".join(f"{label} {n}" for label, n in report.class_counts.items())
    lines = [f"checked {report.n} examples of {report.source} ({counts})"]
    for finding in report.findings:
        lines.append(f"{finding.severity}: [{finding.kind}] {finding.message}")
        if finding.kind == "suspect-label" and finding.rows[0] in texts_by_row:
            lines.append(f"    {_snippet(texts_by_row[finding.rows[0]])}")
    lines += [f"note: {note}" for note in report.notes]
    n_errors, n_warnings = len(report.errors), len(report.warnings)
    lines.append(f"{n_errors} error{'s' * (n_errors != 1)}, {n_warnings} warning{'s' * (n_warnings != 1)}")
    return "\n".join(lines)


def _snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def error_message(report: AuditReport) -> str:
    first = report.errors[0]
    more = f" ({len(report.errors) - 1} more errors)" if len(report.errors) > 1 else ""
    return f"check-data found errors in {report.source}: {first.message}{more}"


def token_limit(method_cls, method_params) -> int | None:
    """The tokens of each text a method reads, when its parameters cap it (None: the backbone's own limit)."""
    for name in method_cls.length_params:
        if getattr(method_params, name, 0):
            return int(getattr(method_params, name))
    return None


def check_before_training(train_set, *, backbone: str, max_tokens: int | None, quiet: bool, trust: bool,
                          device: str | None, seed: int = 0) -> dict:
    """`train --check-data`: report on stderr; a FewtuneError (exit 2) naming the rows when there are errors."""
    report = run_audit(train_set, backbone=backbone, max_tokens=max_tokens, seed=seed, trust=trust, device=device,
                       show_progress=not quiet)
    if report.errors or not quiet:
        typer.echo(render(report, dict(zip(train_set.rows, train_set.texts))), err=True)
    if report.errors:
        raise FewtuneError(error_message(report) + "; fix the data, or train without --check-data")
    return report.to_dict()
