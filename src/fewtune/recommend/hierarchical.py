"""A per-user Bayesian logistic model on item text embeddings, its prior learned from the training users.

The pretrained-prior idea applied to people: what the training users like tells us what a new
user is *likely* to like before they say anything, and their few ratings move that belief.

Item features. Each item's text ("Toy Story (1995) — Animation, Children's, Comedy") is embedded
by the sentence encoder; the embeddings are centred and projected on their top r principal
components, whitened to unit variance (the first r directions carry most of what distinguishes
films; r ≈ 32 parameters is what 10–100 ratings per training user can pin down). Optionally the
item's popularity joins them: bᵢ = logit of its smoothed like rate among the training users. With
a constant 1 for the user's own like rate, xᵢ = [zᵢ, bᵢ, 1] ∈ ℝᵖ.

Model. User u likes item i with probability σ(wᵤ·xᵢ), and the users' weights are draws from one
population prior wᵤ ~ N(μ, Σ).

Learning the prior (empirical Bayes). μ and Σ maximise the marginal likelihood of the training
users' likes and dislikes, Πᵤ ∫ p(yᵤ | w) N(w; μ, Σ) dw, by EM with a Laplace E-step: for each user
the posterior is approximated by N(mᵤ, Sᵤ), mᵤ the MAP under the current prior and Sᵤ the inverse
Hessian there (logistic.map_fit); then

    μ ← mean(mᵤ),    Σ ← mean(Sᵤ + (mᵤ − μ)(mᵤ − μ)ᵀ)

(the Gaussian moment matching that maximises the expected complete-data log-likelihood). Σ is
shrunk a little toward (tr Σ / p)·I, so that directions no training user informs keep a finite
variance. The Laplace evidence Σᵤ log p(yᵤ | μ, Σ) is recorded every iteration. During training a
user's bᵢ leaves out their own rating of item i, or a rarely rated item's popularity would
restate the very label it is asked to predict.

A new user. Given K rated items, the posterior over w is again Laplace-approximated around the MAP
under N(μ, Σ) (a Newton solve in p dimensions: milliseconds). With K = 0 it *is* the prior: every
user starts from the population's taste (with bᵢ, popularity). As K grows the likelihood dominates
and the posterior mean approaches the user's own logistic fit. Predictions integrate over the
posterior with the probit approximation σ(m/√(1 + π/8 s²)) (logistic.probit_proba), so items the
user's few ratings say little about stay near the population's view.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from ..backbones.catalog import ITEM_ENCODER
from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, TrainSet, register_recommender, smoothed_like_rate
from .embeddings import item_embeddings
from .logistic import log_evidence, map_fit, probit_proba


# r tried by components=0. 32 suits a prior learned from hundreds of users (the cold-start protocol); from
# the 16 samples of TALLRec's protocol (16 users, 176 ratings) 4 does: AUC 70.3 against 62.1.
COMPONENT_GRID = (2, 4, 8, 16, 32)


@dataclass
class BayesParams(RecommenderParams):
    components: int = param(32, f"principal components of the item embeddings kept (r); 0 = chosen among "
                                f"{COMPONENT_GRID} by cross-validation over the training users (held-out users' "
                                "half-hidden ratings, log-loss)")
    item_bias: bool = param(True, "add the item's popularity (logit of its like rate) as a feature")
    smoothing: float = param(5.0, "pseudo-ratings at the overall like rate in the popularity feature")
    max_iter: int = param(30, "EM iterations at most")
    tol: float = param(1e-4, "stop when the evidence per user improves by less than this")
    shrinkage: float = param(0.01, "weight of (tr Σ/p)·I mixed into the prior covariance Σ")
    predictive: str = param("probit", "probit (integrate over the posterior) or map (plug-in weights)")

    def check(self, problems: list[str]) -> None:
        if self.components < 0:
            problems.append(f"components must be ≥ 1, or 0 to choose it by cross-validation, got {self.components}")
        if self.smoothing <= 0:
            problems.append(f"smoothing must be > 0 (it keeps every item's like rate off 0 and 1), got {self.smoothing}")
        if self.max_iter < 1:
            problems.append(f"max_iter must be ≥ 1, got {self.max_iter}")
        if self.tol < 0:
            problems.append(f"tol must be ≥ 0, got {self.tol}")
        if not 0.0 <= self.shrinkage < 1.0:
            problems.append(f"shrinkage must be in [0, 1), got {self.shrinkage}")
        if self.predictive not in ("probit", "map"):
            problems.append(f"predictive must be probit or map, got {self.predictive!r}")


def whitened_components(emb: np.ndarray, r: int) -> tuple[np.ndarray, float]:
    """(items × r) coordinates on the top r principal components, unit variance each; share of variance kept."""
    centred = np.asarray(emb, dtype=np.float64) - emb.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    r = int(min(r, int((s > 1e-8 * max(s[0], 1e-300)).sum())))
    if r == 0:
        raise FewtuneError("the item embeddings are all identical; the encoder cannot tell the items apart")
    # u·s are the coordinates; dividing by s/√(n−1) leaves unit variance: u·√(n−1).
    z = u[:, :r] * math.sqrt(max(len(emb) - 1, 1))
    kept = float((s[:r] ** 2).sum() / (s ** 2).sum())
    return z, kept


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


@register_recommender
class BayesEncoder(Recommender):
    name = "bayes"
    description = ("per-user Bayesian logistic regression on item text embeddings, prior N(μ, Σ) learned from the "
                   "training users by empirical Bayes; Laplace posterior, probit predictions")
    params_class = BayesParams
    needs_encoder = True

    # -- training --------------------------------------------------------------------------
    def fit(self, train: TrainSet, *, seed: int, progress=None, embeddings: np.ndarray | None = None) -> dict:
        p = self.params
        start = time.perf_counter()
        if embeddings is None:
            embeddings = item_embeddings(train.item_texts, self.backbone or ITEM_ENCODER, device=self.device,
                                         progress=progress)
        if len(embeddings) != train.n_items:
            raise FewtuneError(f"{len(embeddings)} item embeddings for {train.n_items} items")
        embed_seconds = time.perf_counter() - start
        likes, total = train.like_counts()
        rate, overall = smoothed_like_rate(likes, total, p.smoothing)
        self.item_b_ = logit(rate)
        info = {"embed_seconds": round(embed_seconds, 2)}
        r = p.components
        if not r:
            r, info["components_cv"] = self._choose_components(train, embeddings, seed)
            info["components_chosen"] = r
        fitted = self._learn_prior(embeddings, r, train, likes, total, overall, progress)
        self.item_z_, self.prior_mean_, self.prior_cov_ = fitted["z"], fitted["mean"], fitted["cov"]
        self._build()
        return {**info, "em_iterations": len(fitted["trace"]), "evidence_per_user": [round(e, 5) for e in fitted["trace"]],
                "training_users": fitted["users"], "variance_kept": round(fitted["kept"], 4),
                "dimensions": len(fitted["mean"])}

    def _choose_components(self, train: TrainSet, embeddings: np.ndarray, seed: int) -> tuple[int, dict]:
        """r by cross-validation over the training users: the prior learned from 3/4 of them, each held-out
        user reveals a random half of their ratings and the other half is scored (log-loss), as a new
        user would be. The evidence was tried first and always chose the largest r: EM fits the prior to
        the very users whose evidence it then reports."""
        csr = train.labels.tocsr()
        counts = np.diff(csr.indptr)
        rng = np.random.default_rng([seed, 5])
        folds = np.array_split(rng.permutation(np.flatnonzero(counts >= 2)), 4)
        table = {}
        for r in COMPONENT_GRID:
            loss, n = 0.0, 0
            for fold in folds:
                if not len(fold):
                    continue
                rest = np.setdiff1d(np.arange(csr.shape[0]), fold)
                model = BayesEncoder(dataclasses.replace(self.params, components=r))
                model.fit(TrainSet(csr[rest], train.item_texts), seed=seed, embeddings=embeddings)
                for u in fold:
                    items = csr.indices[csr.indptr[u]:csr.indptr[u + 1]]
                    labels = csr.data[csr.indptr[u]:csr.indptr[u + 1]]
                    order = np.random.default_rng([seed, 6, int(u)]).permutation(len(items))
                    known, scored = order[:len(order) // 2], order[len(order) // 2:]
                    proba = np.clip(model.like_proba(model.posterior(items[known], labels[known]), items[scored]),
                                    1e-6, 1 - 1e-6)
                    liked = labels[scored] > 0
                    loss -= float(np.log(np.where(liked, proba, 1 - proba)).sum())
                    n += len(scored)
            table[str(r)] = round(loss / max(n, 1), 5)
        best = min(COMPONENT_GRID, key=lambda r: table[str(r)])
        return best, table

    def _learn_prior(self, embeddings, r, train, likes, total, overall, progress) -> dict:
        """Empirical Bayes for N(μ, Σ) on r whitened components (EM, Laplace E-step); its evidence trace."""
        p = self.params
        self.item_z_, kept = whitened_components(embeddings, r)
        users = self._training_users(train, likes, total, overall)
        dim = self.item_z_.shape[1] + (2 if p.item_bias else 1)
        mean = np.zeros(dim)
        mean[-1] = logit(np.array(overall))
        if p.item_bias:
            mean[-1], mean[-2] = 0.0, 1.0  # start from popularity: logit = bᵢ
        cov = 0.1 * np.eye(dim)
        weights = [mean.copy() for _ in users]
        trace = []
        task = progress.add("Learning the prior (EM)", total=p.max_iter) if progress else None
        for _ in range(p.max_iter):
            precision = np.linalg.inv(cov)
            precision = 0.5 * (precision + precision.T)
            evidence, posterior_covs = 0.0, np.zeros((dim, dim))
            for k, (x, y) in enumerate(users):
                w, hess, loss = map_fit(x, y, mean, precision, init=weights[k])
                weights[k] = w
                posterior_covs += np.linalg.inv(hess)
                evidence += log_evidence(loss, precision, hess)
            trace.append(evidence / len(users))
            m = np.array(weights)
            mean = m.mean(0)
            d = m - mean
            cov = (posterior_covs + d.T @ d) / len(users)
            cov = (1 - p.shrinkage) * cov + p.shrinkage * np.trace(cov) / dim * np.eye(dim)
            cov = 0.5 * (cov + cov.T)
            if progress:
                progress.advance(task)
            if len(trace) > 1 and abs(trace[-1] - trace[-2]) < p.tol:
                break
        return {"z": self.item_z_, "mean": mean, "cov": cov, "trace": trace, "kept": kept, "users": len(users)}

    def _training_users(self, train: TrainSet, likes, total, overall) -> list[tuple[np.ndarray, np.ndarray]]:
        """(features, labels 0/1) of each training user with at least one label; bᵢ leaves their rating out."""
        csr = train.labels.tocsr()
        users = []
        for u in range(csr.shape[0]):
            lo, hi = csr.indptr[u], csr.indptr[u + 1]
            if hi == lo:
                continue
            items, y = csr.indices[lo:hi], (csr.data[lo:hi] > 0).astype(np.float64)
            parts = [self.item_z_[items]]
            if self.params.item_bias:
                s = self.params.smoothing
                rate = (likes[items] - y + s * overall) / (total[items] - 1 + s)
                parts.append(logit(rate)[:, None])
            parts.append(np.ones((len(items), 1)))
            users.append((np.hstack(parts), y))
        if not users:
            raise FewtuneError("no training user has a liked or disliked rating; the prior cannot be learned")
        return users

    def _build(self) -> None:
        parts = [self.item_z_] + ([self.item_b_[:, None]] if self.params.item_bias else []) + [np.ones((len(self.item_z_), 1))]
        self._features = np.hstack(parts)

    # -- a new user ------------------------------------------------------------------------
    def posterior(self, items: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, covariance) of the user's weights given their rated items; the prior when there are none."""
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0:
            return self.prior_mean_.copy(), self.prior_cov_.copy()
        precision = np.linalg.inv(self.prior_cov_)
        precision = 0.5 * (precision + precision.T)
        w, hess, _ = map_fit(self._features[items], (np.asarray(labels) > 0).astype(np.float64),
                             self.prior_mean_, precision)
        return w, np.linalg.inv(hess)

    def personalise(self, items, labels):
        return self.posterior(items, labels)

    def like_proba(self, user, items: np.ndarray) -> np.ndarray:
        mean, cov = user
        x = self._features[np.asarray(items, dtype=np.int64)]
        return probit_proba(x, mean, cov if self.params.predictive == "probit" else None)

    # -- persistence -----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"item_z": self.item_z_, "item_b": self.item_b_, "prior_mean": self.prior_mean_,
                "prior_cov": self.prior_cov_}

    def load_state(self, arrays) -> None:
        try:
            self.item_z_, self.item_b_ = arrays["item_z"], arrays["item_b"]
            self.prior_mean_, self.prior_cov_ = arrays["prior_mean"], arrays["prior_cov"]
        except KeyError as e:
            raise FewtuneError(f"bayes weights lack {e}") from None
        self._build()
