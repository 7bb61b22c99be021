"""Temperature scaling (Guo et al. 2017) fitted on out-of-fold predictions of the K shots.

One number T rescales the log-probabilities, softmax(log p / T): T > 1 softens over-confident
predictions, T < 1 sharpens timid ones; the predicted class never changes. T is chosen to minimise
the negative log-likelihood of predictions for shots the model did not train on (cross-validation
folds), so no extra labeled data is spent.
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
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(proba: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T in [bounds] minimising the NLL of softmax(log proba / T) on (proba, y)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)
    result = minimize_scalar(lambda log_t: nll(apply_temperature(proba, float(np.exp(log_t))), y),
                             bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(result.x))
