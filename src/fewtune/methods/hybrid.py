"""`hybrid`: one logistic head on both backbone families, with no LM training.

A sentence encoder's embedding says which texts are alike; a causal LM's label-word scores say what
the classes mean. The head reads both: the encoder's embedding (frozen, as in linear-probe) next to
the LM's calibrated label-word log-probabilities (zero-shot, its template and calibration chosen on
the shots). Where the LM's prior is strong (sentiment) the head leans on its column; where it is weak
(topics it reads poorly, ids as labels) on the embedding. It is a softmax head on fixed features, so
the Laplace posterior (refitted at the chosen precision) and temperature scaling work as on any head.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import torch

from ..backbones import CAUSAL_LM, ENCODER, a_kind, resolve_backbone, resolve_base
from ..data.sampling import cv_folds
from ..errors import FewtuneError
from .base import (ENCODER_LIMIT, LM_LIMIT, LM_LIMIT_HELP, LM_TEXT_TOKENS, FewShotMethod, get_method,
                   lm_token_limit, register_method, split_token_limits)
from ..params import param
from ..text_windows import LONG_TEXTS, LONG_TEXTS_HELP, reads_chunks
from ..training.embed_texts import encode
from ..training.encoder_method import pretrained_body
from ..training.heads import CLASS_WEIGHT_HELP, CLASS_WEIGHTS, SOFTMAX, LinearHead, cross_validated_nll
from ..training.label_word_method import LabelWordMethod, ZeroShotParams

HYBRID_FILE = "hybrid.json"
# How much the head may lean on the LM, and how hard it is held: on bbc (K=8) the LM's columns at the
# fixed scale 4 took the head from the embedding's 0.88 to 0.81, on mr they carry it (the LM reads
# sentiment better than MiniLM's embedding). Only the shots can tell which, so they choose.
SCALE_GRID = (0.0, 0.5, 1.0, 2.0, 4.0)
C_GRID = (0.1, 1.0, 10.0, 100.0)
LM_FOLDER = "lm"  # the zero-shot part's prompt.json
ZERO_SHOT = "zero-shot"  # the method of the LM part, looked up when used: methods do not import each other


@dataclasses.dataclass
class HybridParams(ZeroShotParams):
    lm: str = param("smollm2-135m", "the causal LM whose calibrated label-word log-probabilities join the embedding")
    max_tokens: int = param(0, "truncate texts to this many tokens, for the encoder and the LM alike unless "
                               f"lm_max_tokens is given (0 = each one's own: the encoder's limit, {LM_TEXT_TOKENS} "
                               "for the LM)", minimum=0,
                            renamed_from=(ENCODER_LIMIT,))
    lm_max_tokens: int = param(0, LM_LIMIT_HELP, minimum=0, renamed_from=(LM_LIMIT,))
    head_c: float = param(1.0, "inverse L2 strength of the logistic-regression head (when choose_by_cv is false)",
                          above=0)
    lm_feature_scale: float = param(
        4.0, "the LM's columns are multiplied by this before the head is fitted: under the same L2 penalty a "
             "larger scale makes the LM's evidence cheaper to use than the 384 embedding columns (when "
             "choose_by_cv is false; 0 leaves the LM out)", minimum=0)
    choose_by_cv: bool = param(
        True, "choose lm_feature_scale and head_c on the shots, by the lowest cross-validated log-loss over "
              f"scales {SCALE_GRID} and C {C_GRID} (scale 0: the LM adds nothing there, and is not run at predict)")
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    encode_batch_size: int = param(64, "batch size when embedding texts", minimum=1)
    long_texts: str = param("truncate", LONG_TEXTS_HELP, choices=LONG_TEXTS)

    @classmethod
    def from_old_names(cls, name, old, values, method):
        if name in ("max_tokens", "lm_max_tokens"):
            return split_token_limits(name, old, values)
        return super().from_old_names(name, old, values, method)

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if not self.lm.strip():
            problems.append("lm must name a causal LM backbone")


def _zero_shot_params(p: HybridParams) -> ZeroShotParams:
    names = {f.name for f in dataclasses.fields(ZeroShotParams)}
    values = {k: v for k, v in dataclasses.asdict(p).items() if k in names}
    return ZeroShotParams(**{**values, "max_tokens": lm_token_limit(p.max_tokens, p.lm_max_tokens)})


@register_method
class Hybrid(FewShotMethod):
    name = "hybrid"
    description = ("encoder embedding + a causal LM's calibrated label-word log-probabilities, one logistic head "
                   "(no LM training)")
    params_class = HybridParams
    backbone_kinds = (ENCODER,)
    kind = "hybrid"
    length_params = ("max_tokens",)
    refittable_head = True

    def __init__(self, params: HybridParams, backbone, device: str, body=None, lm: LabelWordMethod | None = None,
                 head: LinearHead | None = None):
        super().__init__(params, backbone, device)
        self.body, self.lm, self.head = body, lm, head
        self.chosen: dict | None = None  # lm_feature_scale and head_c, when chosen on the shots
        self.score_cache: dict | None = None  # handed to the zero-shot part (see LabelWordMethod._raw_scores)

    def _load_body(self) -> None:  # never trained: a fold loop's hybrids (and linear-probes) share one
        self.body = pretrained_body(self.backbone, self.device, self.params.max_tokens, frozen=True)

    def _encode(self, texts, progress=None) -> np.ndarray:
        return encode(self.body, texts, batch_size=self.params.encode_batch_size, progress=progress,
                      chunks=reads_chunks(self.params))  # the encoder's part only: the LM cuts its own

    def _lm_columns(self, texts, progress=None) -> np.ndarray:
        """log p(class | text) from the calibrated label words, scaled for the head."""
        if self.scale == 0:  # the head gives the LM no weight: no need to run it
            return np.zeros((len(texts), self.head.weight.shape[0]))
        proba = self.lm.predict_proba(texts, progress=progress)
        return np.log(np.clip(proba, 1e-12, 1.0)) * self.scale

    @property
    def scale(self) -> float:
        return self.params.lm_feature_scale if self.chosen is None else self.chosen["lm_feature_scale"]

    def features(self, texts, *, progress=None) -> np.ndarray:
        emb = self._encode(texts, progress)
        return np.hstack([emb, self._lm_columns(texts, progress)]).astype(np.float64)

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        if np.ndim(y) == 2:
            raise FewtuneError("method 'hybrid' scores one label word per text; multi-label data needs an encoder "
                               "method (setfit, finetune, linear-probe)")
        p = self.params
        lm_backbone = resolve_backbone(p.lm)
        if lm_backbone.kind != CAUSAL_LM:
            raise FewtuneError(f"hybrid's lm must be a causal LM; '{p.lm}' is {a_kind(lm_backbone.kind)}")
        started = time.perf_counter()
        self.lm = get_method(ZERO_SHOT)(_zero_shot_params(p), lm_backbone, self.device)
        self.lm.class_names = self.class_names
        self.lm.score_cache = self.score_cache
        lm_info = self.lm.fit(texts, y, n_classes, seed=seed, progress=progress)
        self._load_body()
        # The LM's columns for the shots are out of fold (each from a calibration fitted without it), the
        # way they will look on new texts; in-sample ones would win the head's trust they do not deserve.
        emb = self._encode(texts, progress)
        y = np.asarray(y)
        info = {"lm": lm_backbone.name, "prompt": lm_info["prompt"], "embedding_dim": int(emb.shape[1])}
        if p.choose_by_cv:
            self.chosen, info["cv"] = self._choose(emb, self.lm.shot_logp, y, n_classes, seed)
        scale, c = self.scale, (self.chosen or {}).get("head_c", p.head_c)
        x = np.hstack([emb, self.lm.shot_logp * scale]).astype(np.float64)
        self.head = LinearHead.fit_logistic(x, y, n_classes, c=c, class_weight=p.class_weight, seed=seed)
        info.update(lm_feature_scale=scale, head_c=c, fit_seconds=round(time.perf_counter() - started, 3))
        return info

    def _choose(self, emb, lm_logp, y, n_classes, seed) -> tuple[dict | None, dict]:
        """The grid point with the lowest out-of-fold NLL on the shots (the LM's columns are already out of fold)."""
        try:
            folds = cv_folds(y, 4, seed)
        except FewtuneError:  # a class with a single shot: nothing to hold out, keep the given values
            return None, {"skipped": "a class has a single shot, which no fold can hold out"}
        scores = {}
        for scale in SCALE_GRID:
            x = np.hstack([emb, lm_logp * scale])
            by_c = cross_validated_nll(x, y, n_classes, C_GRID, folds, class_weight=self.params.class_weight, seed=seed)
            scores.update({(scale, c): v for c, v in by_c.items()})
        scale, c = min(scores, key=scores.get)
        return ({"lm_feature_scale": scale, "head_c": c},
                {"chosen": {"lm_feature_scale": scale, "head_c": c},
                 "cv_nll": {f"scale={s:g},C={cc:g}": round(v, 6) for (s, cc), v in scores.items()}})

    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        return self.head.predict_proba(self.features(texts, progress=progress))

    def last_layer(self):
        return self.head.weight.double().numpy(), self.head.bias.double().numpy()

    def set_last_layer(self, weight, bias) -> None:
        self.head = LinearHead(torch.from_numpy(np.asarray(weight)), torch.from_numpy(np.asarray(bias)), SOFTMAX)

    def save(self, folder) -> None:
        # Both backbones stay as they were: the folder names them and holds the head and the prompt.
        self.head.save(folder / "head.safetensors")
        (folder / LM_FOLDER).mkdir()
        self.lm.save(folder / LM_FOLDER)
        (folder / HYBRID_FILE).write_text(json.dumps({"lm": self.lm.backbone.name, "chosen": self.chosen}, indent=2))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Hybrid:
        saved = json.loads((folder / HYBRID_FILE).read_text(encoding="utf-8"))
        encoder = resolve_base(backbone)
        lm_ref = dataclasses.replace(backbone, name=saved["lm"], kind="causal-lm")
        lm = get_method(ZERO_SHOT).load(folder / LM_FOLDER, _zero_shot_params(params), lm_ref, device, n_classes)
        head = LinearHead.load(folder / "head.safetensors")
        if head.weight.shape[0] != n_classes:
            raise FewtuneError(f"{folder}: head.safetensors has {head.weight.shape[0]} classes but fewtune.json "
                               f"lists {n_classes}")
        method = cls(params, encoder, device, lm=lm, head=head)
        method.chosen = saved.get("chosen")
        method._load_body()
        return method

    def parts(self) -> list[FewShotMethod]:
        lm = getattr(self, "lm", None)
        return [lm] if lm is not None else []
