"""posterior="mc-dropout": one model, the average of `samples` predictions with its dropout on
(the maths: ensembles.py); the masks come from the seed, so predictions repeat."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ensembles import DEFAULT_DROPOUT_SAMPLES, mc_dropout_samples, sampled_dropout_layers
from .strategy import Fitting, SampledPosterior, register_posterior


@register_posterior
class MCDropout(SampledPosterior):
    name = "mc-dropout"
    default_samples = DEFAULT_DROPOUT_SAMPLES

    def fit(self, fitting: Fitting) -> list[MCDropout]:
        sampled_dropout_layers(fitting.clf.model_)  # fails now, at training, rather than at the first prediction
        self.info = {"kind": "mc-dropout", "samples": self.samples}
        return [self]

    def sampled_proba(self, model, texts: list[str], progress) -> np.ndarray:
        return mc_dropout_samples(model, texts, samples=self.samples, seed=self.seed, progress=progress)

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> MCDropout:
        return cls(int(config["posterior"]["samples"]), clf.seed, clf.train_info_.get("posterior"))

    def describe(self) -> str:
        return f"MC dropout: {self.samples} samples per prediction"
