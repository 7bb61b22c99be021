"""A run's held-out scores, and what a classifier reads of labeled examples (`inputs`, `targets`).

Torch-free: `fewtune evaluate` scores an ONNX export or a static student with these, without
importing torch, and `fewtune train` and the benchmark's runs report the same numbers.
"""

from __future__ import annotations

from typing import Any

from ..errors import FewtuneError
from ..label_sets import to_indicator
from ..metrics import calibration_report, classification_report, multilabel_report


def inputs(data) -> list:
    """What a classifier reads of labeled examples: the texts, or (text, text_pair) pairs."""
    return data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))


def targets(data, multi_label: bool, sep: str):
    """Labels as read, or for multi-label each cell split into its list of labels."""
    if not multi_label:
        return data.labels
    if not sep:
        raise FewtuneError("--label-sep must not be empty")
    return [[part.strip() for part in str(cell).split(sep) if part.strip()] for cell in data.labels]


def held_out_report(clf, heldout, sep: str) -> dict:
    """Accuracy, macro-F1 and per-class scores of a classifier on labeled examples (with calibration, single-label)."""
    if not clf.multi_label_:
        proba = clf.predict_proba(inputs(heldout))
        # predict is argmax of predict_proba for every single-label method: one pass serves both.
        report = classification_report(heldout.labels, clf.classes_[proba.argmax(1)], clf.classes_)
        return {**report, "calibration": calibration_report(heldout.labels, proba, clf.classes_)}
    truth = to_indicator(targets(heldout, True, sep), list(clf.classes_), source=heldout.source)
    return multilabel_report(truth, clf.predict(inputs(heldout)), clf.classes_)


def evaluation(clf, heldout, what: str, label_sep: str) -> dict[str, Any]:
    """The held-out scores a run reports and its model folder keeps."""
    report = held_out_report(clf, heldout, label_sep)
    scores = {"held_out": what, "n": report["n"], "accuracy": round(report["accuracy"], 4),
              "macro_f1": round(report["macro_f1"], 4)}
    if "calibration" in report:
        scores.update({k: round(report["calibration"][k], 4) for k in ("ece", "nll", "brier")})
    return scores
