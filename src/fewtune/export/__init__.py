"""A trained classifier as one ONNX graph (encoder, pooling, head) run by ONNX Runtime, optionally int8.

    export_onnx("my-model", "my-model-onnx", int8=True)   # fewtune export my-model --format onnx --int8
    OnnxClassifier.load("my-model-onnx").predict_proba(["what a film"])

Exporting needs torch; the runtime needs only onnxruntime, tokenizers and numpy, so an exported
folder predicts without importing torch (`fewtune predict` and `fewtune serve` take it as is).
Names are imported on first use, so the command line's `--help` does not pay for them.
"""

__all__ = ["MANIFEST_NAME", "OnnxClassifier", "export_onnx", "is_exported"]


def __getattr__(name: str):
    if name == "export_onnx":
        from .onnx import export_onnx

        return export_onnx
    if name in ("MANIFEST_NAME", "OnnxClassifier", "is_exported"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'fewtune.export' has no attribute {name!r}")
