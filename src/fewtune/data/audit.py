"""Audit a handful of labeled examples before training on them (`fewtune check-data`).

With eight examples per class one wrong label or one near-copy moves accuracy by points, so the few
shots are worth a look first. Pure logic over what the caller computed (embeddings, token counts):
no model is loaded here (that is `fewtune.data.audit_backbone`), so every rule is tested on planted cases.

- label conflicts: the same text (ignoring case and spacing) under two labels. An error: no model
  can fit both, and one of them is wrong.
- duplicates: the same text twice with the same label (it counts twice); near-duplicates: cosine
  similarity of the embeddings at or above a threshold (a causal LM's centred first, see _unit_rows).
- likely mislabeled examples, confident-learning style (Northcutt, Jiang and Chuang 2021,
  "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70): each example's class
  probabilities come from a logistic regression on the embeddings of the *other* examples
  (stratified K-fold, so no example scores its own label); an example is suspect when those
  predict another class, ranked by self-confidence (the out-of-fold probability of the given
  label, lowest first), each with the label the others suggest. Why not the full confident joint
  (cleanlab's find_label_issues): its per-class thresholds are the mean probability a class's
  examples give their own label, which at 4-16 soft, noisy examples per class sits above what a
  flipped example gets for its true class, so it flags too little (BBC, 8 per class, one flip per
  class, MiniLM, 3 draws, cleanlab 2.9.0 tried during development: it caught 47-60% of the flips,
  "predicted ≠ given" 87%, from the same probabilities).
- class imbalance (largest class / smallest class above a ratio) and texts longer than the
  backbone reads (in tokens: the rest is cut off).

Errors stop `fewtune train --check-data`; warnings are reported and training goes on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .labeled import normalize_text

ERROR, WARNING = "error", "warning"
NEAR_DUPLICATE = 0.95  # cosine similarity; on MiniLM a copy with "." changed to "!" scores 0.96
IMBALANCE = 1.5  # largest / smallest class: 12 against 8 shots is already a different prior
MAX_FOLDS = 10


@dataclass
class Finding:
    """One thing worth a look: what kind, how serious, which rows, and why."""

    kind: str  # label-conflict, duplicate, near-duplicate, suspect-label, imbalance, too-long
    severity: str  # ERROR or WARNING
    rows: list[str]
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    source: str
    n: int
    class_counts: dict[str, int]
    findings: list[Finding]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # checks that could not run, and why
    # Per example (data order): out-of-fold probability of its own label; None when not computed.
    self_confidence: list[float] | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"], out["warnings"] = len(self.errors), len(self.warnings)
        return out


# --- the checks ----------------------------------------------------------------------------------


def exact_duplicates(keys: Sequence, labels: Sequence, rows: Sequence[str]) -> list[Finding]:
    """Same key (normalised text) under two labels: an error; under one label: a warning."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    findings = []
    for members in groups.values():
        if len(members) < 2:
            continue
        named = [rows[i] for i in members]
        distinct = sorted({str(labels[i]) for i in members})
        if len(distinct) > 1:
            findings.append(Finding(
                "label-conflict", ERROR, named,
                f"the same text under {len(distinct)} labels ({', '.join(distinct)}): "
                f"{', '.join(f'{rows[i]} = {labels[i]!r}' for i in members)}; keep the right one",
                {"labels": [str(labels[i]) for i in members]}))
        else:
            findings.append(Finding(
                "duplicate", WARNING, named,
                f"the same text {len(members)} times under {distinct[0]!r} ({', '.join(named)}); it counts "
                f"{len(members)} times in training", {"label": distinct[0]}))
    return findings


