"""Pretraining from scratch and continued pretraining, in one process or data-parallel with Accelerate.

    from fewtune.pretrain import pretrain, adapt
    pretrain(["bbc", "chitchat"], "tiny-lm", preset="tiny")    # a backbone: --backbone tiny-lm
    adapt("smollm2-135m", ["imdb"], "smollm2-imdb")            # domain-adaptive pretraining

corpus.py (streaming readers, built-in corpora) · tokenizer.py (byte-level BPE) · tokens.py (the
token stream on disk, training windows) · presets.py (model sizes) · params.py (settings) ·
loop.py (the training loop; checkpoints: fewtune.storage.checkpoint) · encoders.py (SimCSE,
masked LM) · api.py (pretrain, adapt); the two commands are in fewtune/cli/pretrain.py.
"""

__all__ = ["PRESETS", "AdaptParams", "PretrainParams", "adapt", "builtin_corpora", "open_corpora", "pretrain",
           "read_texts"]

_HOMES = {"adapt": "api", "pretrain": "api", "AdaptParams": "params", "PretrainParams": "params",
          "builtin_corpora": "corpus", "open_corpora": "corpus", "read_texts": "corpus", "PRESETS": "presets"}


def __getattr__(name: str):
    # Imported on first use, as fewtune's own top level does: the CLI registers these commands
    # without paying for the data readers, torch or transformers.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'fewtune.pretrain' has no attribute {name!r}")
