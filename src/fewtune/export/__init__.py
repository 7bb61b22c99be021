"""A trained classifier as one ONNX graph (encoder, pooling, head) run by ONNX Runtime, optionally int8.

    export_onnx("my-model", "my-model-onnx", int8=True)   # fewtune export my-model --format onnx --int8
    OnnxClassifier.load("my-model-onnx").predict_proba(["what a film"])

Exporting needs torch; the runtime needs only onnxruntime, tokenizers and numpy, so an exported
folder predicts without importing torch (`fewtune predict` and `fewtune serve` take it as is).
The exporter is imported on first use: it imports torch, which predicting with an export never does.
"""

from .runtime import MANIFEST_NAME, OnnxClassifier, is_exported

__all__ = ["MANIFEST_NAME", "OnnxClassifier", "export_onnx", "is_exported"]


def __getattr__(name: str):
    if name == "export_onnx":
        from .onnx import export_onnx  # why: torch; predicting with an export imports this package, never torch

        return export_onnx
    raise AttributeError(f"module 'fewtune.export' has no attribute {name!r}")
