"""`majority`: the floor every few-shot result must clear — the training class frequencies, whatever the text.

With balanced K-shot training data this is chance (1 / classes); on imbalanced data it is the
majority class. It reads no text and loads no model, so it costs nothing to run beside the others.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..backbones import CAUSAL_LM, ENCODER
from ..errors import FewtuneError
from .base import FewShotMethod, MethodParams, register_method
from ..training.heads import is_multi_label


@dataclasses.dataclass
class MajorityParams(MethodParams):
    """No settings."""


@register_method
class Majority(FewShotMethod):
    name = "majority"
    description = "predicts the training class frequencies for every text (the baseline to beat; no model)"
    params_class = MajorityParams
    backbone_kinds = (ENCODER, CAUSAL_LM)  # accepted and ignored: nothing is loaded
    reads_text = False
    kind = "baseline"

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        y = np.asarray(y)
        if is_multi_label(y):
            self.prior = y.mean(0)  # each label's frequency, independently
        else:
            self.prior = np.bincount(y, minlength=n_classes) / len(y)
        return {"class_prior": [round(float(p), 6) for p in self.prior]}

    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        return np.tile(self.prior, (len(texts), 1))

    def save(self, folder) -> None:
        (folder / "prior.json").write_text(json.dumps({"prior": self.prior.tolist()}))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Majority:
        method = cls(params, backbone, device)
        method.prior = np.asarray(json.loads((folder / "prior.json").read_text())["prior"], dtype=float)
        if len(method.prior) != n_classes:
            raise FewtuneError(f"{folder}: prior.json has {len(method.prior)} classes, fewtune.json {n_classes}")
        return method
