"""Which unlabeled texts to label next: acquisition scores under the model's posterior.

- bald (Houlsby et al. 2011): the mutual information between a text's label and the model's
  weights, H[E_θ p(y|x,θ)] − E_θ H[p(y|x,θ)], estimated with posterior samples: of the logits under
  a Laplace posterior, or an ensemble's members, or MC-dropout masks. It is high where the samples
  disagree, i.e. where a label would teach the model the most, and low where the model is unsure
  only because the text itself is ambiguous. Needs a posterior.
- entropy: the predictive entropy H[p(y|x)], for any model: high wherever the model is unsure.
- margin: 1 − (p₁ − p₂), one minus the gap between the two most probable classes.
"""

from __future__ import annotations

import numpy as np

from ..errors import FewtuneError
from ..numeric import softmax

STRATEGIES = ("bald", "entropy", "margin")


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=axis)


def bald(mean: np.ndarray, cov: np.ndarray, n_samples: int = 200, seed: int = 0) -> np.ndarray:
    """Mutual information from the logits' posterior moments (mean (m, C), covariance (m, C, C))."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(0.5 * (cov + cov.transpose(0, 2, 1)) + 1e-9 * np.eye(cov.shape[1]))
    draws = rng.standard_normal((n_samples, *mean.shape))
    return mutual_information(softmax(mean[None] + np.einsum("mcd,smd->smc", chol, draws)))


def mutual_information(probs: np.ndarray) -> np.ndarray:
    """BALD from sampled predictions (samples, m, C): entropy of the mean minus mean entropy."""
    return entropy(probs.mean(0)) - entropy(probs).mean(0)


def acquisition_scores(clf, texts: list, strategy: str = "bald", *, seed: int = 0) -> np.ndarray:
    """One score per text (higher = label it sooner) from a fitted FewShotClassifier."""
    if strategy not in STRATEGIES:
        raise FewtuneError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if getattr(clf, "multi_label_", False):
        raise FewtuneError("acquisition scores cover single-label models")
    if strategy == "bald":
        posterior = getattr(clf, "posterior_", None)
        if posterior is None:
            raise FewtuneError("bald needs a posterior: train with posterior='laplace', 'ensemble' or 'mc-dropout' "
                               "(--posterior ...), or use --strategy entropy")
        if posterior.sampled:
            return mutual_information(clf.sampled_proba(texts))
        mean, cov = posterior.logit_moments(clf.features(texts))
        return bald(mean, cov, seed=seed)
    p = clf.predict_proba(texts)
    if strategy == "entropy":
        return entropy(p)
    top = np.sort(p, axis=1)[:, ::-1]
    return 1.0 - (top[:, 0] - top[:, 1])


def suggest(clf, texts: list, n: int, strategy: str = "bald", *, seed: int = 0) -> list[tuple[int, float]]:
    """The n texts to label first: (index into texts, score), best first; ties keep data order."""
    if n < 1:
        raise FewtuneError(f"-n must be at least 1, got {n}")
    scores = acquisition_scores(clf, texts, strategy, seed=seed)
    order = np.argsort(-scores, kind="stable")[:n]
    return [(int(i), float(scores[i])) for i in order]
