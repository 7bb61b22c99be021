"""Soft targets: rows of class probabilities a student learns instead of one-hot labels (fewtune.distill)."""

from __future__ import annotations

import numpy as np

from ..errors import FewtuneError
from ..methods.base import METHODS


def check_soft_targets(clf, method_cls, soft_targets, classes, multi_label: bool, n: int) -> None:
    """Soft targets fit for training `clf` (with method_cls, its method): a method that learns from them,
    single-label, rows of probabilities."""
    if not method_cls.soft_targets:
        learners = sorted(name for name, m in METHODS.items() if m.soft_targets)
        raise FewtuneError(f"method '{clf.method}' trains on hard labels only; soft targets need one of "
                           f"{', '.join(learners)}")
    if multi_label or classes is None:
        raise FewtuneError("soft targets cover single-label classification and need the list of classes")
    if clf.select or clf.posterior or clf.calibrate:
        raise FewtuneError("soft targets come with their own probabilities: leave select, posterior and "
                           "calibrate unset")
    soft = np.asarray(soft_targets, dtype=np.float64)
    if soft.shape != (n, len(classes)):
        raise FewtuneError(f"soft targets of shape {soft.shape}; expected one row per text and one column per "
                           f"class, ({n}, {len(classes)})")
    if not np.isfinite(soft).all() or (soft < 0).any() or not np.allclose(soft.sum(1), 1.0, atol=1e-4):
        raise FewtuneError("soft targets must be probabilities: non-negative rows that sum to 1")
