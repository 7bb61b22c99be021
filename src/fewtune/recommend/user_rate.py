"""User rate: every item gets the same score for a user, their own smoothed like rate.

Popularity's mirror image: it ignores the item and reads only the user's known ratings, their share
of likes pulled toward the training users' overall rate by `smoothing` pseudo-ratings. On TALLRec's
protocol (ML-100k, a rating above 3 is a like) this alone scores a pooled AUC of 0.707 over the
test samples with no training samples at all: some people like most of what they rate. A method
that learns from ratings, or an LM, must beat it to have learned anything about the items.
Within one user the item's popularity breaks the ties, so a ranking is still a ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, TrainSet, register_recommender, smoothed_like_rate


@dataclass
class UserRateParams(RecommenderParams):
    smoothing: float = param(2.0, "pseudo-ratings at the overall like rate added to the user's own")

    def check(self, problems: list[str]) -> None:
        if self.smoothing < 0:
            problems.append(f"smoothing must be ≥ 0, got {self.smoothing}")


@register_recommender
class UserRate(Recommender):
    name = "user-rate"
    description = "the user's own smoothed like rate over their known ratings; ignores the item (ties: popularity)"
    params_class = UserRateParams

    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        likes, total = train.like_counts()
        self.item_rate_, self.overall_ = smoothed_like_rate(likes, total, 5.0)
        return {"overall_like_rate": round(self.overall_, 4)}

    def personalise(self, items, labels) -> float:
        labels = np.asarray(labels)
        s = self.params.smoothing
        return float(((labels > 0).sum() + s * self.overall_) / (len(labels) + s)) if len(labels) + s else self.overall_

    def like_proba(self, user: float, items: np.ndarray) -> np.ndarray:
        return np.full(len(np.asarray(items).reshape(-1)), user, dtype=np.float64)

    def rank_scores(self, user: float, items: np.ndarray) -> np.ndarray:
        return user + 1e-6 * self.item_rate_[np.asarray(items, dtype=np.int64)]

    def state(self) -> dict[str, np.ndarray]:
        return {"item_rate": self.item_rate_, "overall": np.array([self.overall_])}

    def load_state(self, arrays) -> None:
        if "item_rate" not in arrays or "overall" not in arrays:
            raise FewtuneError("user-rate weights lack item_rate/overall")
        self.item_rate_, self.overall_ = arrays["item_rate"], float(arrays["overall"][0])
