"""Plain fine-tuning: the encoder and a linear classification head trained end to end with cross-entropy.

The baseline of "Revisiting few-sample BERT fine-tuning" (Zhang et al. 2021), with the remedies that
paper found for few examples: bias-corrected Adam (torch's AdamW is), more epochs than the usual 3,
and re-initialising the top transformer layers (`reinit_layers`), whose pretraining-specific weights
transfer worst. On top of that: LoRA adapters instead of full fine-tuning (`lora`), an L2-SP prior
toward the pretrained weights (`l2sp`), and early stopping on a validation split carved out of the
training shots themselves (`early_stopping`) — never out of test data.

The head reads the sentence-transformers pipeline's pooled `sentence_embedding` (normalised, if the
pipeline normalises), so a backbone is fine-tuned in the same representation it is used in. That is
why `head_learning_rate` defaults to 3e-2, not the encoder's 2e-5 nor 1e-3: a head starting from scratch on a
unit-norm embedding barely moves in the ~20 steps of an 8-shot run at 1e-3 (on MR, 8 shots, MiniLM,
three draws: 0.54 accuracy at 1e-3, 0.58 at 1e-2, 0.60 at 3e-2 and at 1e-1; linear probe 0.60).
LoRA adapters get a larger default learning rate (`learning_rate=0`: 5e-4 for LoRA, 2e-5 for every
weight), as is usual for LoRA.

Saved folder: `body/` (a complete sentence-transformers folder, safetensors) and `head.safetensors`.
LoRA adapters are merged into the body's weights at the end of training, so a LoRA model is saved
and loaded exactly like a fully fine-tuned one and loading it does not need peft.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from ..backbones import CAUSAL_LM, ENCODER, ResolvedBackbone
from ..backbones.quiet_loading import quiet_libraries
from ..bayes import L2SPPrior
from ..bayes.evidence import L2SP_EVIDENCE_GRID, ggn_eigenvalues, log_evidence
from ..errors import FewtuneError
from .base import MethodParams, register_method
from ..params import param
from ..text_windows import LONG_TEXTS, LONG_TEXTS_HELP
from ..training.encoder_method import EncoderBodyMethod
from ..training.transformer_layers import ClassificationHead, hf_model, reinit_top_layers
from ..training.embed_texts import embedding_dimension
from ..training.lora import LoraDeltaPrior, apply_lora
from ..training.heads import (
    CLASS_WEIGHT_HELP,
    CLASS_WEIGHTS,
    SIGMOID,
    SOFTMAX,
    batch_keys,
    class_weights,
    classification_loss,
    is_multi_label,
    load_head,
    probabilities,
    save_head,
)
from ..training.optim import (
    ATTENTION_DROPOUT_HELP, BestEpoch, dropout_problem, encoder_dropout, make_optimizer, trainable_parameters,
    update,
)

VALIDATION_FRACTION = 0.2
# The encoder's learning rate when none is given: fine-tuning every weight, or LoRA adapters (learning_rate=0).
FULL_LEARNING_RATE, LORA_LEARNING_RATE = 2e-5, 5e-4


@dataclasses.dataclass
class FinetuneParams(MethodParams):
    epochs: int = param(10, "passes over the training texts (few shots need more than the usual 3)", minimum=1)
    batch_size: int = param(8, "texts per optimisation step", minimum=1)
    learning_rate: float = param(
        0.0, "learning rate of what is trained in the encoder: every weight, or the LoRA adapters with lora=true "
             f"(0 = the default for it: {FULL_LEARNING_RATE:g}, or {LORA_LEARNING_RATE:g} for LoRA)", minimum=0,
        renamed_from=("lr", "lora_lr"))
    head_learning_rate: float = param(3e-2, "learning rate of the classification head, which starts from scratch",
                                      above=0, renamed_from=("head_lr",))
    weight_decay: float = param(0.01, "AdamW weight decay of weight matrices (biases and norms are not decayed)",
                                minimum=0)
    warmup_ratio: float = param(0.1, "fraction of steps with linear learning-rate warm-up, then linear decay",
                                minimum=0, maximum=1)
    dropout: float = param(0.1, "dropout on the sentence embedding before the head")
    # 0, not the backbone's 0.1, as in setfit: on CPU attention dropout rules out the fused attention kernel
    # (benchmarks/README.md "attention_dropout", where finetune's quality with and without it is compared).
    attention_dropout: float = param(0.0, ATTENTION_DROPOUT_HELP)
    l2sp: float = param(
        0.0, "L2-SP strength λ: penalty λ/2·‖θ−θ₀‖² toward the pretrained encoder (0 = off; 1 mild, 10 strong)",
        minimum=0)
    reinit_layers: int = param(0, "re-initialise the top N transformer layers before training (Zhang et al. 2021)",
                               minimum=0)
    lora: bool = param(False, "train LoRA adapters (merged into the encoder afterwards) instead of every weight")
    lora_r: int = param(8, "LoRA rank", minimum=1)
    lora_alpha: int = param(16, "LoRA scaling α (the update is scaled by α/r)", above=0)
    early_stopping: bool = param(
        False, "hold out a stratified 20% of the training shots; keep the epoch with the lowest validation loss"
    )
    patience: int = param(3, "with early_stopping: epochs without improvement before stopping", minimum=1)
    max_tokens: int = param(0, "truncate texts to this many tokens (0 = the backbone's own)", minimum=0,
                            renamed_from=("max_seq_length",))
    train_embeddings: bool = param(False, "also update the word-embedding matrix (full fine-tuning only)")
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    encode_batch_size: int = param(64, "batch size when predicting", minimum=1)
    long_texts: str = param("truncate", LONG_TEXTS_HELP, choices=LONG_TEXTS)

    @classmethod
    def from_old_names(cls, name, old, values, method):
        if name != "learning_rate":
            return super().from_old_names(name, old, values, method)
        # lr and lora_lr were two rates, of which lora chose one; the other changed nothing, so it is dropped.
        lora = cls._coerce(next(f for f in dataclasses.fields(cls) if f.name == "lora"), values.get("lora", False),
                           method)
        return old.get("lora_lr" if lora else "lr", dataclasses.MISSING)

    def trained_learning_rate(self) -> float:
        """The encoder's learning rate: the given one, or the default for what lora says is trained."""
        return self.learning_rate or (LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE)

    def check(self, problems: list[str]) -> None:
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problem := dropout_problem("attention_dropout", self.attention_dropout):
            problems.append(problem)
        if self.lora and self.reinit_layers:
            problems.append(
                "reinit_layers needs full fine-tuning: with lora=true re-initialised layers would stay random"
            )


def stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into y: about `fraction` of every class held out, at least one of each.

    Every class needs two examples: one to train on and one to validate on.
    """
    y = np.asarray(y)
    train, val = [], []
    keys = batch_keys(y)  # multi-label rows: stratify by label set
    for c in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == c))
        if len(members) < 2:
            raise FewtuneError(
                f"early_stopping holds out a validation split from the training shots, which needs at least 2 "
                f"examples of every class; class index {c} has {len(members)}"
            )
        n_val = min(len(members) - 1, max(1, round(fraction * len(members))))
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return np.sort(np.asarray(train)), np.sort(np.asarray(val))


@register_method
class Finetune(EncoderBodyMethod):
    name = "finetune"
    description = "fine-tune the encoder and a linear head end to end with cross-entropy (LoRA, L2-SP, re-init options)"
    params_class = FinetuneParams
    # A causal LM is loaded as transformer + mean pooling (backbones.load_encoder): e.g. Gemma 3 for
    # languages the English encoders cannot read.
    backbone_kinds = (ENCODER, CAUSAL_LM)
    kind = "encoder"
    length_params = ("max_tokens",)
    # The rates as numbers, so the table and the saved choice name the rate trained; LoRA's default with lora=true.
    selection_grid = {"learning_rate": [FULL_LEARNING_RATE, 1e-4], "l2sp": [0.0, 1.0]}
    evidence_grid = {"l2sp": list(L2SP_EVIDENCE_GRID)}

    @classmethod
    def default_grid(cls, params: FinetuneParams) -> dict[str, list[Any]]:
        if not params.lora:
            return cls.selection_grid
        return {**cls.selection_grid, "learning_rate": [LORA_LEARNING_RATE, 1e-4]}

    def __init__(self, params: FinetuneParams, backbone: ResolvedBackbone, device: str, body=None, head=None):
        super().__init__(params, backbone, device, body=body, head=head)
        self.trained_parameter_names: list[str] = []
        self.prior = None  # the L2-SP prior of the last fit (with θ₀), for log_evidence

    # -- training -------------------------------------------------------------------------
    soft_targets = True

    def fit(self, texts, y, n_classes, *, seed, progress, soft_targets: np.ndarray | None = None) -> dict:
        """soft_targets: rows of class probabilities (a teacher's) to fit by cross-entropy instead of y."""
        from transformers import get_linear_schedule_with_warmup

        p = self.params
        y = np.asarray(y)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._load_body()
        body = self.body
        model = hf_model(body)
        info: dict = {}

        reinitialised = {id(t) for t in reinit_top_layers(model, p.reinit_layers)}
        peft_model = None
        if p.lora:
            peft_model = apply_lora(model, r=p.lora_r, alpha=p.lora_alpha)
            for name, param in body.named_parameters():
                if "lora_" not in name:
                    param.requires_grad_(False)  # also ST modules outside the transformer (Dense, ...)
            body_params = [param for param in body.parameters() if param.requires_grad]
            prior = LoraDeltaPrior(model, p.l2sp)
        else:
            body_params = trainable_parameters(body, train_embeddings=p.train_embeddings)
            # Re-initialised layers have no pretrained values worth staying near: the prior skips them.
            prior = L2SPPrior([t for t in body_params if id(t) not in reinitialised], p.l2sp)
        head = ClassificationHead(embedding_dimension(body), n_classes, p.dropout).to(body.device)
        head.activation = SIGMOID if is_multi_label(y) else SOFTMAX
        self.head = head
        self.trained_parameter_names = [
            *(f"body.{n}" for n, t in body.named_parameters() if t.requires_grad),
            *(f"head.{n}" for n, t in head.named_parameters() if t.requires_grad),
        ]

        body_rate = p.trained_learning_rate()
        groups = [
            {"params": [t for t in body_params if t.ndim >= 2], "lr": body_rate, "weight_decay": p.weight_decay},
            {"params": [t for t in body_params if t.ndim < 2], "lr": body_rate, "weight_decay": 0.0},
            {"params": [head.linear.weight], "lr": p.head_learning_rate, "weight_decay": p.weight_decay},
            {"params": [head.linear.bias], "lr": p.head_learning_rate, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        everything = [t for g in groups for t in g["params"]]
        optimizer = make_optimizer(groups, lr=body_rate, weight_decay=p.weight_decay, device=body.device)

        if p.early_stopping:
            train_idx, val_idx = stratified_holdout(y, VALIDATION_FRACTION, rng)
        else:
            train_idx, val_idx = np.arange(len(y)), np.zeros(0, dtype=int)
        steps_per_epoch = math.ceil(len(train_idx) / p.batch_size)
        total = p.epochs * steps_per_epoch
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(p.warmup_ratio * total), total)
        labels = torch.as_tensor(y, device=body.device)
        # F.cross_entropy takes probabilities as targets: the student's loss is its cross-entropy to the teacher.
        targets = labels if soft_targets is None else torch.as_tensor(soft_targets, device=body.device)
        weights = class_weights(y, n_classes, p.class_weight)
        self._class_weights = None if weights is None else weights.to(body.device)

        task = progress.add("Fine-tuning", total=total) if progress else None
        best, epochs_run, steps = BestEpoch(everything, p.patience), 0, 0
        with encoder_dropout(body, -1.0, p.attention_dropout):
            for epoch in range(1, p.epochs + 1):
                body.train()
                head.train()
                order = rng.permutation(train_idx)
                for start in range(0, len(order), p.batch_size):
                    idx = order[start:start + p.batch_size]
                    logits = head(self._embed_batch([texts[i] for i in idx]))
                    loss = classification_loss(logits, targets[idx], self._class_weights,
                                               soft=soft_targets is not None) + prior.penalty()
                    update(loss, everything, optimizer, scheduler)
                    steps += 1
                    if progress:
                        progress.advance(task)
                epochs_run = epoch
                if p.early_stopping and best.record(epoch, self._loss([texts[i] for i in val_idx], labels[val_idx])):
                    break
        best.restore()
        body.eval()
        head.eval()

        info["epochs"] = epochs_run
        info["steps"] = steps
        info["trainable_parameters"] = sum(t.numel() for t in everything)
        info["distance_from_pretrained"] = round(prior.distance(), 6)
        self.prior = prior
        if p.early_stopping:
            info.update(best_epoch=best.epoch, validation_loss=round(best.loss, 6),
                        n_validation=len(val_idx), n_fit=len(train_idx))
        if peft_model is not None:
            # Fold ΔW into the weights: the encoder is a plain transformers model again.
            with quiet_libraries():
                peft_model.merge_and_unload()  # in place: body's transformer module holds the merged model
        return info

    @torch.no_grad()
    def _loss(self, texts: list[str], labels: torch.Tensor) -> float:
        self.body.eval()
        self.head.eval()
        total = 0.0
        for start in range(0, len(texts), self.params.encode_batch_size):
            chunk = texts[start:start + self.params.encode_batch_size]
            logits = self.head(self._embed_batch(chunk))
            total += len(chunk) * classification_loss(logits, labels[start:start + len(chunk)],
                                                      self._class_weights).item()
        return total / max(1, len(texts))

    @classmethod
    def evidence_problem(cls, params) -> str | None:
        if params.lora:
            return ("select='evidence' covers full fine-tuning; with lora=true the prior is on the adapters' "
                    "product, whose curvature this does not compute (use select='cv')")
        if params.early_stopping:
            return "select='evidence' needs the MAP on all the shots; turn early_stopping off"
        return None

    def log_evidence(self, texts, y, *, progress=None) -> dict:
        p, prior = self.params, self.prior
        problem = self.evidence_problem(p)
        if problem:
            raise FewtuneError(problem)
        if prior is None:
            raise FewtuneError("the evidence is computed right after training, on the examples trained on")
        if self.head.activation != SOFTMAX:
            raise FewtuneError("select='evidence' covers single-label classification (a softmax head)")
        if not prior.strength > 0:
            raise FewtuneError("the evidence needs a proper prior: l2sp must be positive")
        self.body.eval()
        self.head.eval()
        labels = torch.as_tensor(np.asarray(y), device=self.body.device)
        with torch.no_grad():
            log_probs = torch.cat([
                torch.log_softmax(self.head(self._embed_batch(texts[s:s + p.encode_batch_size])).float(), dim=-1)
                for s in range(0, len(texts), p.encode_batch_size)])
        log_likelihood = float(log_probs[torch.arange(len(texts)), labels].sum())
        eigenvalues = ggn_eigenvalues(lambda i: self.head(self._embed_batch([texts[i]]))[0], len(texts),
                                      prior.params, progress=progress)
        # Training minimises mean cross-entropy + λ/2‖θ−θ₀‖²: the summed likelihood's prior precision is n·λ.
        return {"l2sp": prior.strength,
                **log_evidence(log_likelihood, prior.distance() ** 2, eigenvalues, prior.strength * len(texts))}

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        emb = self._encode(texts, progress=progress)
        self.head.eval()
        linear = self.head.linear
        with torch.inference_mode():
            x = torch.from_numpy(emb).to(linear.weight.device)
            logits = linear(x)
        return probabilities(logits, self.head.activation)

    def last_layer(self):
        if self.head.activation != SOFTMAX:
            return None
        linear = self.head.linear
        return linear.weight.detach().double().cpu().numpy(), linear.bias.detach().double().cpu().numpy()

    def features(self, texts, *, progress=None) -> np.ndarray:
        return self._encode(texts, progress=progress)

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder) -> None:
        self._save_body(folder)
        save_head(self.head.tensors(), folder / "head.safetensors", self.head.activation)

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Finetune:
        body = cls._load_saved_body(folder, backbone, device)
        body.eval()
        tensors, activation = load_head(folder / "head.safetensors")
        head = ClassificationHead.from_tensors(tensors)
        head.activation = activation
        if head.linear.out_features != n_classes:
            raise FewtuneError(
                f"{folder}: head.safetensors has {head.linear.out_features} classes but fewtune.json lists {n_classes}"
            )
        head.to(body.device).eval()
        return cls(params, backbone, device, body=body, head=head)
