"""The one AUC of the recommendation benchmarks (rank_auc) against sklearn's roc_auc_score, ties included."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fewtune.recommend.metrics import rank_auc, user_auc


def _exact_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """P(a liked item outscores a disliked one), ties half, as an exact fraction rounded once."""
    pos, neg = scores[y], scores[~y]
    wins = sum(Fraction(1) if p > q else Fraction(1, 2) if p == q else Fraction(0) for p in pos for q in neg)
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rank_auc_equals_sklearn_with_many_ties_row_by_row(dtype):
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        y = rng.random(n) < 0.4
        y[:2] = [True, False]  # both classes
        scores = np.round(rng.random((3, n)), 1).astype(dtype)  # a tenth's resolution: most scores tie
        scores[2] = 0.5  # a row all tied: 0.5
        aucs = rank_auc(y, scores)
        assert aucs.shape == (3,) and aucs[2] == 0.5
        for row, auc in zip(scores, aucs):
            assert auc == pytest.approx(roc_auc_score(y, row), abs=1e-15)
            assert auc == _exact_auc(y, row.astype(np.float64))  # the exact value, correctly rounded


def test_user_auc_ignores_neutral_labels_and_needs_both_classes():
    labels = np.array([1, -1, 0, 1, -1, 0, 1])
    scores = np.array([0.7, 0.7, 0.1, 0.2, 0.9, 0.99, 0.7])
    keep = labels != 0
    assert user_auc(labels, scores) == pytest.approx(roc_auc_score(labels[keep] > 0, scores[keep]), abs=1e-15)
    assert user_auc(labels, scores) == float(rank_auc(labels[keep] > 0, scores[keep])[0])
    assert user_auc(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3])) is None
    assert user_auc(np.array([0, 0]), np.array([0.1, 0.2])) is None
