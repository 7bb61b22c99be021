"""Scores for few-shot recommendation: AUC for like/dislike, NDCG@k and Recall@k for ranking.

AUC is computed per user (over their held-out liked vs disliked items) and averaged over the users
who have both, so every user counts once whatever the number of ratings; the pooled AUC puts all
users' predictions in one pool, which also rewards getting the users' overall like rates right.

Ranking: each test user's candidates are their held-out rated items plus `n_unrated` items they
never rated (drawn at random from the catalogue); the relevant ones are the held-out *liked* items.
Unrated items count as not relevant, as in every offline evaluation. The known (history) items are
never candidates. Recall@k is capped, hits / min(k, relevant), so that a user with 80 liked items
can still reach 1 (Liang et al. 2018, "Variational Autoencoders for Collaborative Filtering").
Ranks are taken in candidate order for tied scores, so callers shuffle the candidates first.
"""

from __future__ import annotations

import math

import numpy as np


def user_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of scores for likes (+1) over dislikes (−1); neutral (0) ignored; None without both classes."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    keep = labels != 0
    y = labels[keep] > 0
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores)[keep]))


def ranked_relevance(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevance (0/1) of the top k candidates by score, highest first; ties keep candidate order."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    return np.asarray(relevant, dtype=bool)[order]


def ndcg_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float | None:
    """Binary-relevance NDCG@k: Σ rel_i / log2(i + 2) over the top k, over the same for an ideal ranking."""
    n_relevant = int(np.sum(relevant))
    if n_relevant == 0:
        return None
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = ranked_relevance(scores, relevant, k)
    dcg = float((top * discounts[:len(top)]).sum())
    ideal = float(discounts[:min(k, n_relevant)].sum())
    return dcg / ideal


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float | None:
    """Relevant items in the top k over min(k, number relevant); None when nothing is relevant."""
    n_relevant = int(np.sum(relevant))
    if n_relevant == 0:
        return None
    return float(ranked_relevance(scores, relevant, k).sum()) / min(k, n_relevant)


def mean_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), NaNs and Nones left out."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
