"""`FewShotRecommender`: learn from many users' ratings, then recommend for a new user from a handful.

    rec = FewShotRecommender(method="bayes").fit("ml-100k")
    rec.recommend({"Star Wars (1977)": 5, "Fargo (1996)": 5, "Home Alone (1990)": 1}, n=10)
    rec.predict_like_proba({"Star Wars (1977)": 5}, ["Return of the Jedi (1983)", "Babe (1995)"])
    rec.save("my-recommender"); FewShotRecommender.load("my-recommender")

A history is a dict {item: rating}, a list of (item, rating) pairs or a DataFrame with item and
rating columns; items are ids or titles, ratings numbers (thresholds like_threshold /
dislike_threshold) or the words like / dislike. The saved folder holds the method's arrays
(safetensors), the catalogue (items.json) and fewtune.json; recommending needs no encoder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones.catalog import ITEM_ENCODER
from ..errors import FewtuneError, ModelFolderError
from ..estimator import ParamsEstimator
from ..model_card import with_front_matter
from ..storage.model_folder import read_model_folder, write_model_folder
from ..progress import progress_bar
from .base import Recommender, check_history
from .data import CITATION, LikeScale, RatingsData, from_frame, load_movielens, train_set
from .history import ItemMatcher, as_pairs, parse_history
from .methods import build_recommender, get_recommender

KIND = "recommender"
WEIGHTS = "recommender.safetensors"
ITEMS = "items.json"


class FewShotRecommender(ParamsEstimator):
    """A recommendation method fitted on training users; personalised per call from a short history."""

    FITTED, FIT_HINT = "method_", "call fit() or load()"

    def __init__(self, method: str = "bayes", *, backbone: str | None = None, params: dict | None = None,
                 like_threshold: float = 4.0, dislike_threshold: float = 2.0, seed: int = 0,
                 device: str | None = None, show_progress: bool = False):
        self.method = method
        self.backbone = backbone
        self.params = params
        self.like_threshold = like_threshold
        self.dislike_threshold = dislike_threshold
        self.seed = seed
        self.device = device
        self.show_progress = show_progress

    def _params_class(self):
        try:
            return get_recommender(self.method).params_class
        except FewtuneError:  # an unknown method: fit names it
            return None

    # -- training --------------------------------------------------------------------------
    def fit(self, data, users=None, **fit_options) -> FewShotRecommender:
        """Learn from `data`: a RatingsData, a built-in name ("ml-100k", "ml-1m") or a DataFrame with
        user, item and rating columns. `users` (indices) restricts training to some users."""
        if isinstance(data, str):
            data = load_movielens(data)
        elif hasattr(data, "columns"):
            data = from_frame(data, source="ratings DataFrame")
        if not isinstance(data, RatingsData):
            raise FewtuneError(f"fit expects RatingsData, a data set name or a DataFrame, got {type(data).__name__}")
        self.scale_ = LikeScale(self.like_threshold, self.dislike_threshold)
        backbone = self.backbone or ITEM_ENCODER
        self.method_ = build_recommender(self.method, self.params, backbone=backbone, device=self.device)
        train = train_set(data, users, self.scale_)
        if train.labels.nnz == 0:
            raise FewtuneError(f"{data.name}: no rating is a like (≥ {self.like_threshold}) or a dislike "
                               f"(≤ {self.dislike_threshold}); check the thresholds")
        start = time.perf_counter()
        with progress_bar(self.show_progress) as progress:
            info = self.method_.fit(train, seed=self.seed, progress=progress, **fit_options)
        self.train_info_ = {**info, "train_seconds": round(time.perf_counter() - start, 3),
                            "training_users": int(train.labels.shape[0]), "training_labels": int(train.labels.nnz)}
        self.item_ids_ = [str(i) for i in data.item_ids]
        self.item_texts_ = list(data.item_texts)
        self.data_description_ = data.name
        self.backbone_ = backbone if self.method_.needs_encoder else None
        self._matcher = None
        return self

    # -- a new user ------------------------------------------------------------------------
    def item_matcher(self) -> ItemMatcher:
        """Finds catalogue items by id or title (built once)."""
        self._check_fitted()
        if getattr(self, "_matcher", None) is None:
            self._matcher = ItemMatcher(self.item_ids_, self.item_texts_)
        return self._matcher

    def history_labels(self, history) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item indices, labels ±1, items rated neutral) of a history.

        A pair of arrays (item indices, labels ±1) passes through, for callers that index items themselves.
        """
        self._check_fitted()
        if isinstance(history, tuple) and len(history) == 2 and isinstance(history[0], np.ndarray):
            items, labels = check_history(history[0], history[1], len(self.item_ids_))
            return items, labels, np.zeros(0, np.int64)
        return parse_history(as_pairs(history), self.item_matcher(), self.scale_)

    def _item_indices(self, items) -> np.ndarray:
        matcher = self.item_matcher()
        return np.array([matcher.find(i, f"items, item {n + 1}") for n, i in enumerate(items)], dtype=np.int64)

    def predict_like_proba(self, history, items) -> np.ndarray:
        """P(like) of each item (ids or titles) for the user with this history."""
        known, labels, _ = self.history_labels(history)
        user = self.method_.personalise(known, labels)
        return self.method_.like_proba(user, self._item_indices(items))

    def recommend(self, history, n: int = 10, *, exclude=None) -> list[dict[str, Any]]:
        """The n best items for the user, best first: [{"item", "text", "score", "p_like"}, ...].

        Items in the history (neutral ones too) are not recommended back, unless `exclude` (item
        indices) says which to leave out instead.
        """
        if n < 1:
            raise FewtuneError(f"n must be at least 1, got {n}")
        known, labels, neutral = self.history_labels(history)
        if exclude is None:
            exclude = np.concatenate([known, neutral])
        user = self.method_.personalise(known, labels)
        candidates = np.setdiff1d(np.arange(len(self.item_ids_)), np.asarray(exclude, dtype=np.int64))
        scores = self.method_.rank_scores(user, candidates)
        proba = self.method_.like_proba(user, candidates)
        # Ties (popularity ranks many items alike) keep catalogue order: stable and reproducible.
        order = np.argsort(-scores, kind="stable")[:n]
        return [{"item": self.item_ids_[candidates[k]], "text": self.item_texts_[candidates[k]],
                 "score": float(scores[k]), "p_like": float(proba[k])} for k in order]

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False, evaluation: dict | None = None) -> Path:
        from safetensors.numpy import save_file

        self._check_fitted()
        config = {
            "kind": KIND,
            "method": self.method,
            "params": self.method_.params.to_dict(),
            "backbone": self.backbone_,
            "scale": self.scale_.to_dict(),
            "seed": self.seed,
            "data": self.data_description_,
            "n_items": len(self.item_ids_),
            "train_info": self.train_info_,
            **({"evaluation": evaluation} if evaluation else {}),
        }

        def payload(folder: Path) -> None:
            arrays = {k: np.ascontiguousarray(v) for k, v in self.method_.state().items()}
            save_file(arrays, str(folder / WEIGHTS))
            self.method_.save_files(folder)
            items = {"ids": self.item_ids_, "texts": self.item_texts_}
            (folder / ITEMS).write_text(json.dumps(items, ensure_ascii=False) + "\n", encoding="utf-8")

        return write_model_folder(path, config, payload, with_front_matter(_render_card), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> FewShotRecommender:
        from safetensors.numpy import load_file

        path = Path(path)
        config = read_model_folder(path)
        if config.get("kind") != KIND:
            raise ModelFolderError(f"{path} is a fewtune model folder but not a recommender "
                                   f"(method {config.get('method')!r}); train one with `fewtune recommend train`")
        try:
            items = json.loads((path / ITEMS).read_text(encoding="utf-8"))
            ids, texts = items["ids"], items["texts"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelFolderError(f"{path / ITEMS}: unreadable catalogue ({e})") from None
        if len(ids) != len(texts) or len(ids) != config.get("n_items"):
            raise ModelFolderError(f"{path / ITEMS}: {len(ids)} ids, {len(texts)} texts, config says {config.get('n_items')}")
        scale = config["scale"]
        # A model saved before a setting was renamed loads as it was, silently (params.param's renamed_from).
        params = get_recommender(config["method"]).params_class.with_new_names(config["params"], warn=False)
        rec = cls(config["method"], backbone=config.get("backbone"), params=params,
                  like_threshold=scale["like"], dislike_threshold=scale["dislike"], seed=config.get("seed", 0))
        method: Recommender = build_recommender(config["method"], params, backbone=config.get("backbone"))
        method.load_state(load_file(str(path / WEIGHTS)))
        method.load_files(path, [str(t) for t in texts])
        rec.method_, rec.scale_ = method, LikeScale(scale["like"], scale["dislike"])
        rec.item_ids_, rec.item_texts_ = [str(i) for i in ids], [str(t) for t in texts]
        rec.train_info_, rec.data_description_ = config.get("train_info", {}), config.get("data", "")
        rec.backbone_, rec._matcher = config.get("backbone"), None
        return rec


def _render_card(config: dict) -> str:
    lines = [f"# fewtune recommender: {config['method']}", "",
             f"Trained on {config['data']} ({config['train_info'].get('training_users', '?')} users, "
             f"{config['train_info'].get('training_labels', '?')} likes/dislikes; likes are ratings ≥ "
             f"{config['scale']['like']}, dislikes ≤ {config['scale']['dislike']}).", ""]
    if config.get("backbone"):
        lines += [f"Item texts embedded with `{config['backbone']}`; the embeddings are stored, so recommending "
                  "needs no encoder.", ""]
    if config.get("evaluation"):
        lines += ["Evaluation on held-out users:", "", "```", json.dumps(config["evaluation"], indent=2), "```", ""]
    lines += ["Use it:", "", "```", f"fewtune recommend MODEL --history my_ratings.csv", "```", "",
              "Parameters: `" + json.dumps(config["params"]) + "`", ""]
    if str(config.get("data", "")).startswith("ml-"):
        lines += [f"Data: MovieLens. {CITATION}", ""]
    return "\n".join(lines)
