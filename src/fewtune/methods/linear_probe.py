"""Linear probe: frozen pretrained embeddings + logistic regression — the baseline every report shows.

If a method that trains the encoder cannot beat this, the training did not help.
"""

from __future__ import annotations

import dataclasses
import time

from ..method import MethodParams, register_method
from ..training.encoder_body import LinearHeadEncoderMethod
from ..training.encoding import encode
from ..training.heads import CLASS_WEIGHT_HELP, LinearHead, check_class_weight

field = dataclasses.field


@dataclasses.dataclass
class LinearProbeParams(MethodParams):
    max_seq_length: int = field(default=0, metadata={"help": "truncate texts to this many tokens (0 = backbone's own)"})
    head_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the logistic-regression head"})
    class_weight: str = field(default="none", metadata={"help": CLASS_WEIGHT_HELP})
    encode_batch_size: int = field(default=64, metadata={"help": "batch size when embedding texts"})

    def check(self, problems: list[str]) -> None:
        check_class_weight(self.class_weight, problems)


@register_method
class LinearProbe(LinearHeadEncoderMethod):
    """SetFit without the contrastive stage: the same body, head, save format and loading."""

    name = "linear-probe"
    description = "frozen encoder embeddings + logistic regression (the baseline)"
    params_class = LinearProbeParams
    kind = "encoder"
    length_params = ("max_seq_length",)
    selection_grid = {"head_c": [1.0, 0.1, 10.0, 100.0]}

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        p = self.params
        self._load_body()
        started = time.perf_counter()
        emb = encode(self.body, texts, batch_size=p.encode_batch_size, progress=progress,
                     description="Embedding training texts")
        self.head = LinearHead.fit_logistic(emb, y, n_classes, c=p.head_c, class_weight=p.class_weight, seed=seed)
        return {"embed_seconds": round(time.perf_counter() - started, 3)}
