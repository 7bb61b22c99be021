"""Score a fitted method on cold-start test users: AUC on their held-out likes/dislikes, NDCG/Recall@k.

See metrics.py for the definitions and the candidate set of the ranking metrics.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Recommender
from .data import ColdStartUser, LikeScale
from .metrics import mean_or_none, ndcg_at_k, rank_auc, recall_at_k, user_auc


def candidates_for(task: ColdStartUser, n_items: int, n_unrated: int, rng: np.random.Generator,
                   rated: np.ndarray) -> np.ndarray:
    """The user's held-out rated items plus `n_unrated` random items they never rated, shuffled."""
    pool = task.heldout_items
    if n_unrated:
        unrated = np.setdiff1d(np.arange(n_items), rated)
        pool = np.concatenate([pool, rng.choice(unrated, size=min(n_unrated, len(unrated)), replace=False)])
    return rng.permutation(pool)  # shuffled: ties in the scores must not favour the rated items


def evaluate(model: Recommender, tasks: list[ColdStartUser], scale: LikeScale, n_items: int, *,
             k: int = 10, n_unrated: int = 0, seed: int = 0, progress=None) -> dict:
    """Per-user AUC (mean over users with likes and dislikes held out), pooled AUC, NDCG@k, Recall@k."""
    aucs, ndcgs, recalls, pooled_y, pooled_p = [], [], [], [], []
    task_bar = progress.add("Scoring test users", total=len(tasks)) if progress else None
    start = time.perf_counter()
    for t in tasks:
        user = model.personalise(t.known_items, t.known_labels)
        labels = scale.labels(t.heldout_ratings)
        labeled = labels != 0
        proba = model.like_proba(user, t.heldout_items[labeled])
        aucs.append(user_auc(labels[labeled], proba))
        pooled_y.append(labels[labeled] > 0)
        pooled_p.append(proba)
        rng = np.random.default_rng([seed, t.user, 1])
        rated = np.concatenate([t.known_items, t.heldout_items])
        cands = candidates_for(t, n_items, n_unrated, rng, rated)
        liked = set(t.heldout_items[labels > 0].tolist())
        relevant = np.fromiter((c in liked for c in cands), dtype=bool, count=len(cands))
        scores = model.rank_scores(user, cands)
        ndcgs.append(ndcg_at_k(scores, relevant, k))
        recalls.append(recall_at_k(scores, relevant, k))
        if progress:
            progress.advance(task_bar)
    y, p = np.concatenate(pooled_y), np.concatenate(pooled_p)
    return {
        "auc": mean_or_none(aucs),
        "auc_pooled": float(rank_auc(y, p)[0]) if 0 < y.sum() < len(y) else None,
        f"ndcg@{k}": mean_or_none(ndcgs),
        f"recall@{k}": mean_or_none(recalls),
        "n_users": len(tasks),
        "n_users_auc": sum(a is not None for a in aucs),
        "n_users_ranking": sum(v is not None for v in ndcgs),
        "predict_seconds": round(time.perf_counter() - start, 3),
    }
