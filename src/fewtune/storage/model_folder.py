"""The on-disk format of a trained model: a folder of safetensors and JSON, never pickle.

    fewtune.json        what was trained: method, parameters, classes, backbone, versions, checksums
    README.md           a model card a person can read
    head.safetensors    (and a body/ folder, or whatever the method writes)

Folders are written atomically (see atomic.py); every file carries a sha256 in fewtune.json and the
facts themselves a facts_sha256, checked on load, so a truncated, corrupt or hand-edited folder is
reported instead of loaded (what that does and does not catch, and signing: integrity.py).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_folder
from .integrity import check_seal, seal
from ..errors import ModelFolderError, TrustRequired

FORMAT = "fewtune-model"
FORMAT_VERSION = 1
CONFIG_NAME = "fewtune.json"
CARD_NAME = "README.md"
SPEC_NAME = "spec.yaml"  # the settings of the `fewtune train` run that made the model (train --config reads it)
# Formats that torch.load would unpickle: arbitrary code runs when they are loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of Python and the libraries a saved model depends on, plus the `extra` distributions
    (those installed)."""
    versions = {"python": platform.python_version()}
    for dist in ("fewtune", "torch", "transformers", "sentence-transformers", "scikit-learn", "safetensors", "peft",
                 *extra):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model_folder(
    path: str | Path,
    config: dict[str, Any],
    write_payload: Callable[[Path], None],
    render_card: Callable[[dict[str, Any]], str],
    *,
    overwrite: bool,
) -> Path:
    """Write `config`, its model card and whatever `write_payload(tmp)` writes, then move it into place atomically."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ModelFolderError(f"{path} already exists; choose another folder or pass overwrite")
        if not path.is_dir() or (any(path.iterdir()) and not (path / CONFIG_NAME).is_file()):
            # Never replace a folder that is not a fewtune model: it may be the user's data.
            raise ModelFolderError(f"{path} exists and is not a fewtune model folder; refusing to replace it")
    with atomic_folder(path, overwrite=True) as tmp:
        write_payload(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **config,
            "versions": library_versions(),
            "files": {p.relative_to(tmp).as_posix(): sha256(p) for p in files},
        }
        config = seal(config)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(render_card(config), encoding="utf-8")
    return path


def read_model_folder(path: str | Path, *, allow_pickle: bool = False, verify: bool = True) -> dict[str, Any]:
    """Read and check fewtune.json; refuse pickle files and files that fail their checksum."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder")
    config_path = path / CONFIG_NAME
    config = read_format_file(path, CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="fewtune model folder",
                              content="fewtune model config", written="written")
    if not allow_pickle:
        refuse_pickles(path)
    files = config.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFolderError(f"{config_path}: no file list; the folder is incomplete")
    verify_files(path, files, checksums=verify)
    return config


def refuse_pickles(path: Path) -> None:
    """TrustRequired when the folder holds any file torch.load would unpickle."""
    pickles = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise TrustRequired(f"{path} holds pickle files ({', '.join(pickles)}), which can run code when loaded; "
                            "refusing (pass {trust} only if you trust its author)")


def read_format_file(path: Path, name: str, fmt: str, version: int, *, kind: str, content: str,
                     written: str) -> dict[str, Any]:
    """The JSON file `name` that marks `path` as a folder of format `fmt`, checked: present, valid JSON,
    the right format, and a format version this fewtune can read (model folders and ONNX exports)."""
    file = path / name
    if not file.is_file():
        raise ModelFolderError(f"{path}: not a {kind} (no {name})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{file}: corrupt ({e})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ModelFolderError(f"{file}: not a {content}")
    if data.get("format_version", 0) > version:
        raise ModelFolderError(f"{path} was {written} by a newer fewtune (format {data['format_version']}); "
                               "upgrade fewtune to load it")
    check_seal(data, file)
    return data


def verify_files(path: Path, files: dict[str, str], *, checksums: bool = True) -> None:
    """Every file recorded at save time is there and (checksums) has the recorded sha256."""
    # Every file's presence first: a missing file is the clearer message when both are wrong.
    for name in files:
        if not (path / name).is_file():
            raise ModelFolderError(f"{path}: missing {name}; the folder is incomplete")
    for name, digest in files.items():
        if checksums and sha256(path / name) != digest:
            raise ModelFolderError(f"{path / name}: checksum mismatch; the file is truncated or was modified")
