"""Model sizes for pretraining from scratch: small Llama-style causal LMs, named by what they fit on.

Every preset ties the input and output embeddings (as SmolLM2 does): at these sizes the embedding
matrix is a large share of the parameters, and tying it halves that share without hurting quality.
`tiny` and `small` train on a laptop CPU in minutes; `base` and `135m` (SmolLM2-135M's shape) want a
GPU. Any field can be overridden (`-p hidden_size=64`).
"""

from __future__ import annotations

import dataclasses

from ..errors import FewtuneError


@dataclasses.dataclass(frozen=True)
class Preset:
    vocab_size: int
    hidden_size: int
    intermediate_size: int  # the SwiGLU MLP's width, about 8/3 × hidden_size as in Llama
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # fewer than the heads: grouped-query attention
    context: int  # tokens per training sequence (block_size) and max_position_embeddings
    description: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(4096, 128, 384, 4, 4, 4, 256, "about 1.3M parameters; thousands of tokens/s on 2 CPU cores"),
    "small": Preset(8192, 256, 768, 6, 8, 4, 512, "about 7M parameters; CPU in tens of minutes, GPU in seconds"),
    "base": Preset(16384, 512, 1536, 8, 8, 4, 1024, "about 34M parameters; a GPU"),
    "135m": Preset(49152, 576, 1536, 30, 9, 3, 2048, "SmolLM2-135M's shape, about 135M parameters; GPUs (FSDP config)"),
}
SHAPE_FIELDS = tuple(f.name for f in dataclasses.fields(Preset) if f.name not in ("context", "description"))


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise FewtuneError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def check_shape(shape: dict) -> None:
    """FewtuneError for a shape no Llama can have, before any data is read."""
    hidden, heads, kv_heads = shape["hidden_size"], shape["num_attention_heads"], shape["num_key_value_heads"]
    if hidden % heads:
        raise FewtuneError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    if heads % kv_heads:
        raise FewtuneError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    if (hidden // heads) % 2:
        raise FewtuneError(f"hidden_size / num_attention_heads = {hidden // heads} must be even (rotary embeddings "
                           "rotate pairs of dimensions)")


def llama_config(shape: dict, *, vocab_size: int, context: int, eos_token_id: int):
    """A LlamaConfig for `shape` (a preset's fields, overrides applied) and a tokenizer's vocabulary."""
    from transformers import LlamaConfig

    check_shape(shape)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_hidden_layers"],
        num_attention_heads=shape["num_attention_heads"],
        num_key_value_heads=shape["num_key_value_heads"],
        max_position_embeddings=context,
        tie_word_embeddings=True,
        # Documents are separated by EOS and there is no BOS: windows start anywhere in the stream.
        eos_token_id=eos_token_id,
        bos_token_id=None,
        pad_token_id=None,
    )


def count_parameters(config) -> int:
    """Parameters of a model with `config`, built on the meta device (no memory, no time)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # parameters() lists a tied matrix once
