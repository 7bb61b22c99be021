"""LoRA adapters (peft) for any transformers model, and the L2-SP prior expressed on their update."""

from __future__ import annotations

import torch

from ..backbones.catalog import adapter_base
from ..backbones.quiet_loading import quiet_libraries
from ..errors import FewtuneError


def lora_target_modules(model: torch.nn.Module) -> list[str] | str:
    """peft's default LoRA targets for the model type; otherwise every nn.Linear inside attention blocks."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults
    except ImportError:  # pragma: no cover - older/newer peft layouts
        defaults = {}
    if model_type in defaults:
        return list(defaults[model_type])
    names = sorted({
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ("attention" in name or "attn" in name)
    })
    return names or "all-linear"


def apply_lora(model: torch.nn.Module, *, r: int, alpha: int):
    """Inject LoRA adapters into `model` in place; returns the PeftModel wrapper (for merging later)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise FewtuneError("lora=true needs the peft package; run: pip install peft") from None
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=lora_target_modules(model))
    with quiet_libraries():
        return get_peft_model(model, config)


class LoraDeltaPrior:
    """L2-SP on the weights LoRA changes: θ−θ₀ there is the adapter's update ΔW = (α/r)·B·A.

    Same interface as L2SPPrior; penalty λ/2·Σ‖ΔW‖², distance √Σ‖ΔW‖² — the distance of the merged
    encoder from the pretrained one, comparable with full fine-tuning's.
    """

    def __init__(self, model: torch.nn.Module, strength: float, adapter: str = "default"):
        from peft.tuners.lora import LoraLayer

        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer) and adapter in m.lora_A]
        self.adapter = adapter
        self.strength = float(strength)

    def _squared(self) -> torch.Tensor:
        return sum((m.get_delta_weight(self.adapter) ** 2).sum() for m in self.layers)

    def penalty(self) -> torch.Tensor | float:
        return 0.5 * self.strength * self._squared() if self.strength and self.layers else 0.0

    @torch.no_grad()
    def distance(self) -> float:
        return float(torch.sqrt(self._squared())) if self.layers else 0.0


# PEFT's own adapter files, so `peft.PeftModel.from_pretrained(base, folder)` loads a fewtune folder;
# folders saved before that hold LEGACY_WEIGHTS (same tensors, same names) and still load.
ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"
LEGACY_WEIGHTS = "adapter.safetensors"


def save_adapter(model, folder, *, backbone: str | None = None) -> None:
    """The LoRA weights alone (a few hundred kB) in PEFT's format (`save_pretrained`). backbone: the name the
    model was trained on; its catalog entry says what adapter_config.json names as the base
    (catalog.adapter_base: the hub id of an exact copy, `fewtune:NAME (…quantization, package…)` for a
    backbone converted from a quantized package) instead of this machine's cache path."""
    config = model.peft_config["default"]
    base = adapter_base(backbone)
    if base:
        config.base_model_name_or_path = base
    with quiet_libraries():
        # save_embedding_layers=False: the adapters never target embeddings, and PEFT's "auto" would look
        # base_model_name_or_path up on the hub to compare vocabulary sizes (a network call at save time).
        model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)
    # PEFT also writes a README.md of its own; the folder's card is fewtune's (written after the payload).
    (folder / "README.md").unlink(missing_ok=True)


def load_adapter(model, folder, *, r: int, alpha: int, base_name: str):
    """`model` with the saved adapter applied; refuses an adapter made for another base."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = folder / ADAPTER_WEIGHTS if (folder / ADAPTER_WEIGHTS).is_file() else folder / LEGACY_WEIGHTS
    model = apply_lora(model, r=r, alpha=alpha)
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise FewtuneError(f"{folder}: {weights.name} does not fit the base backbone '{base_name}' "
                           f"({len(result.unexpected_keys)} unexpected tensors)")
    return model
