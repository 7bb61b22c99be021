"""The unlabeled pool: read in chunks, checked before any model runs, hashed for the student's card."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backbones.catalog import BACKBONES, MULTILINGUAL
from ..data import DataWarning
from ..data.language import MOSTLY_CJK, cjk_fraction
from ..data.stream import stream_texts
from ..errors import DataError

# Fewer texts than this teach a student nothing the shots did not: an error, not a weak model.
MIN_POOL = 20
# Below this a student is trained but warned about: distillation gains come from thousands of texts.
SMALL_POOL = 200
# A class the teacher gives fewer than this share of its fair share of the pool is learned mostly from the shots.
SCARCE_SHARE = 0.2


@dataclass
class Pool:
    file: str
    texts: list[str]  # the texts used, in file order (all of them, or a sample of max_texts)
    n_texts: int  # texts in the file
    sha256: str  # of every text in the file, in order: which pool a student learned from


def read_pool(path: str | Path, *, text_col: str = "text", encoding: str = "utf-8", max_texts: int = 0,
              seed: int = 0) -> Pool:
    """All the texts of `path` (CSV, TSV, JSONL, Parquet), validated row by row; at most max_texts (0 = all),
    a random sample in file order."""
    texts: list[str] = []
    digest = hashlib.sha256()
    for chunk in stream_texts(path, text_col=text_col, encoding=encoding).chunks:
        for text in chunk.data.texts:
            digest.update(text.encode("utf-8") + b"\n")
        texts.extend(chunk.data.texts)
    if len(texts) < MIN_POOL:
        raise DataError(f"{path}: {len(texts)} unlabeled texts; distillation needs at least {MIN_POOL} (thousands "
                        "help most), since a student learns from what the teacher says about them")
    if len(texts) < SMALL_POOL:
        warnings.warn(f"{path}: only {len(texts)} unlabeled texts; a student learns little from a pool this small "
                      "(thousands help most)", DataWarning, stacklevel=2)
    n_texts = len(texts)
    if max_texts and n_texts > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(n_texts, max_texts, replace=False))
        texts = [texts[i] for i in keep]
    return Pool(str(path), texts, n_texts, digest.hexdigest())


def warn_if_foreign(texts: list[str], backbone_name: str | None, role: str, source: str) -> None:
    """Warn when a named English-only backbone (the teacher's or the student's) meets a mostly-CJK pool."""
    spec = BACKBONES.get(str(backbone_name).lower())
    if spec is None or spec.multilingual:
        return  # a local folder or hub id: fewtune does not know what it was trained on
    fraction = cjk_fraction(texts[:2000])
    if fraction > MOSTLY_CJK:
        warnings.warn(f"{source}: {fraction:.0%} of the letters are Chinese/Japanese/Korean, but the {role}'s backbone "
                      f"'{spec.name}' is English-only: its labels will be near chance; use a teacher and student on a "
                      f"multilingual backbone: --backbone {MULTILINGUAL['encoder']} for the student, a teacher "
                      f"trained on it (or on {MULTILINGUAL['causal-lm']})", DataWarning, stacklevel=2)


def warn_if_one_sided(soft: np.ndarray, classes: list, source: str) -> None:
    """Warn when the teacher's labels leave a class nearly absent from the pool (a pool cut from a sorted file,
    say): the student then learns to say the common classes, and its agreement with the teacher on held-out pool
    texts, drawn from the same pool, will not show it."""
    counts = np.bincount(soft.argmax(1), minlength=len(classes))
    fair = len(soft) / len(classes)
    scarce = [f"'{c}' {n}" for c, n in zip(classes, counts) if n < SCARCE_SHARE * fair]
    if scarce:
        top = int(counts.argmax())
        warnings.warn(f"{source}: the teacher labels {counts[top]} of {len(soft)} pool texts '{classes[top]}' and "
                      f"few as {', '.join(scarce)}; the student learns those classes mostly from the shots. A pool "
                      "drawn from every kind of text the model will meet (not one part of a sorted file) helps",
                      DataWarning, stacklevel=2)
