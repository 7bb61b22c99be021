"""Any saved classifier from its folder: a fewtune model (PyTorch), an ONNX export, a static-embedding model.

One place decides which runtime a folder needs, for `predict`, `evaluate`, `serve` and `distill`; the
torch-free runtimes (ONNX, static) never import torch. Each returns `predict_proba`, `predict`,
`classes_`, `multi_label_`, `text_pairs_`, `train_info_` and `set_class_prior`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FewtuneError


def runtime_of(path: str | Path) -> str:
    """"onnx", "static" or "pytorch" (a fewtune model folder, or something that is not a model at all)."""
    from ..export import is_exported
    from ..export.static import is_static

    return "onnx" if is_exported(path) else "static" if is_static(path) else "pytorch"


def load_classifier(path: str | Path, *, device: str | None = None, trust: bool = False, threads: int | None = None,
                    show_progress: bool = False):
    """The classifier in `path`; a clear error for a folder that holds a generator or recommender."""
    runtime = runtime_of(path)
    if runtime == "onnx":
        from ..export import OnnxClassifier

        return OnnxClassifier.load(path, threads=threads, show_progress=show_progress)
    if runtime == "static":
        from ..export.static import StaticClassifier

        return StaticClassifier.load(path)
    from ..errors import ModelFolderError
    from .model_folder import CONFIG_NAME, FORMAT, FORMAT_VERSION, read_format_file

    if not Path(path).is_dir():
        raise ModelFolderError(f"{path}: no such model folder")
    # Read without checksums first, only to say what the folder is; the loader below verifies it.
    config = read_format_file(Path(path), CONFIG_NAME, FORMAT, FORMAT_VERSION, kind="fewtune model folder",
                              content="fewtune model config", written="written")
    if "task" in config or "method" not in config:
        what = f"a {config['task']} model (FewShotGenerator)" if "task" in config else "not a classifier"
        raise FewtuneError(f"{path} is {what}: it gives no class probabilities; give a classifier's folder")
    from ..classifier import FewShotClassifier

    return FewShotClassifier.load(path, device=device, trust=trust, show_progress=show_progress)
