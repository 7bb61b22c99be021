"""Inspect a model folder before anything is loaded from it.

Two questions are answered from the files alone, cheaply: what kind of model the folder holds (for
resolving), and whether loading it would run pickle or custom code (for refusing). Pickle weights
(`pytorch_model.bin`, `*.pt`, ...) execute code when unpickled and custom modelling code runs
whatever its author wrote, so a folder downloaded from somewhere must not do either silently.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError, ModelFolderError, TrustRequired
from ..storage.model_folder import verify_files
from .catalog import CAUSAL_LM, ENCODER

# Weight files that are Python pickles. `training_args.bin` and OpenVINO's `openvino_model.bin` are
# deliberately absent: the former is never loaded as weights and the latter is not a pickle.
_PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


@dataclass(frozen=True)
class FolderInfo:
    """What a model folder holds, read from its small JSON files."""

    folder: Path
    kind: str  # ENCODER or CAUSAL_LM
    sentence_transformers: bool  # True when modules.json describes a sentence-transformers pipeline
    config: dict  # the transformer's config.json (empty for a transformer-free ST pipeline)
    module_dirs: tuple[Path, ...]  # folders whose weights get loaded: the root and ST module folders


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackboneError(f"cannot read {path}: {err}; the model folder is damaged, copy it again") from None


def kind_from_config(config: dict) -> str:
    """causal-lm when config.json's architectures name a *ForCausalLM class, else encoder."""
    architectures = config.get("architectures") or ()
    return CAUSAL_LM if any(str(a).endswith("ForCausalLM") for a in architectures) else ENCODER


def inspect_folder(folder: str | Path) -> FolderInfo:
    """Describe a local model folder, or raise BackboneError naming what is missing from it."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise BackboneError(f"model folder {folder} does not exist; give an existing folder or a backbone name")
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        return _inspect_sentence_transformers(folder, _read_json(modules_file))
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BackboneError(
            f"{folder} is not a model folder: it has no config.json (a Hugging Face model folder needs "
            "config.json and its weights; a sentence-transformers folder also has modules.json)"
        )
    config = _read_json(config_file)
    return FolderInfo(folder, kind_from_config(config), False, config, (folder,))


def _inspect_sentence_transformers(folder: Path, modules: dict | list) -> FolderInfo:
    if not isinstance(modules, list):
        raise BackboneError(f"{folder / 'modules.json'} is not a list of modules; the folder is damaged")
    module_dirs = []
    config: dict = {}
    for module in modules:
        sub = folder / str(module.get("path", "")) if isinstance(module, dict) else folder
        if sub.is_dir():
            module_dirs.append(sub)
        # The Transformer module's folder holds config.json; older pipelines keep it in 0_Transformer.
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Transformer") and not config:
            config_file = sub / "config.json"
            if not config_file.is_file():
                raise BackboneError(
                    f"{folder} is a sentence-transformers folder but its Transformer module has no "
                    f"config.json in {sub}; the folder is incomplete, copy it again"
                )
            config = _read_json(config_file)
    return FolderInfo(folder, ENCODER, True, config, tuple(dict.fromkeys(module_dirs)))


def custom_code_sources(info: FolderInfo) -> list[str]:
    """Places in the folder that ask to run code shipped with the model rather than library code."""
    found = []
    if info.config.get("auto_map"):
        found.append("auto_map in config.json")
    if info.sentence_transformers:
        modules = _read_json(info.folder / "modules.json")
        for module in modules:
            module_type = str(module.get("type", "")) if isinstance(module, dict) else ""
            if module_type and not module_type.startswith("sentence_transformers."):
                found.append(f"module type {module_type} in modules.json")
    return found


def has_safetensors(folder: Path) -> bool:
    """True when `folder` itself holds safetensors weights."""
    return any(folder.glob("*.safetensors"))


def pickle_only_dirs(info: FolderInfo) -> list[Path]:
    """Module folders whose weights exist only as pickle files."""
    risky = []
    for sub in info.module_dirs:
        has_pickle = any(any(sub.glob(pattern)) for pattern in _PICKLE_PATTERNS)
        if has_pickle and not has_safetensors(sub):
            risky.append(sub)
    return risky


def check_loadable(info: FolderInfo, *, allow_pickle: bool, trust_remote_code: bool) -> None:
    """Refuse, with ModelFolderError, a folder that would unpickle weights or run its own code."""
    if not allow_pickle:
        risky = pickle_only_dirs(info)
        if risky:
            where = ", ".join(str(p) for p in risky)
            raise TrustRequired(
                f"refusing to load pickle weights from {where}: pickle files can run arbitrary code; "
                "convert them to safetensors, or pass {trust} if you trust their source"
            )
    if not trust_remote_code:
        sources = custom_code_sources(info)
        if sources:
            raise TrustRequired(
                f"refusing to run custom code shipped in {info.folder} ({'; '.join(sources)}); "
                "pass {trust} only if you trust its author"
            )
    _verify_recorded_checksums(info.folder)
    if not info.sentence_transformers and not has_weights(info.folder):
        raise ModelFolderError(
            f"{info.folder} has config.json but no weights (model.safetensors); copy the complete folder"
        )


def has_weights(folder: Path) -> bool:
    """True when `folder` holds model weights in any format (or a sharded index of them)."""
    if has_safetensors(folder) or any(folder.glob("*.index.json")):
        return True
    return any(any(folder.glob(pattern)) for pattern in _PICKLE_PATTERNS)


# A folder fewtune wrote as a backbone (`fewtune pretrain` / `adapt`) lists its files' sha256 here.
PRETRAIN_FACTS = "fewtune_pretrain.json"


def _verify_recorded_checksums(folder: Path) -> None:
    """Refuse a folder fewtune wrote whose files no longer match the checksums taken at save time."""
    facts_file = folder / PRETRAIN_FACTS
    if facts_file.is_file():
        facts = _read_json(facts_file)
        files = facts.get("files") if isinstance(facts, dict) else None
        if isinstance(files, dict):
            verify_files(folder, files)
