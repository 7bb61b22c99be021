"""A synthetic ratings data set whose users' tastes follow item features (see tests/recommend/test_recommend.py)."""

from __future__ import annotations

import numpy as np

from fewtune.recommend import from_triples

WORDS = [("action", "romance"), ("comedy", "drama"), ("space", "western"), ("cartoon", "noir")]
N_ITEMS, N_USERS, PER_USER = 60, 160, 30


def synthetic(seed: int = 0):
    """(RatingsData, item features): ratings 5 (like) or 1 (dislike), a few neutral 3s."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((N_ITEMS, 4))
    texts = [f"film {i}: " + " ".join(WORDS[d][int(features[i, d] < 0)] for d in range(4)) for i in range(N_ITEMS)]
    weights = rng.standard_normal((N_USERS, 4))
    users, items, ratings = [], [], []
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS, PER_USER, replace=False):
            like = rng.random() < 1 / (1 + np.exp(-3 * weights[u] @ features[i]))
            rating = 5 if like else 1
            if rng.random() < 0.05:
                rating = 3
            users.append(f"u{u}")
            items.append(f"m{i}")
            ratings.append(rating)
    data = from_triples(users, items, ratings, [f"m{i}" for i in range(N_ITEMS)], texts, name="synthetic")
    return data, features
