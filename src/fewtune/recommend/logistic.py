"""Logistic regression for one user under a Gaussian prior: MAP by Newton, Laplace posterior, evidence.

For features xᵢ (rows of X), labels yᵢ ∈ {0, 1}, offsets oᵢ and a prior w ~ N(μ, P⁻¹):

    minimise  L(w) = Σᵢ [log(1 + e^{fᵢ}) − yᵢ fᵢ] + ½ (w − μ)ᵀ P (w − μ),   fᵢ = xᵢ·w + oᵢ

L is strictly convex (P is positive definite), so damped Newton converges from anywhere:
gradient Xᵀ(σ(f) − y) + P(w − μ), Hessian H = Xᵀ diag(σ(f)(1 − σ(f))) X + P. The Laplace
posterior is N(w*, H⁻¹) at the minimum w*, and the Laplace evidence is

    log p(y | μ, P) ≈ −L(w*) + ½ log det P − ½ log det H.

With no data, w* = μ and H = P: the posterior is the prior. Predictions integrate the logit over
the posterior with the probit approximation (MacKay 1992):
p(like | x) ≈ σ(m / √(1 + π/8 · s²)), m = x·w* + o, s² = xᵀH⁻¹x.
"""

from __future__ import annotations

import math

import numpy as np


def softplus(f: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, f)


def sigmoid(f: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * f))  # tanh form: no overflow warnings for large |f|


def _objective(x, y, offset, w, mean, precision) -> float:
    f = x @ w + offset
    d = w - mean
    return float(np.sum(softplus(f) - y * f) + 0.5 * d @ precision @ d)


def map_fit(x: np.ndarray, y: np.ndarray, mean: np.ndarray, precision: np.ndarray, *,
            offset: np.ndarray | None = None, init: np.ndarray | None = None, max_iter: int = 50,
            tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, float]:
    """(w*, H, L(w*)): the MAP weights, the posterior precision H at w*, and the minimised objective."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offset = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=np.float64)
    w = np.array(mean if init is None else init, dtype=np.float64)
    loss = _objective(x, y, offset, w, mean, precision)
    for _ in range(max_iter):
        p = sigmoid(x @ w + offset)
        grad = x.T @ (p - y) + precision @ (w - mean)
        hess = (x * (p * (1 - p))[:, None]).T @ x + precision
        step = np.linalg.solve(hess, grad)
        # Backtracking: a full Newton step can overshoot where the logistic curve is flat.
        t = 1.0
        while t > 1e-6:
            candidate = w - t * step
            new_loss = _objective(x, y, offset, candidate, mean, precision)
            if new_loss <= loss + 1e-12:
                break
            t *= 0.5
        else:
            break
        w, improvement, loss = candidate, loss - new_loss, new_loss
        if improvement < tol * (1.0 + abs(loss)) and float(grad @ step) < tol:
            break
    p = sigmoid(x @ w + offset)
    hess = (x * (p * (1 - p))[:, None]).T @ x + precision
    return w, hess, loss


def log_evidence(loss: float, precision: np.ndarray, hess: np.ndarray) -> float:
    """Laplace approximation of log p(y | prior), from map_fit's minimised objective and H."""
    return -loss + 0.5 * _logdet(precision) - 0.5 * _logdet(hess)


def _logdet(a: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(a)
    return float(value) if sign > 0 else -math.inf


def probit_proba(x: np.ndarray, w: np.ndarray, cov: np.ndarray | None, offset: np.ndarray | None = None) -> np.ndarray:
    """σ(m / √(1 + π/8 s²)) with m = x·w + o and s² = xᵀ cov x (cov None: the plug-in σ(m))."""
    x = np.asarray(x, dtype=np.float64)
    m = x @ w + (0.0 if offset is None else offset)
    if cov is None:
        return sigmoid(m)
    var = np.clip(np.einsum("ij,jk,ik->i", x, cov, x), 0.0, None)
    return sigmoid(m / np.sqrt(1.0 + math.pi / 8.0 * var))
