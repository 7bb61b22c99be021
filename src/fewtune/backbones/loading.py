"""Load a resolved backbone as a sentence encoder or as a causal LM, safely and quietly.

Local folders are checked before loading (folders.check_loadable): pickle-only weights and custom
modelling code are refused unless the caller opts in. Nothing here reaches the hub except a hub id
while HF_HUB_OFFLINE is unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from ..errors import BackboneError
from .folders import FolderInfo, check_loadable, has_safetensors, has_weights, inspect_folder
from .quiet_loading import quiet_libraries
from .card_link import weak_card_link
from .catalog import CAUSAL_LM, DEFAULT_CAUSAL_LM
from .resolve import ResolvedBackbone, cached_hub_snapshot, hub_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def pick_device(device: str | None = None) -> str:
    """`device` if given (checked against what this torch has), else the best available: cuda, then mps
    (Apple), then cpu."""
    if device:
        return check_device(device)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def check_device(device: str) -> str:
    """`device` if this torch can run on it; else a BackboneError that says what it has."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise BackboneError(f"--device {device!r}: not a device; use cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackboneError(f"--device {device}: this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise BackboneError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
    mps = getattr(torch.backends, "mps", None)
    if kind == "mps" and not (mps is not None and mps.is_available()):
        raise BackboneError(f"--device {device}: Apple's MPS is not available here; use cpu")
    return device


def load_encoder(
    resolved: ResolvedBackbone,
    *,
    device: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> SentenceTransformer:
    """A SentenceTransformer for `resolved`.

    A sentence-transformers folder loads as its own pipeline (pooling, normalisation included). Any
    other Hugging Face folder, a causal LM's included, becomes transformer + mean pooling (then unit
    length, for a causal LM), the usual way to get sentence embeddings from a model that was not
    trained for them.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    allow_pickle, trust_remote_code = allow_pickle or resolved.trusted, trust_remote_code or resolved.trusted
    info = _checked_folder(resolved, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    device = pick_device(device)
    hf_kwargs = {"local_files_only": _local_files_only(resolved), "trust_remote_code": trust_remote_code}
    try:
        with quiet_libraries():
            if info is None or info.sentence_transformers:
                # For an uncached hub id (info None) sentence-transformers itself falls back to mean
                # pooling when the repository is not a sentence-transformers pipeline. weak_card_link: freed as
                # soon as it is dropped, not at Python's next full collection.
                model_kwargs = {"use_safetensors": _use_safetensors(info, allow_pickle)} if info is None else {}
                return weak_card_link(SentenceTransformer(
                    resolved.path, device=device, model_kwargs=model_kwargs, **hf_kwargs
                ))
            transformer = Transformer(
                resolved.path,
                model_kwargs={**hf_kwargs, "use_safetensors": _use_safetensors(info, allow_pickle)},
                processor_kwargs=hf_kwargs,
                config_kwargs=hf_kwargs,
            )
            if transformer.tokenizer is not None:
                _ensure_pad_token(transformer.tokenizer)  # batches of sentences need padding
                # Causal LM tokenizers often pad on the left (for generation); a decoder gives its
                # tokens positions 0..n-1 whatever the mask says, so left padding would make a
                # text's embedding depend on the longest text in its batch. Right padding does not.
                transformer.tokenizer.padding_side = "right"
            modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean")]
            if resolved.kind == CAUSAL_LM:
                # A decoder's hidden states are large (norms ~200 for Gemma 3, MiniLM's are 1): unit
                # length puts them on the scale the heads' learning rates were chosen for.
                modules.append(Normalize())
            return weak_card_link(SentenceTransformer(modules=modules, device=device))
    except (OSError, ValueError, SafetensorError) as err:
        raise _load_error(resolved, err) from err


def load_causal_lm(
    resolved: ResolvedBackbone,
    *,
    device: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a causal LM backbone, in float32, with a pad token set.

    float32 because fewtune fine-tunes these small models on CPU, where half precision is slow and
    trains unstably; a missing pad token becomes the EOS token so that batches can be padded.
    """
    if resolved.kind != CAUSAL_LM:
        raise BackboneError(
            f"backbone '{resolved.name}' ({resolved.path}) is an encoder, not a causal language model; choose "
            f"a causal LM such as {DEFAULT_CAUSAL_LM}, gemma3-270m, or a folder whose config.json names a "
            "*ForCausalLM architecture"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    allow_pickle, trust_remote_code = allow_pickle or resolved.trusted, trust_remote_code or resolved.trusted

    info = _checked_folder(resolved, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    hf_kwargs = {"local_files_only": _local_files_only(resolved), "trust_remote_code": trust_remote_code}
    try:
        with quiet_libraries():
            tokenizer = AutoTokenizer.from_pretrained(resolved.path, **hf_kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                resolved.path,
                dtype=torch.float32,
                use_safetensors=_use_safetensors(info, allow_pickle),
                **hf_kwargs,
            )
    except (OSError, ValueError, SafetensorError) as err:
        raise _load_error(resolved, err) from err
    model.to(pick_device(device))
    _ensure_pad_token(tokenizer)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _checked_folder(
    resolved: ResolvedBackbone, *, allow_pickle: bool, trust_remote_code: bool
) -> FolderInfo | None:
    """Inspect and vet the folder that will be loaded.

    For a hub id that is the cached snapshot, when its weights are cached. Otherwise (None) the
    download is not there yet to inspect, and transformers enforces the same rules while loading:
    use_safetensors=True refuses pickle weights and trust_remote_code=False refuses custom code.
    """
    if resolved.source == "hub":
        snapshot = cached_hub_snapshot(resolved.path)
        if snapshot is None or not has_weights(snapshot):
            return None
        folder = snapshot
    else:
        folder = Path(resolved.path)
    info = inspect_folder(folder)
    check_loadable(info, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    return info


def _use_safetensors(info: FolderInfo | None, allow_pickle: bool) -> bool | None:
    # True makes transformers load only safetensors; None lets it fall back to pytorch_model.bin,
    # which check_loadable has already allowed (allow_pickle) for local folders.
    if info is not None:
        return True if has_safetensors(info.folder) else None
    return None if allow_pickle else True


def _local_files_only(resolved: ResolvedBackbone) -> bool:
    # Local and cached folders never need the network; a hub id may use it unless HF_HUB_OFFLINE is set.
    return resolved.source != "hub" or hub_offline()


def _ensure_pad_token(tokenizer) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token


def _load_error(resolved: ResolvedBackbone, err: Exception) -> BackboneError:
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if resolved.source == "hub":
        where = "the local Hugging Face cache" if hub_offline() else "the Hugging Face hub"
        return BackboneError(
            f"could not load '{resolved.path}' from {where} ({detail}); the hub could not be reached or the "
            "model is not in the local cache: give a local model folder or a fewtune backbone name"
        )
    return BackboneError(
        f"cannot load backbone '{resolved.name}' from {resolved.path} ({detail}); the folder may be incomplete "
        "or damaged: copy it again, or reinstall a named backbone with fewtune models install NAME"
    )
