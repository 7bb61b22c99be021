"""What every fine-tune of a causal LM shares (prompt-based classification, generation): the settings
and the choice between LoRA and full fine-tuning, each with its prior toward the pretrained model."""

from __future__ import annotations

import dataclasses

from ..bayes import L2SPPrior
from ..method import MethodParams
from .lora import LoraDeltaPrior, apply_lora


def param(default, help_text: str):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass
class LMTrainingParams(MethodParams):
    epochs: int = param(10, "passes over the training examples")
    lr: float = param(1e-3, "learning rate (LoRA adapters; use ~2e-5 with lora=false)")
    weight_decay: float = param(0.01, "AdamW weight decay: pulls LoRA adapters toward zero, the pretrained model")
    warmup_ratio: float = param(0.1, "fraction of steps with linear learning-rate warm-up, then linear decay")
    lora: bool = param(True, "train LoRA adapters (saved alone, reloaded onto the base) instead of every weight")
    lora_r: int = param(8, "LoRA rank")
    lora_alpha: int = param(16, "LoRA scaling α")
    l2sp: float = param(0.0, "L2-SP strength λ toward the pretrained weights (on ΔW for LoRA)")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        # epochs, lr, weight_decay, l2sp, lora_r and lora_alpha: the shared ranges (params.check_ranges).
        if not 0 <= self.warmup_ratio <= 1:
            problems.append(f"warmup_ratio must be between 0 and 1, got {self.warmup_ratio}")


def prepare_for_training(model, p: LMTrainingParams):
    """(model, the parameters to train, the prior): LoRA adapters with L2-SP on ΔW, or every weight but
    the token embeddings with L2-SP toward the pretrained ones."""
    if p.lora:
        model = apply_lora(model, r=p.lora_r, alpha=p.lora_alpha)
        return model, [t for t in model.parameters() if t.requires_grad], LoraDeltaPrior(model, p.l2sp)
    params = []
    for name, t in model.named_parameters():
        if "embed_tokens" in name:
            t.requires_grad_(False)  # tied with the output layer in small LMs: keep the vocabulary fixed
        elif t.requires_grad:
            params.append(t)
    return model, params, L2SPPrior(params, p.l2sp)
