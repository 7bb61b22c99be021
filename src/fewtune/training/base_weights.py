"""A saved encoder keeps only the tensors training changed; the rest are read from its backbone's folder.

me5-small's word-embedding table is 96M of its 118M parameters (367 of 470 MB), and no encoder method
trains it by default (setfit and finetune freeze it, LoRA leaves it, linear-probe trains nothing): a
copy in every saved model would be 367 MB of the pretrained weights again. So after the body is
written, every tensor bitwise equal to the catalog backbone's is dropped from body/model.safetensors
and listed in body/fewtune_base.json with the backbone's name and its weights' sha256; loading fills
them back from the backbone (installed or cached), and refuses, naming the command that rebuilds it,
when that backbone is missing or its weights changed. Local folders and hub ids are never referenced:
fewtune cannot promise they will be there, unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
from pathlib import Path

from ..backbones.catalog import BACKBONES
from ..backbones.gguf import PROVENANCE_FILE
from ..backbones.resolve import resolve_backbone
from ..errors import FewtuneError, ModelFolderError
from ..storage.model_folder import sha256
from .transformer_layers import hf_model

BASE_FILE = "fewtune_base.json"
WEIGHTS = "model.safetensors"
# Set for one save (FewShotClassifier.save(standalone=True)): the methods' save() have no such argument.
_STANDALONE = contextvars.ContextVar("fewtune_standalone_bodies", default=False)


@contextlib.contextmanager
def standalone_bodies(on: bool = True):
    """Within it, drop_base_tensors keeps every tensor: the saved folder needs no backbone to load."""
    token = _STANDALONE.set(on)
    try:
        yield
    finally:
        _STANDALONE.reset(token)


def drop_base_tensors(body_folder: Path, backbone_name: str) -> dict | None:
    """Rewrite body_folder/model.safetensors without the tensors equal to `backbone_name`'s; what was dropped."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if _STANDALONE.get():
        return None
    base = _base_folder(backbone_name) if str(backbone_name).lower() in BACKBONES else None
    weights = body_folder / WEIGHTS
    if base is None or not weights.is_file() or not (base / WEIGHTS).is_file():
        return None
    kept, shared = {}, []
    with safe_open(str(weights), "pt") as mine, safe_open(str(base / WEIGHTS), "pt") as theirs:
        metadata = mine.metadata()
        base_names = set(theirs.keys())
        for name in mine.keys():
            tensor = mine.get_tensor(name)
            if name in base_names:
                other = theirs.get_tensor(name)
                if other.dtype == tensor.dtype and other.shape == tensor.shape and torch.equal(other, tensor):
                    shared.append(name)
                    continue
            kept[name] = tensor
    if not shared:
        return None
    save_file(kept, str(weights), metadata=metadata)
    facts = {"backbone": str(backbone_name).lower(), "weights_sha256": weights_sha256(base), "tensors": sorted(shared)}
    (body_folder / BASE_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return facts


def fill_base_tensors(body, body_folder: Path) -> None:
    """Copy the tensors body_folder/fewtune_base.json lists from the backbone into `body` (loaded without them)."""
    from safetensors import safe_open

    base = base_tensors(body_folder)
    if base is None:
        return
    base_file, tensors = base
    facts_file = body_folder / BASE_FILE
    state = dict(hf_model(body).named_parameters())
    state.update(hf_model(body).named_buffers())
    with safe_open(str(base_file), "pt") as theirs:
        for tensor_name in tensors:
            if tensor_name not in state:
                raise ModelFolderError(f"{facts_file}: lists tensor {tensor_name}, which the encoder does not have")
            target = state[tensor_name]
            with _no_grad():
                target.copy_(theirs.get_tensor(tensor_name).to(target.device, target.dtype))


def base_tensors(body_folder: Path) -> tuple[Path, list[str]] | None:
    """(the backbone's weights file, the tensors to read from it) that body_folder/fewtune_base.json lists, once
    that backbone is checked to be the one the model was trained on; None for a folder that lists none."""
    facts_file = body_folder / BASE_FILE
    if not facts_file.is_file():
        return None
    try:
        facts = json.loads(facts_file.read_text(encoding="utf-8"))
        name, expected, tensors = facts["backbone"], facts["weights_sha256"], list(facts["tensors"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelFolderError(f"{facts_file}: unreadable ({e}); the model folder is damaged") from None
    rebuild = f"fewtune models install {name}"
    try:
        base = _base_folder(name)
    except FewtuneError as e:
        raise FewtuneError(f"{body_folder.parent}: this model keeps only its trained weights and reads the rest from "
                           f"backbone '{name}', which cannot be loaded here ({e}); rebuild it: {rebuild}") from None
    if weights_sha256(base) != expected:
        raise FewtuneError(f"{body_folder.parent}: backbone '{name}' at {base} is not the one this model was trained on "
                           f"(its weights' sha256 is {weights_sha256(base)[:12]}…, the model recorded {expected[:12]}…); "
                           f"reinstall the version it was trained with, then: {rebuild}")
    return base / WEIGHTS, tensors


@contextlib.contextmanager
def skipped_init(body_folder: Path):
    """Load `body_folder` without first drawing random values for the tensors the backbone will supply.

    transformers initialises every tensor missing from a checkpoint (96M random numbers here, 2.4 of a
    4.6 s load) in `_initialize_missing_keys`, skipping those marked `_is_hf_initialized`: the listed
    tensors are marked first, so everything else (its non-persistent buffers too) is set up as usual.
    """
    from transformers.modeling_utils import PreTrainedModel

    original = getattr(PreTrainedModel, "_initialize_missing_keys", None)
    listed = _listed_tensors(body_folder)
    if original is None or not listed:
        yield
        return

    def initialize(model, *args, **kwargs):
        for name in listed:
            try:
                model.get_parameter(name)._is_hf_initialized = True
            except AttributeError:
                pass  # not a parameter of this model: left to transformers, and filled later or refused
        return original(model, *args, **kwargs)

    PreTrainedModel._initialize_missing_keys = initialize
    try:
        yield
    finally:
        PreTrainedModel._initialize_missing_keys = original


def _listed_tensors(body_folder: Path) -> list[str]:
    try:
        return list(json.loads((body_folder / BASE_FILE).read_text(encoding="utf-8"))["tensors"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _base_folder(name: str) -> Path:
    return Path(resolve_backbone(name).path)


def weights_sha256(folder: Path) -> str:
    """sha256 of folder/model.safetensors: the one recorded at conversion when fewtune converted it."""
    try:
        recorded = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8")).get(f"{WEIGHTS}_sha256")
    except (OSError, ValueError):
        recorded = None
    file = folder / WEIGHTS
    stat = file.stat()
    return recorded or _file_sha256(str(file), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size and time: a changed file is hashed again
    return sha256(Path(path))


def _no_grad():
    import torch

    return torch.no_grad()
