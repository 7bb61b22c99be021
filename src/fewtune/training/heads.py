"""Linear classification heads stored as tensors, so a saved model never needs pickle.

scikit-learn fits the logistic regression (it is fast and well tested on tiny data); the result is
copied into a weight matrix and bias so that predict_proba is softmax(x·Wᵀ + b) — exactly
scikit-learn's probabilities — and saves as safetensors.

Multi-label targets (an n × C 0/1 matrix instead of a vector of class indices) get one binary
logistic regression per label (one-vs-rest) and independent sigmoid probabilities. Which of the two
a head is travels with its tensors, in the safetensors header, so a reloaded head cannot be read
the wrong way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SOFTMAX, SIGMOID = "softmax", "sigmoid"


def is_multi_label(y: np.ndarray) -> bool:
    """Methods receive class indices (shape n) or, for multi-label data, a 0/1 matrix (shape n × C)."""
    return np.ndim(y) == 2


def batch_keys(y: np.ndarray) -> np.ndarray:
    """What balanced batching balances: the class index, or for multi-label rows the label set."""
    if not is_multi_label(y):
        return np.asarray(y)
    _, keys = np.unique(np.asarray(y), axis=0, return_inverse=True)
    return keys.reshape(-1)


def probabilities(logits: torch.Tensor, activation: str) -> np.ndarray:
    # float64 so that softmax rows sum to 1 to within 1e-12, not float32's 1e-7.
    logits = logits.detach().double().cpu()
    return (torch.sigmoid(logits) if activation == SIGMOID else torch.softmax(logits, dim=-1)).numpy()


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """'balanced' weights, n / (C · count) per class as in scikit-learn; for multi-label, the
    positive weight negatives / positives per label (BCE's pos_weight). None when mode is 'none'."""
    if mode == "none":
        return None
    y = np.asarray(y)
    if is_multi_label(y):
        pos = y.sum(0).clip(min=1)
        return torch.as_tensor((len(y) - pos) / pos, dtype=torch.float32).clamp(min=1e-3)
    counts = np.bincount(y, minlength=n_classes).clip(min=1)
    return torch.as_tensor(len(y) / (n_classes * counts), dtype=torch.float32)


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None, *,
                        soft: bool = False) -> torch.Tensor:
    """Cross-entropy, or for multi-label targets (a 0/1 matrix) binary cross-entropy per label; soft:
    targets are rows of class probabilities (cross-entropy to a distribution)."""
    if targets.ndim == 2 and not soft:
        return F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=weights)
    return F.cross_entropy(logits, targets, weight=weights)


# A method's class_weight parameter: param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS).
CLASS_WEIGHTS = ("none", "balanced")
CLASS_WEIGHT_HELP = "'balanced': weight classes inversely to their frequency (imbalanced data); 'none': equal"


def save_head(tensors: dict[str, torch.Tensor], path: Path, activation: str) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path),
              metadata={"activation": activation})


def load_head(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    with safe_open(str(path), framework="pt") as f:
        activation = (f.metadata() or {}).get("activation", SOFTMAX)
    if activation not in (SOFTMAX, SIGMOID):
        raise ValueError(f"{path.name}: unknown head activation {activation!r}")
    return load_file(str(path)), activation


def cross_validated_nll(x: np.ndarray | list[np.ndarray], y: np.ndarray, n_classes: int, cs, folds, *,
                        class_weight: str = "none", seed: int = 0) -> dict[float, float]:
    """Out-of-fold log-loss of a logistic head at each inverse strength C, over the given (train, val) folds.

    The shots' own, honest measure of how confident a head may be: an in-sample log-loss always
    prefers the weakest penalty, the out-of-fold one punishes confidence the shots do not bear out.
    `x` is one feature matrix for every fold, or a list of them, one per fold (setfit's fold bodies
    each embed the shots their own way).
    """
    from sklearn.metrics import log_loss

    folds = list(folds)
    per_fold = ([np.asarray(v, dtype=np.float64) for v in x] if isinstance(x, (list, tuple))
                else [np.asarray(x, dtype=np.float64)] * len(folds))
    scores = {}
    for c in cs:
        oof = np.zeros((len(y), n_classes))
        for (train_idx, val_idx), features in zip(folds, per_fold, strict=True):
            head = LinearHead.fit_logistic(features[train_idx], y[train_idx], n_classes, c=c,
                                           class_weight=class_weight, seed=seed)
            oof[val_idx] = head.predict_proba(features[val_idx])
        scores[c] = float(log_loss(y, oof, labels=np.arange(n_classes)))
    return scores


class LinearHead:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, activation: str = SOFTMAX):
        self.weight = weight.detach().to(torch.float32).cpu()
        self.bias = bias.detach().to(torch.float32).cpu()
        self.activation = activation

    @classmethod
    def fit_logistic(
        cls, x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 1.0, class_weight: str = "none",
        seed: int = 0,
    ) -> LinearHead:
        weight_mode = None if class_weight == "none" else class_weight
        # lbfgs keeps float32 input in float32, whose rounding moves the optimum by ~1e-3 from machine to
        # machine; every head is fitted in float64 so the same features give the same head everywhere.
        x = np.asarray(x, dtype=np.float64)
        if is_multi_label(y):
            rows = [_binary_logistic(x, y[:, j], c, weight_mode, seed) for j in range(y.shape[1])]
            coef = np.vstack([r[0] for r in rows])
            intercept = np.concatenate([r[1] for r in rows])
            return cls(torch.from_numpy(coef), torch.from_numpy(intercept), SIGMOID)
        from sklearn.linear_model import LogisticRegression  # why: 1.5 s to import; a loaded head predicts without it

        lr = LogisticRegression(C=c, max_iter=2000, class_weight=weight_mode, random_state=seed)
        lr.fit(x, y)
        coef = np.asarray(lr.coef_, dtype=np.float64)
        intercept = np.asarray(lr.intercept_, dtype=np.float64)
        if n_classes == 2:
            # Binary logistic regression has one logit z; softmax([0, z]) == [1 - σ(z), σ(z)].
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        return cls(torch.from_numpy(coef), torch.from_numpy(intercept))

    def logits(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32).cpu()
        return x @ self.weight.T + self.bias

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        return probabilities(self.logits(x), self.activation)

    def state_dict(self, prefix: str = "head.") -> dict[str, torch.Tensor]:
        return {prefix + "weight": self.weight.contiguous(), prefix + "bias": self.bias.contiguous()}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], prefix: str = "head.",
                        activation: str = SOFTMAX) -> LinearHead:
        return cls(tensors[prefix + "weight"], tensors[prefix + "bias"], activation)

    def save(self, path: Path) -> None:
        save_head(self.state_dict(), path, self.activation)

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        tensors, activation = load_head(path)
        return cls.from_state_dict(tensors, activation=activation)


def _binary_logistic(x, column, c, class_weight, seed) -> tuple[np.ndarray, np.ndarray]:
    """One label of a one-vs-rest head: a logit whose sigmoid is P(label present)."""
    column = np.asarray(column)
    if column.min() == column.max():
        # Every training example agrees on this label: a constant logit (clipped so it stays finite).
        rate = float(np.clip(column.mean(), 1e-3, 1 - 1e-3))
        return np.zeros((1, x.shape[1])), np.array([np.log(rate / (1 - rate))])
    from sklearn.linear_model import LogisticRegression  # why: as in fit_logistic

    lr = LogisticRegression(C=c, max_iter=2000, class_weight=class_weight, random_state=seed)
    lr.fit(x, column)
    return np.asarray(lr.coef_, dtype=np.float64), np.asarray(lr.intercept_, dtype=np.float64)
