"""`zero-shot`: the pretrained causal LM's label-word scores after a prompt, calibrated on the shots; no
training. The model itself is fewtune.training.label_word_method's; icl and prompt build on it."""

from __future__ import annotations

from ..method import register_method
from ..training.label_word_method import LabelWordMethod, ZeroShotParams


@register_method
class ZeroShot(LabelWordMethod):
    name = "zero-shot"
    description = "a causal LM scores each class's label words after a prompt; no training (the baseline)"
    params_class = ZeroShotParams
