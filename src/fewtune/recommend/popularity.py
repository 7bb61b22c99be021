"""Popularity: every user gets the same scores, the item's like rate among the training users.

The rate is smoothed toward the overall like rate with `smoothing` pseudo-ratings, so an item liked
by its only rater does not outrank one liked by 400 of 450. The user's own ratings are ignored:
it is the baseline every personalised method must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, TrainSet, register_recommender, smoothed_like_rate


@dataclass
class PopularityParams(RecommenderParams):
    smoothing: float = param(5.0, "pseudo-ratings at the overall like rate added to every item")
    rank_by: str = param("like_rate", "like_rate (smoothed share of likes) or likes (number of training users who "
                                      "liked it, the classic MostPop)")

    def check(self, problems: list[str]) -> None:
        if self.smoothing < 0:
            problems.append(f"smoothing must be ≥ 0, got {self.smoothing}")
        if self.rank_by not in ("like_rate", "likes"):
            problems.append(f"rank_by must be like_rate or likes, got {self.rank_by!r}")


@register_recommender
class Popularity(Recommender):
    name = "popularity"
    description = "the item's smoothed like rate among the training users; ignores the user's ratings"
    params_class = PopularityParams

    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        likes, total = train.like_counts()
        self.like_rate_, overall = smoothed_like_rate(likes, total, self.params.smoothing)
        self.likes_ = likes
        return {"overall_like_rate": round(overall, 4)}

    def personalise(self, items, labels):
        return None

    def like_proba(self, user, items: np.ndarray) -> np.ndarray:
        return self.like_rate_[np.asarray(items, dtype=np.int64)]

    def rank_scores(self, user, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        if self.params.rank_by == "likes":
            return self.likes_[items] + 1e-6 * self.like_rate_[items]  # the rate breaks ties between counts
        return self.like_rate_[items]

    def state(self) -> dict[str, np.ndarray]:
        return {"like_rate": self.like_rate_, "likes": self.likes_}

    def load_state(self, arrays) -> None:
        if "like_rate" not in arrays or "likes" not in arrays:
            raise FewtuneError("popularity weights lack like_rate/likes")
        self.like_rate_, self.likes_ = arrays["like_rate"], arrays["likes"]
