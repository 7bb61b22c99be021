"""Linear probe: frozen pretrained embeddings + logistic regression — the baseline every report shows.

If a method that trains the encoder cannot beat this, the training did not help.

The head's L2 strength is chosen on the shots by default: scikit-learn's C = 1 on MiniLM's unit-length
embeddings left bbc's 8-shot head at 0.36 mean top probability for 91% accuracy (ECE 0.55), while on
mr the same C is about right. The out-of-fold log-loss over C_GRID tells them apart from the shots
alone (bbc picks C = 1000: ECE 0.06, log-loss 1.07 → 0.29; accuracy within a point on mr, tweets,
rt-subj and bbc, benchmarks/results/linear_probe_c.jsonl).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..data.sampling import cv_folds
from ..errors import FewtuneError
from .base import MethodParams, register_method
from ..params import param
from ..text_windows import LONG_TEXTS, LONG_TEXTS_HELP
from ..training.encoder_method import LinearHeadEncoderMethod
from ..training.heads import CLASS_WEIGHT_HELP, CLASS_WEIGHTS, LinearHead, cross_validated_nll, is_multi_label

C_GRID = (1.0, 10.0, 100.0, 1000.0)  # scikit-learn's default first: it wins ties


@dataclasses.dataclass
class LinearProbeParams(MethodParams):
    max_tokens: int = param(0, "truncate texts to this many tokens (0 = the backbone's own)", minimum=0,
                            renamed_from=("max_seq_length",))
    head_c: float = param(1.0, "inverse L2 strength of the logistic-regression head (when choose_c is false)",
                          above=0)
    choose_c: bool = param(True, f"choose head_c on the shots by the lowest 4-fold cross-validated log-loss over "
                                 f"{C_GRID} (single-label, every class with 2+ shots; otherwise head_c is used)")
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    encode_batch_size: int = param(64, "batch size when embedding texts", minimum=1)
    long_texts: str = param("truncate", LONG_TEXTS_HELP, choices=LONG_TEXTS)

    def check(self, problems: list[str]) -> None:
        if self.choose_c and self.head_c != 1.0:  # a given C silently overruled would be a trap
            problems.append(f"head_c={self.head_c:g} is not used while choose_c is true (C is chosen on the shots); "
                            "add choose_c=false to fix C")


@register_method
class LinearProbe(LinearHeadEncoderMethod):
    """SetFit without the contrastive stage: the same body, head, save format and loading."""

    name = "linear-probe"
    description = "frozen encoder embeddings + logistic regression (the baseline)"
    params_class = LinearProbeParams
    kind = "encoder"
    length_params = ("max_tokens",)
    frozen_body = True
    selection_grid = {"choose_c": [False], "head_c": [1.0, 0.1, 10.0, 100.0]}  # --select cv: by accuracy instead

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        p = self.params
        self._load_body()
        started = time.perf_counter()
        emb = self._encode(texts, progress=progress, description="Embedding training texts")
        info = {"embed_seconds": round(time.perf_counter() - started, 3)}
        c = p.head_c
        if p.choose_c:
            c, info["head_c_cv"] = self._choose_c(emb, np.asarray(y), n_classes, seed)
        self.head = LinearHead.fit_logistic(emb, y, n_classes, c=c, class_weight=p.class_weight, seed=seed)
        info["head_c"] = c
        return info

    def _choose_c(self, emb, y, n_classes, seed) -> tuple[float, dict]:
        if is_multi_label(y):
            return self.params.head_c, {"skipped": "multi-label heads keep head_c"}
        try:
            folds = cv_folds(y, 4, seed)
        except FewtuneError:  # a class with a single shot: nothing to hold out
            return self.params.head_c, {"skipped": "a class has a single shot, which no fold can hold out"}
        scores = cross_validated_nll(emb, y, n_classes, C_GRID, folds, class_weight=self.params.class_weight, seed=seed)
        best = min(scores, key=scores.get)
        return best, {"chosen": best, "cv_nll": {f"{c:g}": round(v, 6) for c, v in scores.items()}}
