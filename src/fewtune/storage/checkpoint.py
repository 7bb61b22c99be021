"""Checkpoints of a training run in safetensors and JSON, never pickle, written atomically.
Used by `fewtune pretrain` / `adapt` (every `save_every` steps) and by LM fine-tuning (`train --task
generate/lm`, every epoch, the trainable parameters only).

    checkpoint/model.safetensors      the model state (gathered from every process)
    checkpoint/optimizer.safetensors  AdamW's moments and step counts, one tensor per (parameter, field)
    checkpoint/state.json             the step, the optimizer's param groups, what the run has measured

torch.save of an optimizer (and accelerate's save_state, which uses it) writes a pickle, which runs
code when loaded. torch.distributed.checkpoint's state-dict functions give the same full state dict
whether the model is plain, wrapped in DDP or sharded by FSDP, keyed by parameter names, which is
what makes flat safetensors possible here.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .atomic import atomic_folder
from ..errors import FewtuneError

_SEP = "::"  # between a parameter's name and an optimizer field in optimizer.safetensors


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_state(model, optimizer=None, *, trainable_only: bool = False) -> tuple[dict, dict | None]:
    """Full (model, optimizer) state dicts on the main process; every process must call this (under
    FSDP gathering the shards is collective), and the others get empty dicts. trainable_only leaves
    out frozen parameters (a LoRA run's checkpoint is its adapters, not the whole LM again)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model_state = get_model_state_dict(model, options=_options(cpu_offload=True, ignore_frozen_params=trainable_only))
    optim_state = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True)) if optimizer else None
    return model_state, optim_state


def save_checkpoint(folder: Path, model, optimizer, state: dict, *, is_main: bool,
                    trainable_only: bool = False) -> None:
    from safetensors.torch import save_file

    model_state, optim_state = full_state(model, optimizer, trainable_only=trainable_only)
    if not is_main:
        return
    tensors, groups = _flatten_optimizer(optim_state)
    with atomic_folder(folder, overwrite=True) as tmp:
        save_file(_unshared(model_state), str(tmp / "model.safetensors"))
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=2) + "\n",
                                        encoding="utf-8")


def load_checkpoint(folder: Path, model, optimizer, *, trainable_only: bool = False) -> dict:
    """Load a checkpoint into an already prepared model and optimizer (every process reads the files
    itself) and return its state.json."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        model_state = load_file(str(folder / "model.safetensors"))
        optim_tensors = load_file(str(folder / "optimizer.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise FewtuneError(f"{folder}: cannot read the checkpoint ({e}); delete it to start over") from None
    # A trainable-only checkpoint holds no frozen weights: those stay as loaded, so not strict then.
    set_model_state_dict(model, model_state, options=_options(strict=not trainable_only))
    set_optimizer_state_dict(model, optimizer, _unflatten_optimizer(optim_tensors, state.pop("param_groups")),
                             options=_options())
    return state


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory (tied embeddings); each gets its own copy.
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        ptr = tensor.data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor.contiguous()
        seen.add(ptr)
    return out


def _flatten_optimizer(optim_state: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors = {}
    for name, fields in optim_state["state"].items():
        for field, value in fields.items():
            tensors[f"{name}{_SEP}{field}"] = torch.as_tensor(value).contiguous()
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in optim_state["param_groups"]]
    return tensors, groups


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict[str, dict] = {}
    for key, tensor in tensors.items():
        name, _, field = key.rpartition(_SEP)
        state.setdefault(name, {})[field] = tensor
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in groups]
    return {"state": state, "param_groups": groups}
