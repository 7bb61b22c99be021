"""posterior="laplace" and "laplace-cv": a Laplace posterior over the softmax head (the maths: laplace.py).

The two differ only in how the prior precision τ is chosen: by the evidence, or by cross-validated
NLL on the shots. For heads fitted on frozen features (setfit, linear-probe) the head is refitted
at that precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FewtuneError
from ..progress import Progress, shown
from .laplace import LaplaceHead
from .strategy import Fitting, Posterior, register_posterior

POSTERIOR_FILE = "posterior.safetensors"


def fit_head(model, texts: list[str], y_idx: np.ndarray, *, prior: str, folds: int, seed: int,
             show_progress: bool | None, method: str) -> LaplaceHead:
    """The posterior over model's head given the shots; a refittable head becomes its MAP at the chosen τ."""
    layer = model.last_layer()
    if layer is None:
        raise FewtuneError(f"method '{method}' has no softmax head on features to put a Laplace posterior on "
                           "(it covers setfit, linear-probe, finetune, hybrid, and the label-word methods with one "
                           "template, given or template_search='best', and single-token label words)")
    with Progress(shown(show_progress) and len(texts) > 256) as progress:
        features = model.features(texts, progress=progress)
    refit = bool(model.refittable_head)
    head = LaplaceHead.fit(features, y_idx, *layer, refit=refit, prior=prior, folds=folds, seed=seed)
    if refit:
        model.set_last_layer(head.weight, head.bias)  # the MAP head at the chosen prior
    return head


@register_posterior
class LaplacePosterior(Posterior):
    name = "laplace"
    prior = "evidence"  # how τ is chosen

    def __init__(self, head: LaplaceHead | None = None):
        super().__init__({"kind": "laplace", **head.evidence} if head is not None else None)
        self.head = head

    def fit(self, fitting: Fitting) -> list[LaplacePosterior]:
        clf = fitting.clf
        self.head = fit_head(clf.model_, fitting.texts, fitting.y_idx, prior=self.prior, folds=clf.cv_folds,
                             seed=clf.seed, show_progress=clf.show_progress, method=clf.method)
        self.info = {"kind": "laplace", **self.head.evidence}
        return [self]

    def predict_proba(self, model, texts: list[str], progress) -> np.ndarray:
        return self.head.predict_proba(model.features(texts, progress=progress))

    def logit_moments(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.head.logit_moments(features)

    def state(self) -> dict:
        return {"posterior": {"kind": "laplace", "option": self.name, "predictive": self.head.predictive,
                              "tau": self.head.tau}}

    def write(self, folder: Path) -> None:
        from safetensors.torch import save_file

        save_file(self.head.state(), str(folder / POSTERIOR_FILE))

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> LaplacePosterior:
        from safetensors.torch import load_file

        return cls(LaplaceHead.from_state(load_file(str(folder / POSTERIOR_FILE)),
                                          predictive=config["posterior"].get("predictive", "probit"),
                                          evidence=clf.train_info_.get("posterior")))

    def describe(self) -> str:
        by = "cross-validated NLL" if self.info.get("prior") == "cv" else "maximum evidence"
        return (f"Laplace posterior over the head: prior precision τ = {self.head.tau:.3g} "
                f"({by}{', head refitted' if self.info.get('refit') else ''})")


@register_posterior
class LaplaceCVPosterior(LaplacePosterior):
    name = "laplace-cv"
    prior = "cv"
