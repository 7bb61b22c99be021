"""Every recommendation method (each lives in its own module, which registers it on import), and the
look-ups by name. Here rather than in base, which the methods import: base knows no method."""

from __future__ import annotations

from . import hierarchical, item_knn, mf, popularity, tallrec, user_rate  # noqa: F401
from .base import RECOMMENDERS, Recommender

get_recommender = RECOMMENDERS.get


def build_recommender(name: str, params: dict | None = None, *, backbone: str | None = None,
                      device: str | None = None) -> Recommender:
    cls = get_recommender(name)
    return cls(cls.params_class.from_dict(params, method=name), backbone=backbone, device=device)


__all__ = ["RECOMMENDERS", "build_recommender", "get_recommender"]
