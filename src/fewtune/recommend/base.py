"""What every recommendation method provides, and the one registry of them.

A method learns from the training users' likes and dislikes (`fit`), then, for a new user, turns
the handful of items they rated into a per-user state (`personalise`) from which it scores any
items (`like_proba`, `rank_scores`). Its learned state is arrays only (`state`/`from_state`),
saved as safetensors beside a JSON config, never pickled. Methods register themselves with
`@register_recommender`, so adding one means adding one module (`methods` imports every module of the
package but its NOT_RECOMMENDERS, and is where they are looked up: get_recommender, build_recommender).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import FewtuneError
from ..params import Params
from ..registry import Registry

RECOMMENDERS: Registry[type[Recommender]] = Registry("recommendation method")
register_recommender = RECOMMENDERS.register


@dataclasses.dataclass
class RecommenderParams(Params):
    """Hyper-parameters of a recommendation method (fewtune.params.Params' contract).

    Stricter than the classifiers' about typed values (JSON from a bench line or the API): a value
    must already have the field's type, or convert without loss.
    """

    @classmethod
    def _registry(cls) -> Registry:
        return RECOMMENDERS

    @staticmethod
    def _coerce(field: dataclasses.Field, value: Any, method: str) -> Any:
        """CLI strings ("0.5", "true") to the field's type; a typed value must already have it."""
        kind = type(field.default)
        try:
            if kind is bool:
                if isinstance(value, bool):
                    return value
                word = str(value).strip().lower()
                if word in {"1", "true", "yes", "on"}:
                    return True
                if word in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return kind(value)
        except (TypeError, ValueError):
            raise FewtuneError(f"parameter '{field.name}' of method '{method}' must be {kind.__name__}, got {value!r}") from None


@dataclass
class Sample:
    """One (history, target) question: did `user`, having rated `history` (labels ±1), like `target`?"""

    user: int
    target: int
    label: int  # +1 liked, −1 disliked
    history: np.ndarray
    history_labels: np.ndarray


@dataclass
class TrainSet:
    """What a method learns from: the training users' labels (a users × items CSR of ±1) and every item's text.

    `samples`, when set, are the (history, target) questions the labels were built from (TALLRec's
    protocol, where the budget is counted in them); a method that learns from questions (tallrec) uses
    them as they are instead of drawing its own.
    """

    labels: Any  # scipy.sparse.csr_matrix, explicit entries only for liked (+1) and disliked (−1)
    item_texts: list[str]
    samples: list[Sample] | None = None

    @property
    def n_items(self) -> int:
        return self.labels.shape[1]

    def like_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(likes, likes + dislikes) per item."""
        coo = self.labels.tocoo()
        likes = np.bincount(coo.col[coo.data > 0], minlength=self.n_items).astype(np.float64)
        total = np.bincount(coo.col, minlength=self.n_items).astype(np.float64)
        return likes, total


def smoothed_like_rate(likes: np.ndarray, total: np.ndarray, smoothing: float) -> tuple[np.ndarray, float]:
    """(per-item like rate pulled toward the overall rate by `smoothing` pseudo-ratings, overall rate)."""
    overall = float((likes.sum() + 1.0) / (total.sum() + 2.0))
    return (likes + smoothing * overall) / (total + smoothing), overall


class Recommender(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    params_class: ClassVar[type[RecommenderParams]]
    needs_encoder: ClassVar[bool] = False

    def __init__(self, params: RecommenderParams, *, backbone: str | None = None, device: str | None = None):
        self.params = params
        self.backbone = backbone
        self.device = device

    @abstractmethod
    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        """Learn from the training users; return facts about training worth saving."""

    @abstractmethod
    def personalise(self, items: np.ndarray, labels: np.ndarray) -> Any:
        """A new user's state from their known items and labels (±1); K = 0 is allowed."""

    @abstractmethod
    def like_proba(self, user: Any, items: np.ndarray) -> np.ndarray:
        """P(the user likes the item | they rate it), for each item index."""

    def score_samples(self, samples: list[Sample], progress=None) -> np.ndarray:
        """P(like) of each sample's target given its history alone (TALLRec's protocol); methods that
        can score many questions in one batch (an LM) override this."""
        out = np.empty(len(samples))
        for k, s in enumerate(samples):
            out[k] = self.like_proba(self.personalise(s.history, s.history_labels), np.array([s.target]))[0]
        return out

    def rank_scores(self, user: Any, items: np.ndarray) -> np.ndarray:
        """Higher = recommend first; by default the like probability."""
        return self.like_proba(user, items)

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Every learned array, by name."""

    @abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state` returned."""

    def save_files(self, folder: Path) -> None:
        """Write what is not an array (a fine-tuned LM's own model folder) into the model folder; most
        methods have nothing here. Keep to safetensors and JSON: the folder is refused if it holds pickles."""

    def load_files(self, folder: Path, item_texts: list[str]) -> None:
        """Restore what `save_files` wrote, after `load_state`; `item_texts` is the saved catalogue, for
        methods that read item texts when scoring."""


def check_history(items: np.ndarray, labels: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if len(items) != len(labels):
        raise FewtuneError(f"a history of {len(items)} items has {len(labels)} labels")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise FewtuneError(f"history item index out of range 0..{n_items - 1}")
    if not np.isin(labels, (-1, 1)).all():
        raise FewtuneError("history labels must be +1 (liked) or -1 (disliked)")
    return items, labels.astype(np.int8)
