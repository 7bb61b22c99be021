"""What every fine-tune of a causal LM shares (prompt-based classification, generation): the settings
and the choice between LoRA and full fine-tuning, each with its prior toward the pretrained model."""

from __future__ import annotations

import dataclasses

from ..bayes import L2SPPrior
from ..methods.base import MethodParams
from ..params import param
from .lora import LoraDeltaPrior, apply_lora


@dataclasses.dataclass
class LMTrainingParams(MethodParams):
    epochs: int = param(10, "passes over the training examples", minimum=0)
    learning_rate: float = param(1e-3, "learning rate of what is trained: the LoRA adapters, or every weight with "
                                       "lora=false (use ~2e-5 then)", above=0, renamed_from=("lr",))
    weight_decay: float = param(0.01, "AdamW weight decay: pulls LoRA adapters toward zero, the pretrained model",
                                minimum=0)
    warmup_ratio: float = param(0.1, "fraction of steps with linear learning-rate warm-up, then linear decay",
                                minimum=0, maximum=1)
    lora: bool = param(True, "train LoRA adapters (saved alone, reloaded onto the base) instead of every weight")
    lora_r: int = param(8, "LoRA rank", minimum=1)
    lora_alpha: int = param(16, "LoRA scaling α", above=0)
    l2sp: float = param(0.0, "L2-SP strength λ toward the pretrained weights (on ΔW for LoRA)", minimum=0)


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
