"""From class probabilities to labels: one rule for every classifier fewtune has, the PyTorch one
(`FewShotClassifier`) and the ONNX Runtime one (`export.OnnxClassifier`). Torch-free on purpose, so
an exported model predicts without importing torch."""

from __future__ import annotations

import numpy as np


def plain_label(value):
    """numpy scalars -> Python scalars, so labels are JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


class ProbabilityLabels:
    """`predict` and `predict_label_sets` from `predict_proba`, `classes_` and `multi_label_`, so that
    predict always agrees with predict_proba (the argmax; 0.5 per label for multi-label models)."""

    def predict(self, X) -> np.ndarray:
        """Labels; for a multi-label model the 0/1 indicator matrix (columns in `classes_` order)."""
        proba = self.predict_proba(X)
        if self.multi_label_:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_label_sets(self, X) -> list[list]:
        """Multi-label predictions as lists of label names (empty when no label reaches 0.5)."""
        indicator = self.predict(X)
        if not self.multi_label_:
            return [[label] for label in indicator]
        return [[plain_label(c) for c, on in zip(self.classes_, row) if on] for row in indicator]
