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

import numpy as np


def rank_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of scores (…, n) against the 0/1 labels y (n,), ties counted half: the
    Mann–Whitney statistic from the scores' ranks, equal to sklearn's roc_auc_score, one row per seed or
    bootstrap resample at once."""
    from scipy.stats import rankdata  # why: scipy.stats takes ~2 s to import; `recommend bench` checks options first

    scores = np.atleast_2d(scores)
    ranks = rankdata(scores, axis=-1)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[:, pos].sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def user_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of scores for likes (+1) over dislikes (−1); neutral (0) ignored; None without both classes."""
    labels = np.asarray(labels)
    keep = labels != 0
    y = labels[keep] > 0
    if y.all() or not y.any():
        return None
    return float(rank_auc(y, np.asarray(scores)[keep])[0])


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
