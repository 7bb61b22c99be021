"""The settings of pretraining and adaptation runs: dataclasses with help, checked on creation (torch-free,
so `fewtune pretrain --help` answers at once)."""

from __future__ import annotations

import dataclasses

from ..params import Params, param
from .presets import SHAPE_FIELDS


@dataclasses.dataclass
class LoopParams(Params):
    steps: int = param(1000, "optimizer steps (0 = save the model as initialised)")
    batch_size: int = param(16, "sequences per step on each process")
    block_size: int = param(0, "tokens per sequence (0 = the preset's context, or 256 for a backbone)")
    learning_rate: float = param(2e-3, "peak learning rate", renamed_from=("lr",))
    min_lr_ratio: float = param(0.1, "the cosine decay ends at learning_rate × this")
    warmup_ratio: float = param(0.05, "share of the steps with linear warm-up")
    weight_decay: float = param(0.1, "AdamW weight decay on the weight matrices (not on norms)")
    grad_clip: float = param(1.0, "clip the gradient norm to this (0 = off)")
    eval_every: int = param(0, "held-out perplexity every N steps, besides at the start and the end (0 = never)")
    eval_tokens: int = param(32768, "held-out tokens kept for perplexity (at most)")
    save_every: int = param(100, "write a checkpoint every N steps, for --resume (0 = never)")
    heldout: float = param(0.01, "share of a corpus file's texts held out (a hash of the text decides); "
                                 "built-in corpora hold out their fixed test split")
    seed: int = param(0, "seed of the initial weights and of the windows drawn")

    def check(self, problems: list[str]) -> None:
        for name in ("steps", "block_size", "eval_every", "save_every", "seed"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("batch_size", "eval_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("min_lr_ratio", "warmup_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.learning_rate < 0:
            problems.append(f"learning_rate must not be negative, got {self.learning_rate}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            problems.append("weight_decay and grad_clip must not be negative")
        if not 0 <= self.heldout < 1:
            problems.append(f"heldout must be in [0, 1), got {self.heldout}")

    @classmethod
    def method_name(cls) -> str:
        return "pretrain"



@dataclasses.dataclass
class PretrainParams(LoopParams):
    vocab_size: int = param(0, "BPE vocabulary size (0 = the preset's; ignored with --tokenizer)")
    hidden_size: int = param(0, "model width (0 = the preset's)")
    intermediate_size: int = param(0, "MLP width (0 = the preset's)")
    num_hidden_layers: int = param(0, "layers (0 = the preset's)")
    num_attention_heads: int = param(0, "attention heads (0 = the preset's)")
    num_key_value_heads: int = param(0, "key/value heads, fewer for grouped-query attention (0 = the preset's)")
    tokenizer_texts: int = param(100_000, "texts read to learn the BPE vocabulary (the first ones)")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        for name in (*SHAPE_FIELDS, "tokenizer_texts"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)}")


ADAPT_LR = {"clm": 1e-4, "simcse": 3e-5, "mlm": 5e-5}


@dataclasses.dataclass
class AdaptParams(LoopParams):
    steps: int = param(200, "optimizer steps")
    batch_size: int = param(8, "sequences (texts, for an encoder) per step on each process")
    block_size: int = param(0, "tokens per sequence, or per text for an encoder (0 = 256 causal LM, 64 encoder)")
    learning_rate: float = param(0.0, "peak learning rate (0 = the objective's: 1e-4 clm, 3e-5 simcse, 5e-5 mlm)",
                                 renamed_from=("lr",))
    weight_decay: float = param(0.01, "AdamW weight decay on the weight matrices")
    temperature: float = param(0.05, "simcse: softmax temperature of the cosine similarities")
    mlm_probability: float = param(0.15, "mlm: share of tokens masked")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if not self.temperature > 0:
            problems.append(f"temperature must be positive, got {self.temperature}")
        if not 0 < self.mlm_probability < 1:
            problems.append(f"mlm_probability must be between 0 and 1, got {self.mlm_probability}")

    @classmethod
    def method_name(cls) -> str:
        return "adapt"
