"""Temperature scaling (Guo et al. 2017) fitted on out-of-fold predictions of the K shots.

One number T rescales the log-probabilities, softmax(log p / T): T > 1 softens over-confident
predictions, T < 1 sharpens timid ones; the predicted class never changes. T is chosen to minimise
the negative log-likelihood of predictions for shots the model did not train on (cross-validation
folds), so no extra labeled data is spent.

With a few dozen out-of-fold predictions the maximum-likelihood T is noisy: on mr at K=8 one
seed's folds put it at the bound (T = 20, every probability 0.5) and another at 0.14. So T is the
MAP estimate under a prior log T ~ N(0, PRIOR_SD²) instead: the model's own probabilities unless
the held-out shots say otherwise, and only as far as their number supports (the prior's weight
is fixed, the likelihood's grows with the number of shots).
"""

from __future__ import annotations

import numpy as np


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    if temperature == 1.0:
        return proba
    z = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-300, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes y (indices): scikit-learn's log_loss."""
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


PRIOR_SD = 1.0  # log T within ±1 (T between 0.37 and 2.7) a priori, one standard deviation


def fit_temperature(proba: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0),
                    prior_sd: float | None = PRIOR_SD) -> float:
    """The T in [bounds] maximising the posterior of log T given (proba, y): the summed log-likelihood of
    softmax(log proba / T) plus a N(0, prior_sd²) log-prior (None: maximum likelihood alone)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)

    def objective(log_t: float) -> float:
        value = len(y) * nll(apply_temperature(proba, float(np.exp(log_t))), y)
        return value + (0.5 * (log_t / prior_sd) ** 2 if prior_sd else 0.0)

    result = minimize_scalar(objective, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(result.x))
