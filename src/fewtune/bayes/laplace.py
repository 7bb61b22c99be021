"""A Laplace posterior over a softmax classification head, in closed form, with the prior from the evidence.

The head maps features φ(x) (the encoder's embedding, plus a constant 1 for the bias) to logits
f = A·x. With a Gaussian prior N(0, τ⁻¹I) on A, the Laplace approximation around the MAP A* is
N(A*, (H + τI)⁻¹), H the Hessian of the negative log-likelihood; for a softmax head H is exactly
Σᵢ Λᵢ ⊗ xᵢxᵢᵀ with Λᵢ = diag(pᵢ) − pᵢpᵢᵀ (MacKay 1992; Daxberger et al. 2021, "Laplace Redux").

With K shots per class H has rank at most n·C, so everything is computed in the n·C-dimensional
space of the training examples, never as a P × P matrix (P = C·D parameters): H = V·Vᵀ with one
column Bᵢ[:, k] ⊗ xᵢ per (example, class), where Bᵢ = diag(√pᵢ) − pᵢ√pᵢᵀ is a square root of Λᵢ. Then, by Sylvester's determinant identity and the Woodbury identity,

    log det(H + τI) = log det(τI + VᵀV) + (P − nC) log τ
    Cov[f(x)]      = (‖x‖² I − (J V)(τI + VᵀV)⁻¹(J V)ᵀ) / τ,   (J V)[c, (i, k)] = Bᵢ[c, k] · x·xᵢ

The head lives in the span of the training features. With an isotropic prior the MAP head lies
there anyway (the representer theorem: the penalty removes any component the data cannot see), so
the MAP predictions are unchanged; but the posterior over the other D − n directions would be the
prior alone, and for an in-domain text, most of whose embedding lies outside the span of 16 or 40
others, that prior variance swamps the logits and makes every prediction timid (on BBC at K=8 the
full-space posterior had an ECE of 0.48, worse than the MAP head's 0.34). So features are
projected onto that span (an orthonormal basis from the SVD of the training features) and the
posterior, its evidence and its predictions are computed there: the uncertainty left is the part
the shots could have resolved.

The prior precision τ maximises the Laplace evidence (or, with prior="cv", minimises the
cross-validated NLL of the posterior's predictions on the shots)
log p(y | τ) ≈ log p(y | A*) − τ/2‖A*‖² + P/2 log τ − ½ log det(H + τI): with `refit` the MAP is
recomputed for every τ (the head's own prior is chosen, as in MacKay's evidence framework);
without it the trained head is kept and τ only sets the posterior's width (post-hoc, as
laplace-torch does for a network whose training cannot be repeated cheaply).

Predictions integrate the logits over the posterior: the probit approximation
softmax(f / √(1 + π/8·diag Cov f)) by default, or Monte Carlo samples of f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.sampling import cv_folds
from ..errors import FewtuneError
from ..numeric import softmax
from .temperature import nll

TAU_GRID = tuple(float(t) for t in np.logspace(-4, 3, 29))


def augment(features: np.ndarray) -> np.ndarray:
    """Features with a trailing 1, so the bias is one more weight under the same prior."""
    features = np.asarray(features, dtype=np.float64)
    return np.hstack([features, np.ones((len(features), 1))])


def span_basis(x_aug: np.ndarray) -> np.ndarray:
    """An orthonormal basis (D × r) of the span of the (augmented) training features."""
    _, s, vt = np.linalg.svd(x_aug, full_matrices=False)
    keep = s > 1e-10 * max(float(s[0]), 1e-300)
    return vt[keep].T


def fit_map(x: np.ndarray, y: np.ndarray, n_classes: int, tau: float, init: np.ndarray | None = None) -> np.ndarray:
    """argmin_A  −Σ log softmax(A·xᵢ)[yᵢ] + τ/2‖A‖²  (x already augmented), by L-BFGS in float64."""
    a = (torch.zeros(n_classes, x.shape[1], dtype=torch.float64) if init is None
         else torch.tensor(np.ascontiguousarray(init), dtype=torch.float64))
    a.requires_grad_(True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
    optimizer = torch.optim.LBFGS([a], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ a.T, yt, reduction="sum") + 0.5 * tau * (a ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return a.detach().numpy()


@dataclass
class _Factors:
    """The n·C-dimensional pieces of H at one head A: B (n, C, C), the Gram matrix, its eigensystem."""

    b: np.ndarray
    gram_eigvals: np.ndarray
    gram_eigvecs: np.ndarray


def _factors(x: np.ndarray, probs: np.ndarray) -> _Factors:
    n, c = probs.shape
    sp = np.sqrt(np.clip(probs, 0.0, 1.0))
    # Bᵢ[r, k] = δ_rk √p_ik − p_ir √p_ik, so that Bᵢ Bᵢᵀ = diag(pᵢ) − pᵢpᵢᵀ.
    b = np.eye(c)[None] * sp[:, None, :] - probs[:, :, None] * sp[:, None, :]
    kernel = x @ x.T
    gram = np.einsum("irc,jrk->icjk", b, b) * kernel[:, None, :, None]  # (VᵀV)[(i,c),(j,k)]
    vals, vecs = np.linalg.eigh(gram.reshape(n * c, n * c))
    return _Factors(b, np.clip(vals, 0.0, None), vecs)


def log_evidence(x: np.ndarray, y: np.ndarray, a: np.ndarray, tau: float, factors: _Factors | None = None) -> float:
    """The Laplace approximation of log p(y | τ) at the head a (x augmented)."""
    probs = softmax(x @ a.T)
    factors = factors or _factors(x, probs)
    p = a.size
    nc = factors.gram_eigvals.size
    log_lik = float(np.log(np.clip(probs[np.arange(len(y)), y], 1e-300, None)).sum())
    log_det = float(np.log(factors.gram_eigvals + tau).sum()) + (p - nc) * math.log(tau)
    return log_lik - 0.5 * tau * float((a ** 2).sum()) + 0.5 * p * math.log(tau) - 0.5 * log_det


class LaplaceHead:
    """The posterior over a softmax head given training features; `predict_proba` integrates over it.

    Build it with `LaplaceHead.fit(features, y, head_weight, head_bias, refit=...)`; its state is the
    training features, labels, head and τ, all arrays (saved as safetensors, nothing pickled).
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, tau: float,
                 *, predictive: str = "probit", n_samples: int = 1000, evidence: dict | None = None):
        if predictive not in ("probit", "mc"):
            raise FewtuneError(f"predictive must be 'probit' or 'mc', got {predictive!r}")
        self.features = np.asarray(features, dtype=np.float64)
        x_full = augment(features)
        self.basis = span_basis(x_full)
        self.x = x_full @ self.basis  # coordinates in the span: n × r
        self.y = np.asarray(y, dtype=np.int64)
        # The head as trained, for the mean logits (a head trained by SGD may reach outside the span) ...
        self.a_full = np.hstack([np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)[:, None]])
        # ... and its part the training features can see (all of it for a refitted head): C × r.
        self.a = self.a_full @ self.basis
        self.tau = float(tau)
        self.predictive = predictive
        self.n_samples = n_samples
        self.evidence = evidence or {}
        self._factors = _factors(self.x, softmax(self.x @ self.a.T))

    @classmethod
    def fit(cls, features: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, refit: bool,
            tau: float | None = None, grid: tuple[float, ...] = TAU_GRID, predictive: str = "probit",
            prior: str = "evidence", folds: int = 4, seed: int = 0) -> LaplaceHead:
        """τ from the evidence over `grid` (or the given τ); with `refit` the head is the MAP at that τ.

        prior="cv" chooses τ instead by the cross-validated NLL of the posterior's predictions on
        the shots (the features stay fixed; each fold refits the head and its posterior).
        """
        y = np.asarray(y, dtype=np.int64)
        if np.ndim(y) != 1:
            raise FewtuneError("the Laplace posterior covers single-label heads (softmax); this head is multi-label")
        if prior not in ("evidence", "cv"):
            raise FewtuneError(f"prior must be 'evidence' or 'cv', got {prior!r}")
        if prior == "cv" and tau is None:
            tau, table = cls._cv_tau(features, y, weight, bias, refit=refit, grid=grid, folds=folds, seed=seed)
            post = cls.fit(features, y, weight, bias, refit=refit, tau=tau, predictive=predictive)
            post.evidence = {"tau": tau, "refit": refit, "prior": "cv", "cv_nll": table, "grid": [float(t) for t in sorted(grid)]}
            return post
        basis = span_basis(augment(features))
        x = augment(features) @ basis
        a0 = np.hstack([np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)[:, None]]) @ basis
        n_classes = a0.shape[0]
        taus = [float(tau)] if tau is not None else list(grid)
        scores, heads = [], []
        a = a0
        # From a weak prior to a strong one, each fit warm-started from the last: smooth and fast.
        for t in sorted(taus):
            a = fit_map(x, y, n_classes, t, init=a) if refit else a0
            heads.append(a)
            scores.append(log_evidence(x, y, a, t))
        order = sorted(taus)
        best = int(np.argmax(scores))
        evidence = {"tau": order[best], "refit": refit,
                    "log_evidence": [round(s, 4) for s in scores], "grid": [float(t) for t in order]}
        a = heads[best] @ basis.T  # back to weight and bias on the full features
        return cls(features, y, a[:, :-1], a[:, -1], order[best], predictive=predictive, evidence=evidence)

    @classmethod
    def _cv_tau(cls, features, y, weight, bias, *, refit, grid, folds, seed) -> tuple[float, list[float]]:
        splits = cv_folds(y, folds, seed)
        table = []
        for t in sorted(grid):
            losses = []
            for train_idx, val_idx in splits:
                fold = cls.fit(features[train_idx], y[train_idx], weight, bias, refit=refit, tau=t)
                p = fold.predict_proba(features[val_idx])
                losses.append(nll(p, y[val_idx]))
            table.append(round(float(np.mean(losses)), 5))
        return float(sorted(grid)[int(np.argmin(table))]), table

    @property
    def weight(self) -> np.ndarray:
        return self.a_full[:, :-1]

    @property
    def bias(self) -> np.ndarray:
        return self.a_full[:, -1]

    def _coordinates(self, features: np.ndarray) -> np.ndarray:
        return augment(features) @ self.basis

    def logit_moments(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (m, C) and covariance (m, C, C) of the logits of new examples under the posterior."""
        xs = self._coordinates(features)
        mean = augment(features) @ self.a_full.T
        f = self._factors
        n, c = self.y.size, self.a.shape[0]
        k = xs @ self.x.T  # (m, n)
        jv = (f.b[None, :, :, :] * k[:, :, None, None]).transpose(0, 2, 1, 3).reshape(len(xs), c, n * c)
        proj = jv @ f.gram_eigvecs  # (m, C, nC)
        inner = np.einsum("mca,a,mda->mcd", proj, 1.0 / (f.gram_eigvals + self.tau), proj)
        cov = ((xs ** 2).sum(1)[:, None, None] * np.eye(c)[None] - inner) / self.tau
        return mean, cov

    def predict_proba(self, features: np.ndarray, *, seed: int = 0) -> np.ndarray:
        mean, cov = self.logit_moments(features)
        if self.predictive == "probit":
            var = np.clip(np.einsum("mcc->mc", cov), 0.0, None)
            return softmax(mean / np.sqrt(1.0 + math.pi / 8.0 * var))
        rng = np.random.default_rng(seed)
        # Symmetrised and jittered: rounding can leave a covariance a hair from positive definite.
        chol = np.linalg.cholesky(0.5 * (cov + cov.transpose(0, 2, 1)) + 1e-9 * np.eye(cov.shape[1]))
        draws = rng.standard_normal((self.n_samples, *mean.shape))
        samples = mean[None] + np.einsum("mcd,smd->smc", chol, draws)
        return softmax(samples).mean(0)

    def map_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(augment(features) @ self.a_full.T)

    # -- persistence: arrays only --------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"features": torch.from_numpy(self.features.copy()), "labels": torch.from_numpy(self.y),
                "weight": torch.from_numpy(self.weight.copy()), "bias": torch.from_numpy(self.bias.copy()),
                "tau": torch.tensor([self.tau], dtype=torch.float64)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], *, predictive: str = "probit",
                   evidence: dict | None = None) -> LaplaceHead:
        return cls(tensors["features"].numpy(), tensors["labels"].numpy(), tensors["weight"].numpy(),
                   tensors["bias"].numpy(), float(tensors["tau"][0]), predictive=predictive, evidence=evidence)
