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

from ..backbones import ENCODER, load_encoder, resolve_backbone, resolve_base
from ..errors import FewtuneError
from .base import FewShotMethod, register_method
from .encoding import encode
from .heads import CLASS_WEIGHT_HELP, SOFTMAX, LinearHead, check_class_weight
from .lm_training import param
from .prompting import ZeroShot, ZeroShotParams

HYBRID_FILE = "hybrid.json"
LM_FOLDER = "lm"  # the zero-shot part's prompt.json


@dataclasses.dataclass
class HybridParams(ZeroShotParams):
    lm: str = param("smollm2-135m", "the causal LM whose calibrated label-word log-probabilities join the embedding")
    max_seq_length: int = param(0, "truncate texts to this many tokens for the encoder (0 = its own limit)")
    head_c: float = param(1.0, "inverse L2 strength of the logistic-regression head")
    lm_feature_scale: float = param(
        4.0, "the LM's columns are multiplied by this before the head is fitted: under the same L2 penalty a "
             "larger scale makes the LM's evidence cheaper to use than the 384 embedding columns")
    class_weight: str = param("none", CLASS_WEIGHT_HELP)
    encode_batch_size: int = param(64, "batch size when embedding texts")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        check_class_weight(self.class_weight, problems)
        if not self.lm.strip():
            problems.append("lm must name a causal LM backbone")
        for name in ("head_c", "lm_feature_scale"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")


def _zero_shot_params(p: HybridParams) -> ZeroShotParams:
    names = {f.name for f in dataclasses.fields(ZeroShotParams)}
    return ZeroShotParams(**{k: v for k, v in dataclasses.asdict(p).items() if k in names})


@register_method
class Hybrid(FewShotMethod):
    name = "hybrid"
    description = ("encoder embedding + a causal LM's calibrated label-word log-probabilities, one logistic head "
                   "(no LM training)")
    params_class = HybridParams
    backbone_kinds = (ENCODER,)
    refittable_head = True

    def __init__(self, params: HybridParams, backbone, device: str, body=None, lm: ZeroShot | None = None,
                 head: LinearHead | None = None):
        super().__init__(params, backbone, device)
        self.body, self.lm, self.head = body, lm, head
        self.score_cache: dict | None = None  # handed to the zero-shot part (see ZeroShot._raw_scores)

    def _load_body(self) -> None:
        self.body = load_encoder(self.backbone, device=self.device)
        if self.params.max_seq_length:
            self.body.max_seq_length = self.params.max_seq_length

    def _lm_columns(self, texts, progress=None) -> np.ndarray:
        """log p(class | text) from the calibrated label words, scaled for the head."""
        proba = self.lm.predict_proba(texts, progress=progress)
        return np.log(np.clip(proba, 1e-12, 1.0)) * self.params.lm_feature_scale

    def features(self, texts, *, progress=None) -> np.ndarray:
        emb = encode(self.body, texts, batch_size=self.params.encode_batch_size, progress=progress)
        return np.hstack([emb, self._lm_columns(texts, progress)]).astype(np.float64)

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        if np.ndim(y) == 2:
            raise FewtuneError("method 'hybrid' scores one label word per text; multi-label data needs an encoder "
                               "method (setfit, finetune, linear-probe)")
        p = self.params
        lm_backbone = resolve_backbone(p.lm)
        if lm_backbone.kind != "causal-lm":
            raise FewtuneError(f"hybrid's lm must be a causal LM; '{p.lm}' is a {lm_backbone.kind}")
        started = time.perf_counter()
        self.lm = ZeroShot(_zero_shot_params(p), lm_backbone, self.device)
        self.lm.class_names = self.class_names
        self.lm.score_cache = self.score_cache
        lm_info = self.lm.fit(texts, y, n_classes, seed=seed, progress=progress)
        self._load_body()
        # The LM's columns for the shots are out of fold (each from a calibration fitted without it), the
        # way they will look on new texts; in-sample ones would win the head's trust they do not deserve.
        emb = encode(self.body, texts, batch_size=p.encode_batch_size, progress=progress)
        x = np.hstack([emb, self.lm.shot_logp * p.lm_feature_scale]).astype(np.float64)
        self.head = LinearHead.fit_logistic(x, np.asarray(y), n_classes, c=p.head_c, class_weight=p.class_weight,
                                            seed=seed)
        return {"lm": lm_backbone.name, "prompt": lm_info["prompt"],
                "embedding_dim": int(x.shape[1] - n_classes), "fit_seconds": round(time.perf_counter() - started, 3)}

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
        (folder / HYBRID_FILE).write_text(json.dumps({"lm": self.lm.backbone.name}, indent=2))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Hybrid:
        saved = json.loads((folder / HYBRID_FILE).read_text(encoding="utf-8"))
        encoder = resolve_base(backbone)
        lm_ref = dataclasses.replace(backbone, name=saved["lm"], kind="causal-lm")
        lm = ZeroShot.load(folder / LM_FOLDER, _zero_shot_params(params), lm_ref, device, n_classes)
        head = LinearHead.load(folder / "head.safetensors")
        if head.weight.shape[0] != n_classes:
            raise FewtuneError(f"{folder}: head.safetensors has {head.weight.shape[0]} classes but fewtune.json "
                               f"lists {n_classes}")
        method = cls(params, encoder, device, lm=lm, head=head)
        method._load_body()
        return method

    def parts(self) -> list[FewShotMethod]:
        lm = getattr(self, "lm", None)
        return [lm] if lm is not None else []