def near_duplicates(embeddings: np.ndarray, keys: Sequence, labels: Sequence, rows: Sequence[str],
                    threshold: float = NEAR_DUPLICATE, *, centre: bool = False) -> list[Finding]:
    """Pairs whose cosine similarity is at least `threshold` (exact duplicates are left to exact_duplicates)."""
    unit = _unit_rows(embeddings, centre)
    findings = []
    block = 1024  # similarities a block of rows at a time: memory stays O(block × n) for a large file
    for start in range(0, len(unit), block):
        sims = unit[start:start + block] @ unit.T
        for a, b in zip(*np.nonzero(sims >= threshold)):
            i, j = start + int(a), int(b)
            if j <= i or keys[i] == keys[j]:
                continue
            same = labels[i] == labels[j]
            what = f"both {labels[i]!r}" if same else f"{labels[i]!r} and {labels[j]!r}"
            findings.append(Finding(
                "near-duplicate", WARNING, [rows[i], rows[j]],
                f"{rows[i]} and {rows[j]} are near-duplicates (cosine {sims[a, b]:.3f}, {what})",
                {"similarity": round(float(sims[a, b]), 4), "labels": [str(labels[i]), str(labels[j])]}))
    findings.sort(key=lambda f: -f.details["similarity"])
    return findings


def class_imbalance(labels: Sequence, max_ratio: float = IMBALANCE) -> list[Finding]:
    counts = _counts(labels)
    largest, smallest = max(counts, key=counts.get), min(counts, key=counts.get)
    ratio = counts[largest] / counts[smallest]
    if ratio <= max_ratio:
        return []
    return [Finding(
        "imbalance", WARNING, [],
        f"classes are imbalanced: {largest!r} has {counts[largest]} examples, {smallest!r} {counts[smallest]} "
        f"(ratio {ratio:.1f} > {max_ratio:g}); a model learns the imbalance as a prior (class_weight=balanced "
        "counters it)", {"ratio": round(ratio, 3), "counts": counts})]


