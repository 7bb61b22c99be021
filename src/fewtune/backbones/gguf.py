"""Turn a GGUF file into a plain fp32 safetensors folder that loads in well under a second.

transformers reads GGUF by dequantizing every tensor to fp32, which takes tens of seconds and
leaves a GGUF quantizer attached to the model: `save_pretrained` and `Trainer` both refuse such a
model. Detaching the quantizer makes it an ordinary fp32 model, which is saved once into the cache
so no later run pays for the GGUF load again.
"""

import contextlib
import gc
import importlib.util
import io
import json
from pathlib import Path

from ..storage.atomic import atomic_folder
from ..errors import BackboneError
from .quiet_loading import quiet_libraries

PROVENANCE_FILE = "fewtune_backbone.json"


def require_gguf(name: str) -> None:
    """Fail early, before any download or conversion, when the gguf reader is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise BackboneError(
            f"backbone '{name}' is converted from GGUF, which needs the gguf package; run: pip install gguf"
        )


def strip_quantizer(model) -> None:
    """Detach the GGUF quantizer that transformers leaves on a dequantized model.

    The weights are already plain fp32 tensors; only these markers make transformers treat the
    model as quantized (and so refuse to save or train it).
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(gguf_path: Path, target: Path, *, name: str, origin: dict | None = None) -> Path:
    """Dequantize `gguf_path` into a safetensors model + tokenizer folder at `target`, atomically.

    `name` is the backbone name for error messages; `origin` (package, version, ...) is recorded in
    fewtune_backbone.json beside the weights, so a cached folder says where it came from.
    """
    require_gguf(name)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file_name = str(gguf_path.parent), gguf_path.name
    try:
        # The dequantization progress bar is a bare tqdm that transformers' switch does not reach;
        # it would tear through fewtune's own spinner, so its stderr output is dropped.
        with quiet_libraries(), contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file_name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=file_name, dtype=torch.float32, local_files_only=True
            )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackboneError(
            f"cannot convert backbone '{name}' from {gguf_path}: {first_line}; "
            f"reinstall it: fewtune models install {name}"
        ) from err

    strip_quantizer(model)
    provenance = {"backbone": name, "converted_from": file_name, "dtype": "float32", **(origin or {})}
    with quiet_libraries(), atomic_folder(target, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    # The fp32 model is 0.5-1 GB; free it before the caller loads the saved copy.
    del model, tokenizer
    gc.collect()
    return target
