"""Every recommendation method (each lives in its own module, which registers it on import), and the
look-ups by name. Here rather than in base, which the methods import: base knows no method."""

from __future__ import annotations

from ..registry import import_all
from .base import RECOMMENDERS, Recommender

# The modules of this package that hold no recommender; every other one is imported (registry.import_all),
# in alphabetical order, which is the order the methods are listed in.
NOT_RECOMMENDERS = ("api", "base", "data", "embeddings", "evaluate", "history", "logistic", "methods", "metrics",
                    "protocol", "runner", "tallrec_protocol")
import_all(__package__, skip=NOT_RECOMMENDERS)

get_recommender = RECOMMENDERS.get


def build_recommender(name: str, params: dict | None = None, *, backbone: str | None = None,
                      device: str | None = None) -> Recommender:
    cls = get_recommender(name)
    return cls(cls.params_class.from_dict(params, method=name), backbone=backbone, device=device)


__all__ = ["RECOMMENDERS", "build_recommender", "get_recommender"]