def too_long(token_counts: Sequence[int], max_tokens: int, rows: Sequence[str]) -> list[Finding]:
    """Texts the backbone reads only the start of (counted in the backbone's tokens, not characters)."""
    over = [(rows[i], int(n)) for i, n in enumerate(token_counts) if n > max_tokens]
    if not over:
        return []
    shown = ", ".join(f"{row} ({n})" for row, n in over[:5]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
    return [Finding(
        "too-long", WARNING, [row for row, _ in over],
        f"{len(over)} text{'s are' if len(over) != 1 else ' is'} longer than the {max_tokens} tokens the backbone "
        f"reads; the rest is cut off: {shown}. Encoder methods read them whole, in overlapping windows, "
        "with -p long_texts=chunks",
        {"max_tokens": max_tokens, "tokens": {row: n for row, n in over}})]


def out_of_fold_probabilities(embeddings: np.ndarray, y: np.ndarray, *, folds: int = MAX_FOLDS,
                              seed: int = 0, C: float = 10.0, centre: bool = False) -> np.ndarray:
    """(n, classes) probabilities of each example from a model that never saw it.

    Logistic regression on unit-length embeddings (centred first with centre=True), stratified K-fold with as many folds as the
    smallest class allows (at most `folds`): with 8 shots per class that is 8 folds, each training
    on 7 of every class. Every class needs at least 2 examples. C=10: unit-length embeddings are
    small numbers, and sklearn's C=1 leaves the probabilities near uniform at these sizes (on
    MiniLM's mr and bbc draws with flipped labels, C in 1/10/100 ranked the flips within a few points).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    n_classes = int(y.max()) + 1
    smallest = int(np.bincount(y, minlength=n_classes).min())
    if smallest < 2:
        raise ValueError("every class needs at least 2 examples for out-of-fold probabilities")
    X = _unit_rows(embeddings, centre)
    probs = np.zeros((len(y), n_classes))
    splitter = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    for train, held in splitter.split(X, y):
        model = LogisticRegression(C=C, max_iter=2000).fit(X[train], y[train])
        probs[np.ix_(held, model.classes_)] = model.predict_proba(X[held])
    return probs


def suspect_labels(probs: np.ndarray, y: np.ndarray, classes: Sequence, rows: Sequence[str]) -> list[Finding]:
    """Examples the others' out-of-fold prediction puts in another class, least self-confident first."""
    y = np.asarray(y)
    self_confidence = probs[np.arange(len(y)), y]
    suspects = np.flatnonzero(probs.argmax(1) != y)
    findings = []
    for rank, i in enumerate(suspects[np.argsort(self_confidence[suspects], kind="stable")], start=1):
        i = int(i)
        given, suggested = classes[y[i]], classes[int(probs[i].argmax())]
        findings.append(Finding(
            "suspect-label", WARNING, [rows[i]],
            f"{rows[i]} is labeled {given!r} but the other examples say {suggested!r} "
            f"(p = {probs[i, y[i]]:.2f} for {given!r}, {probs[i].max():.2f} for {suggested!r})",
            {"rank": rank, "given": str(given), "suggested": str(suggested),
             "p_given": round(float(probs[i, y[i]]), 4), "p_suggested": round(float(probs[i].max()), 4)}))
    return findings


# --- all of it -----------------------------------------------------------------------------------


def audit(texts: Sequence[str], labels: Sequence, rows: Sequence[str], *, embeddings: np.ndarray | None,
          token_counts: Sequence[int] | None = None, max_tokens: int | None = None, source: str = "data",
          text_pairs: Sequence[str] | None = None, near_duplicate: float = NEAR_DUPLICATE,
          imbalance: float = IMBALANCE, folds: int = MAX_FOLDS, seed: int = 0, centre: bool = False) -> AuditReport:
    """Every check on one labeled set; embeddings None skips the ones that need them (noted).

    centre=True for embeddings that were not trained for cosine similarity (a causal LM's, mean-pooled).
    """
    pairs = text_pairs if text_pairs is not None else [None] * len(texts)
    keys = [(normalize_text(t), None if p is None else normalize_text(p)) for t, p in zip(texts, pairs)]
    classes = sorted({str(label) for label in labels})
    y = np.array([classes.index(str(label)) for label in labels])
    findings = exact_duplicates(keys, labels, rows)
    notes: list[str] = []
    self_confidence = None
    if embeddings is None:
        notes.append("no embeddings: near-duplicates and suspect labels not checked")
    else:
        findings += near_duplicates(embeddings, keys, labels, rows, near_duplicate, centre=centre)
        if len(classes) < 2:
            notes.append("one class only: suspect labels not checked")
        elif np.bincount(y).min() < 2:
            notes.append("a class has a single example: suspect labels need at least 2 of every class")
        else:
            probs = out_of_fold_probabilities(embeddings, y, folds=folds, seed=seed, centre=centre)
            findings += suspect_labels(probs, y, classes, rows)
            self_confidence = [round(float(p), 6) for p in probs[np.arange(len(y)), y]]
    findings += class_imbalance(labels, imbalance) if len(classes) > 1 else []
    if token_counts is not None and max_tokens:
        findings += too_long(token_counts, max_tokens, rows)
    order = {ERROR: 0, WARNING: 1}
    findings.sort(key=lambda f: order[f.severity])  # stable: each check's own order is kept
    settings = {"near_duplicate": near_duplicate, "imbalance": imbalance, "folds": folds, "seed": seed,
                "max_tokens": max_tokens, "centre": centre}
    return AuditReport(source, len(texts), _counts(labels), findings, settings, notes, self_confidence)


def _counts(labels: Sequence) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[str(label)] += 1
    return dict(sorted(counts.items()))


def _unit_rows(x: np.ndarray, centre: bool = False) -> np.ndarray:
    """Embeddings at unit length; with centre=True, minus their mean first (for a causal LM's).

    A causal LM's mean-pooled states share one large direction (any two Gemma 3 headline embeddings:
    cosine 0.96 at the median, 0.99 at most, so every pair would look like a near-duplicate and the
    logistic regression sees mostly that direction). Removing the mean (as in Mu and Viswanath 2018,
    "All-but-the-Top") leaves what tells the texts apart: median 0.0, most similar pair 0.79 on 80
    THUCNews headlines. A sentence encoder was trained for cosine similarity as it is, and the
    threshold means what it says there: no centring (it would also shorten every vector and so
    lower a near-copy's similarity). Uses no labels, only the texts being checked.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0) if centre and len(x) > 1 else x
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
