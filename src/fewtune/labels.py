"""From class probabilities to labels: one rule for every classifier fewtune has, the PyTorch one
(`FewShotClassifier`) and the ONNX Runtime one (`export.OnnxClassifier`), and for every place that
reports predictions (`fewtune predict`, batch prediction, the server's /predict). Torch-free on
purpose, so an exported model predicts without importing torch."""

from __future__ import annotations

import numpy as np

from .errors import FewtuneError
from .label_sets import to_indicator

THRESHOLD = 0.5  # a multi-label model says every label whose probability reaches this


def plain_label(value):
    """numpy scalars -> Python scalars, so labels are JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def label_indices(labels, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """(classes, index of each label): the sorted labels seen, or the given `classes` (a student's, whose
    soft targets cover classes its shots may lack); a label outside them is an error."""
    classes = np.array(sorted(set(labels)) if classes is None else list(classes), dtype=object)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels} - {str(c) for c in classes})
    if unknown:
        raise FewtuneError(f"labels {unknown} are not among the classes {list(classes)}")
    return classes, np.array([index[label] for label in labels])


class ProbabilityLabels:
    """`predict` and `predict_label_sets` from `predict_proba`, `classes_` and `multi_label_`, so that
    predict always agrees with predict_proba (the argmax; THRESHOLD per label for multi-label models)."""

    def predict(self, X) -> np.ndarray:
        """Labels; for a multi-label model the 0/1 indicator matrix (columns in `classes_` order)."""
        proba = self.predict_proba(X)
        if self.multi_label_:
            return (proba >= THRESHOLD).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; for multi-label models subset accuracy (every label of a text right), as scikit-learn."""
        from sklearn.metrics import accuracy_score

        if self.multi_label_:
            y = to_indicator(y, list(self.classes_), source="scoring labels")
        return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))

    def predict_label_sets(self, X) -> list[list]:
        """Multi-label predictions as lists of label names (empty when no label reaches THRESHOLD)."""
        indicator = self.predict(X)
        if not self.multi_label_:
            return [[label] for label in indicator]
        return [[plain_label(c) for c, on in zip(self.classes_, row) if on] for row in indicator]


def prediction_rows(proba, classes, *, multi_label: bool, abstain_below: float | None = None,
                    abstain_label: str = "unknown") -> list[dict]:
    """One row per text from its class probabilities, for every consumer to format its own way.

    Single-label: `label` (the argmax, or `abstain_label` when its probability is below
    `abstain_below`), `probability` and `abstained`; multi-label: `labels`, those at THRESHOLD or
    above. Both: `probabilities`, {class name: probability}. Probabilities are rounded to 6 places
    for display; the decisions are taken on the unrounded values.
    """
    classes = [plain_label(c) for c in classes]
    rows = []
    for p in proba:
        if multi_label:
            row = {"labels": [c for c, v in zip(classes, p) if v >= THRESHOLD]}
        else:
            best = int(p.argmax())
            abstained = abstain_below is not None and float(p[best]) < abstain_below
            row = {"label": abstain_label if abstained else classes[best], "probability": round(float(p[best]), 6),
                   "abstained": abstained}
        row["probabilities"] = {str(c): round(float(v), 6) for c, v in zip(classes, p)}
        rows.append(row)
    return rows
