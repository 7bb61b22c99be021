"""The transformers model inside a sentence encoder, for methods that train it end to end (finetune) and
for code that reads its weights (pretrain, distill): finding it and its layers, re-initialising the top
ones; and the dropout + linear head such training puts on the pooled embedding."""

from __future__ import annotations

import torch

from ..errors import FewtuneError
from .heads import SOFTMAX


class ClassificationHead(torch.nn.Module):
    """Dropout then a linear layer: logits from a sentence embedding."""

    def __init__(self, dim: int, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.linear = torch.nn.Linear(dim, n_classes)
        # BERT's classifier initialisation: small weights, zero bias, so training starts near uniform.
        torch.nn.init.normal_(self.linear.weight, std=0.02)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))

    activation = SOFTMAX  # SIGMOID for a multi-label head; set by Finetune.fit and on loading

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"head.weight": self.linear.weight.detach().cpu().contiguous(),
                "head.bias": self.linear.bias.detach().cpu().contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ClassificationHead:
        weight, bias = tensors["head.weight"], tensors["head.bias"]
        head = cls(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.linear.weight.copy_(weight)
            head.linear.bias.copy_(bias)
        return head


# -- helpers on the underlying transformers model ------------------------------------------------

def hf_model(body) -> torch.nn.Module:
    """The transformers model inside a SentenceTransformer (its first module's `auto_model`)."""
    for module in body.children():
        model = getattr(module, "auto_model", None)
        if model is not None:
            return model
    raise FewtuneError("this backbone has no transformer module to fine-tune")


def transformer_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of transformer blocks, found generically.

    BERT and MPNet keep it at `encoder.layer`, Llama-likes at `layers` (or `model.layers`), GPT-2 at
    `h`: rather than listing names, take the shallowest ModuleList as long as the config's
    `num_hidden_layers`, falling back to the longest ModuleList.
    """
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    n_layers = getattr(config, "num_hidden_layers", None)
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    matching = [(name.count("."), name, m) for name, m in lists if len(m) == n_layers]
    if matching:
        return min(matching, key=lambda t: t[:2])[2]
    if lists:
        return max(lists, key=lambda t: (len(t[1]), -t[0].count(".")))[1]
    raise FewtuneError(f"cannot find the transformer layers of {type(model).__name__} to re-initialise")


def reinit_top_layers(model: torch.nn.Module, n: int) -> list[torch.nn.Parameter]:
    """Re-initialise the top `n` transformer layers with the model's own `_init_weights`; return their parameters.

    transformers marks loaded weights `_is_hf_initialized`, and its init functions skip marked
    tensors, so the marks are cleared first: otherwise `_init_weights` silently does nothing.
    """
    if n <= 0:
        return []
    layers = transformer_layers(model)
    if n > len(layers):
        raise FewtuneError(f"reinit_layers={n} but the backbone has only {len(layers)} transformer layers")
    init_weights = getattr(model, "_init_weights", None)
    if init_weights is None:
        raise FewtuneError(f"{type(model).__name__} has no _init_weights; reinit_layers needs a transformers model")
    params = []
    with torch.no_grad():
        for layer in list(layers)[-n:]:
            for tensor in list(layer.parameters()) + list(layer.buffers()):
                if hasattr(tensor, "_is_hf_initialized"):
                    tensor._is_hf_initialized = False
            for module in layer.modules():
                init_weights(module)
            params.extend(layer.parameters())
    return params
