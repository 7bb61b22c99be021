"""Item-kNN: items are similar when the same training users liked (or disliked) both.

Each item is the column of the training users' labels (+1 like, −1 dislike, 0 otherwise); two
items' similarity is the cosine of their columns, shrunk by n/(n + shrinkage) where n is the number
of users who labeled both (Koren 2008), so an agreement of two users counts less than one of
two hundred. Each item keeps its `neighbors` most similar items by |similarity| (negative ones say
"people who like this dislike that" and are kept).

For a user with known items i and labels yᵢ = ±1, the vote on item j is v = Σ sᵢⱼ yᵢ out of a weight
w = Σ |sᵢⱼ|, and
    P(like j) = ((w + v)/2 + α·pⱼ) / (w + α)
the share of similarity-weighted likes, backed off to the item's popularity pⱼ with α pseudo-votes:
an item with no similar known item gets its popularity, never a coin flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, TrainSet, register_recommender, smoothed_like_rate


@dataclass
class ItemKnnParams(RecommenderParams):
    neighbors: int = param(100, "similar items kept per item (0 = all)")
    shrinkage: float = param(10.0, "co-raters at which a similarity counts half")
    backoff: float = param(1.0, "pseudo-votes α at the item's popularity")
    smoothing: float = param(5.0, "pseudo-ratings in the popularity back-off")

    def check(self, problems: list[str]) -> None:
        if self.neighbors < 0:
            problems.append(f"neighbors must be ≥ 0, got {self.neighbors}")
        for name in ("shrinkage", "backoff", "smoothing"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(self, name)}")


@register_recommender
class ItemKnn(Recommender):
    name = "item-knn"
    description = "cosine similarity of items over the training users' likes/dislikes, votes from the user's known items"
    params_class = ItemKnnParams

    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        y = train.labels.astype(np.float64).tocsc()
        seen = y.copy()
        seen.data = np.ones_like(seen.data)
        dot = (y.T @ y).toarray()
        co = (seen.T @ seen).toarray()
        norms = np.sqrt(np.diag(dot))
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = dot / np.outer(norms, norms) * (co / (co + self.params.shrinkage))
        sim = np.nan_to_num(sim, nan=0.0, posinf=0.0, neginf=0.0)
        np.fill_diagonal(sim, 0.0)
        n = train.n_items
        k = n - 1 if self.params.neighbors == 0 else min(self.params.neighbors, n - 1)
        top = np.argpartition(-np.abs(sim), kth=max(k - 1, 0), axis=1)[:, :k] if k > 0 else np.zeros((n, 0), int)
        self.neighbor_index_ = top.astype(np.int64)
        self.neighbor_sim_ = np.take_along_axis(sim, top, axis=1).astype(np.float32)
        likes, total = train.like_counts()
        self.popularity_, _ = smoothed_like_rate(likes, total, self.params.smoothing)
        self._build()
        return {"neighbors": int(k)}

    def _build(self) -> None:
        from scipy import sparse

        n, k = self.neighbor_index_.shape
        rows = np.repeat(np.arange(n), k)
        self._sim = sparse.csr_matrix((self.neighbor_sim_.reshape(-1).astype(np.float64),
                                       (rows, self.neighbor_index_.reshape(-1))), shape=(n, n))

    def personalise(self, items, labels):
        return np.asarray(items, dtype=np.int64), np.asarray(labels, dtype=np.float64)

    def like_proba(self, user, items: np.ndarray) -> np.ndarray:
        known, labels = user
        items = np.asarray(items, dtype=np.int64)
        prior = self.popularity_[items]
        if len(known) == 0:
            return prior
        s = self._sim[items][:, known].toarray()  # (candidates, known): sᵢⱼ of each candidate's neighbours
        vote, weight = s @ labels, np.abs(s).sum(1)
        alpha = self.params.backoff
        return ((weight + vote) / 2 + alpha * prior) / np.maximum(weight + alpha, 1e-12)

    def state(self) -> dict[str, np.ndarray]:
        return {"neighbor_index": self.neighbor_index_, "neighbor_sim": self.neighbor_sim_, "popularity": self.popularity_}

    def load_state(self, arrays) -> None:
        try:
            self.neighbor_index_ = arrays["neighbor_index"].astype(np.int64)
            self.neighbor_sim_, self.popularity_ = arrays["neighbor_sim"], arrays["popularity"]
        except KeyError as e:
            raise FewtuneError(f"item-knn weights lack {e}") from None
        self._build()
