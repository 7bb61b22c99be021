"""Logistic matrix factorisation: P(user u likes item i) = σ(pᵤ·qᵢ + cᵤ + bᵢ).

Trained on the training users' likes and dislikes by full-batch Adam on the mean log-loss plus an L2
penalty λ/2 (‖P‖² + ‖Q‖² + ‖c‖²) / R (R = number of ratings; item biases are unpenalised). A new
user is "folded in": their (pᵤ, cᵤ) is the MAP under the same Gaussian prior N(0, λ⁻¹I) given their K
ratings, with the item factors and biases fixed — a logistic regression on features [qᵢ, 1] with
offset bᵢ. With K = 0 it scores items by bᵢ alone (an item-popularity logit).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, TrainSet, register_recommender
from .logistic import map_fit, sigmoid


@contextlib.contextmanager
def _one_thread():
    # The steps are small gathers and scatters: on two busy cores two threads made each step 12×
    # slower (0.34 s against 0.028 s on ml-100k), never faster.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class MfParams(RecommenderParams):
    factors: int = param(32, "latent dimensions")
    l2: float = param(5.0, "λ: prior precision of user and item factors")
    epochs: int = param(300, "full-batch Adam steps")
    learning_rate: float = param(0.05, "Adam learning rate", renamed_from=("lr",))

    def check(self, problems: list[str]) -> None:
        if self.factors < 1:
            problems.append(f"factors must be ≥ 1, got {self.factors}")
        if self.l2 <= 0:
            problems.append(f"l2 must be > 0 (it is the new user's prior precision), got {self.l2}")
        if self.epochs < 1:
            problems.append(f"epochs must be ≥ 1, got {self.epochs}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")


@register_recommender
class MatrixFactorization(Recommender):
    name = "mf"
    description = "logistic matrix factorisation; a new user's factors are the MAP given their K ratings"
    params_class = MfParams

    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        import torch

        p = self.params
        coo = train.labels.tocoo()
        n_users, n_items = train.labels.shape
        users = torch.from_numpy(coo.row.astype(np.int64))
        items = torch.from_numpy(coo.col.astype(np.int64))
        target = torch.from_numpy((coo.data > 0).astype(np.float32))
        gen = torch.Generator().manual_seed(seed)
        user_f = (0.1 * torch.randn(n_users, p.factors, generator=gen)).requires_grad_()
        item_f = (0.1 * torch.randn(n_items, p.factors, generator=gen)).requires_grad_()
        user_b = torch.zeros(n_users, requires_grad=True)
        item_b = torch.zeros(n_items, requires_grad=True)
        n = max(len(target), 1)
        optimizer = torch.optim.Adam([user_f, item_f, user_b, item_b], lr=p.learning_rate)
        task = progress.add("Matrix factorisation", total=p.epochs) if progress else None
        start = time.perf_counter()
        with _one_thread():
            for _ in range(p.epochs):
                optimizer.zero_grad()
                logits = (user_f[users] * item_f[items]).sum(1) + user_b[users] + item_b[items]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
                penalty = 0.5 * p.l2 * (user_f.pow(2).sum() + item_f.pow(2).sum() + user_b.pow(2).sum())
                ((loss + penalty) / n).backward()
                optimizer.step()
                if progress:
                    progress.advance(task)
        self.item_factors_ = item_f.detach().double().numpy()
        self.item_bias_ = item_b.detach().double().numpy()
        return {"train_log_loss": round(float(loss.detach()) / n, 4), "fit_seconds": round(time.perf_counter() - start, 2)}

    def _features(self, items: np.ndarray) -> np.ndarray:
        return np.hstack([self.item_factors_[items], np.ones((len(items), 1))])

    def personalise(self, items, labels):
        items = np.asarray(items, dtype=np.int64)
        dim = self.item_factors_.shape[1] + 1
        prior_mean, prior_precision = np.zeros(dim), self.params.l2 * np.eye(dim)
        if len(items) == 0:
            return prior_mean
        w, _, _ = map_fit(self._features(items), (np.asarray(labels) > 0).astype(float), prior_mean, prior_precision,
                          offset=self.item_bias_[items])
        return w

    def like_proba(self, user, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        return sigmoid(self._features(items) @ user + self.item_bias_[items])

    def state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def load_state(self, arrays) -> None:
        try:
            self.item_factors_, self.item_bias_ = arrays["item_factors"], arrays["item_bias"]
        except KeyError as e:
            raise FewtuneError(f"mf weights lack {e}") from None
