"""SetFit-style few-shot classification: contrastive fine-tuning of a sentence encoder, then a head.

SetFit (Tunstall et al. 2022) trains the encoder so that same-class pairs have cosine similarity 1
and different-class pairs 0, then fits logistic regression on the embeddings. The SetFit library
materialises pairs and runs the encoder twice per pair, so its cost multiplies with the number of
pairs. Here each step encodes a class-balanced batch of texts once and scores *every* pair inside
it — the same loss on O(B²) pairs for B encoder passes — so training cost grows linearly in
K × classes.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..bayes import L2SPPrior
from .base import MethodParams, register_method
from .encoder_body import EncoderBodyMethod
from .encoding import encode
from .heads import LinearHead
from .optim import make_optimizer, trainable_parameters

field = dataclasses.field


@dataclasses.dataclass
class SetFitParams(MethodParams):
    steps: int = field(default=40, metadata={"help": "contrastive training steps (0 = train the head only)"})
    batch_size: int = field(default=16, metadata={"help": "texts per contrastive step; all pairs in it are scored"})
    body_lr: float = field(default=2e-5, metadata={"help": "learning rate of the encoder"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of the encoder (a prior centred on 0)"})
    l2sp: float = field(
        default=0.0, metadata={"help": "L2-SP strength λ: penalty λ/2·‖θ−θ₀‖² toward the pretrained encoder (0 = off)"}
    )
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps with linear learning-rate warm-up"})
    max_seq_length: int = field(default=0, metadata={"help": "truncate texts to this many tokens (0 = backbone's own)"})
    head_c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the logistic-regression head"})
    encode_batch_size: int = field(default=64, metadata={"help": "batch size when embedding texts"})
    train_embeddings: bool = field(
        default=False, metadata={"help": "also update the word-embedding matrix (slower; rarely helps with few shots)"}
    )


def balanced_batches(y: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator):
    """Yield `steps` index arrays, each with at least two texts of each class it draws.

    Every batch needs same-class pairs and different-class pairs; each class's examples are cycled
    in a reshuffled order so that all are seen equally often.
    """
    classes = np.unique(y)
    per_class = max(2, batch_size // len(classes))
    classes_per_batch = max(2, min(len(classes), batch_size // per_class))
    queues = {c: [] for c in classes}
    order = list(rng.permutation(classes))
    for step in range(steps):
        start = (step * classes_per_batch) % len(order)
        chosen = [order[(start + i) % len(order)] for i in range(classes_per_batch)]
        batch = []
        for c in chosen:
            members = np.flatnonzero(y == c)
            take = min(per_class, len(members))
            while len(queues[c]) < take:
                queues[c].extend(rng.permutation(members).tolist())
            batch.extend(queues[c][:take])
            del queues[c][:take]
        yield np.asarray(batch)


def pair_loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SetFit's cosine-similarity loss over all pairs in the batch, positives and negatives weighted equally.

    Equal weighting keeps the loss from being dominated by negative pairs when there are many classes.
    """
    emb = F.normalize(emb, dim=-1)
    sim = emb @ emb.T
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
    same = (labels[i] == labels[j]).float()
    err = (sim[i, j] - same) ** 2
    pos = (err * same).sum() / same.sum().clamp(min=1)
    neg = (err * (1 - same)).sum() / (1 - same).sum().clamp(min=1)
    return 0.5 * (pos + neg)


@register_method
class SetFit(EncoderBodyMethod):
    name = "setfit"
    description = "contrastive fine-tuning of a sentence encoder on same/different-class pairs, then a logistic head"
    params_class = SetFitParams

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        p = self.params
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._load_body()
        started = time.perf_counter()
        info = {"body_steps": p.steps}
        if p.steps > 0:
            info["distance_from_pretrained"] = round(self._train_body(texts, y, rng, progress), 6)
        info["body_seconds"] = round(time.perf_counter() - started, 3)
        emb = encode(self.body, texts, batch_size=p.encode_batch_size, progress=progress,
                     description="Embedding training texts")
        self.head = LinearHead.fit_logistic(emb, y, n_classes, c=p.head_c, seed=seed)
        return info

    def _train_body(self, texts, y, rng, progress) -> float:
        """Contrastive training; returns ‖θ−θ₀‖, how far the encoder moved from its pretrained weights."""
        from transformers import get_linear_schedule_with_warmup

        p = self.params
        body = self.body
        body.train()
        trainable = trainable_parameters(body, train_embeddings=p.train_embeddings)
        prior = L2SPPrior(trainable, p.l2sp)
        optimizer = make_optimizer(trainable, lr=p.body_lr, weight_decay=p.weight_decay, device=body.device)
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(p.warmup_ratio * p.steps), p.steps)
        labels = torch.as_tensor(y, device=body.device)
        task = progress.add("Contrastive training", total=p.steps) if progress else None
        for idx in balanced_batches(y, p.batch_size, p.steps, rng):
            features = body.preprocess([texts[i] for i in idx])
            features = {k: v.to(body.device) if hasattr(v, "to") else v for k, v in features.items()}
            loss = pair_loss(body(features)["sentence_embedding"], labels[idx]) + prior.penalty()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if progress:
                progress.advance(task)
        body.eval()
        return prior.distance()

    def embed(self, texts, *, progress=None) -> np.ndarray:
        return encode(self.body, texts, batch_size=self.params.encode_batch_size, progress=progress)

    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        return self.head.predict_proba(self.embed(texts, progress=progress))

    def save(self, folder) -> None:
        self._save_body(folder)
        save_file(self.head.state_dict(), str(folder / "head.safetensors"))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> SetFit:
        body = cls._load_saved_body(folder, backbone, device)
        head = LinearHead.from_state_dict(load_file(str(folder / "head.safetensors")))
        return cls(params, backbone, device, body=body, head=head)
