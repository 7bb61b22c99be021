"""Any saved classifier from its folder: a fewtune model (PyTorch), an ONNX export, a static-embedding model.

One place decides which runtime a folder needs, for `predict`, `evaluate`, `serve` and `distill`; the
torch-free runtimes (ONNX, static) never import torch. Each returns `predict_proba`, `predict`,
`classes_`, `multi_label_`, `text_pairs_`, `train_info_` and `set_class_prior`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import FewtuneError, ModelFolderError
from .export.runtime import MANIFEST_NAME, OnnxClassifier, is_exported
from .export.static import MANIFEST_NAME as STATIC_MANIFEST
from .export.static import StaticClassifier, is_static
from .storage.model_folder import CONFIG_NAME, FORMAT, FORMAT_VERSION, read_format_file, refuse_pickles


def runtime_of(path: str | Path) -> str:
    """"onnx", "static" or "pytorch" (a fewtune model folder, or something that is not a model at all)."""
    return "onnx" if is_exported(path) else "static" if is_static(path) else "pytorch"


def check_classifier_folder(path: str | Path, *, trust: bool = False) -> str:
    """What can be known of `path` without loading it: a saved classifier's folder (a fewtune model, an ONNX
    export or a static student), and no pickle files unless `trust`. Returns its runtime (as runtime_of).
    Cheap (a JSON file and a listing), so commands call it before the slow load."""
    runtime = runtime_of(path)
    if runtime != "pytorch":
        return runtime
    path = Path(path)
    if not path.exists():
        raise ModelFolderError(f"{path}: no such model folder")
    if not path.is_dir():
        raise ModelFolderError(f"{path} is a file, not a model folder; give the folder `fewtune train -o` wrote")
    if not (path / CONFIG_NAME).is_file():
        raise ModelFolderError(f"{path}: not a fewtune model folder (no {CONFIG_NAME}); give a folder written by "
                               "`fewtune train`, `fewtune export` or `fewtune distill`")
    # Read without checksums, only to say what the folder is; the loader verifies it.
    config = read_format_file(path, CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="fewtune model folder",
                              content="fewtune model config", written="written")
    if "task" in config or "method" not in config:
        what = f"a {config['task']} model (FewShotGenerator)" if "task" in config else "not a classifier"
        raise FewtuneError(f"{path} is {what}: it gives no class probabilities; give a classifier's folder")
    if not trust:
        refuse_pickles(path)
    return runtime


def saved_facts(path: str | Path) -> dict:
    """The folder's own description (fewtune.json, or an export's or static student's manifest), read without
    checksums, after check_classifier_folder: what a command needs to know before the load (multi-label?)."""
    name = {"onnx": MANIFEST_NAME, "static": STATIC_MANIFEST, "pytorch": CONFIG_NAME}[runtime_of(path)]
    try:
        facts = json.loads((Path(path) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the loader says what is wrong with it
    return facts if isinstance(facts, dict) else {}


def load_classifier(path: str | Path, *, device: str | None = None, trust: bool = False, threads: int | None = None,
                    show_progress: bool = False):
    """The classifier in `path`; a clear error for a folder that holds a generator or recommender."""
    runtime = check_classifier_folder(path, trust=trust)
    if runtime == "onnx":
        return OnnxClassifier.load(path, threads=threads, show_progress=show_progress)
    if runtime == "static":
        return StaticClassifier.load(path)
    from .classifier import FewShotClassifier  # why: torch; an ONNX or static folder loads without importing it

    return FewShotClassifier.load(path, device=device, trust=trust, show_progress=show_progress)
