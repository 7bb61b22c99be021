"""`fewtune export`: a trained model as an ONNX folder for ONNX Runtime (optionally int8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import checks


def export(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train` (setfit, linear-probe or finetune).")],
    format: Annotated[str, typer.Option("--format", help="Export format; onnx is the one there is.")] = "onnx",
    int8: Annotated[bool, typer.Option("--int8", help="Quantise the transformer's weight matrices to int8 (dynamic quantisation): faster on CPUs.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to write (default: MODEL-onnx or MODEL-onnx-int8 beside MODEL).")] = None,
    vocabulary: Annotated[str, typer.Option("--vocabulary", help="'training': keep only the vocabulary pieces written in the training texts' scripts (a multilingual encoder's export shrinks by half or more); 'full': all.")] = "training",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing exported folder.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON, for scripts.")] = False,
):
    """Export a classifier to ONNX (encoder, pooling and head in one graph); `predict` and `serve` take the folder."""
    from ..export import is_exported
    from ..export.onnx import VOCABULARIES, default_output, export_onnx
    from ..export.static import is_static
    from ..saved_models import check_classifier_folder

    # Everything but the model itself is checked before it loads (seconds).
    if format != "onnx":
        raise FewtuneError(f"--format must be onnx, got {format!r}")
    if vocabulary not in VOCABULARIES:
        raise FewtuneError(f"--vocabulary must be one of {', '.join(VOCABULARIES)}, got {vocabulary!r}")
    if is_static(model):
        raise FewtuneError(f"{model} is a static student (from `fewtune distill --student static`): it already "
                           f"predicts without torch, and predict and serve take it as it is; nothing to export "
                           f"(fewtune predict {model} new.csv, fewtune serve {model})")
    if is_exported(model):
        raise FewtuneError(f"{model} is already an ONNX export: predict and serve take it as it is; to export again "
                           "(--int8, say), give the fewtune model folder it came from")
    check_classifier_folder(model)
    output = output if output is not None else default_output(model, int8)
    checks.output_folder(output, overwrite=overwrite)
    manifest = export_onnx(model, output, int8=int8, vocabulary=vocabulary, overwrite=overwrite)
    if json_out:
        typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    size = sum(p.stat().st_size for p in Path(manifest["output"]).rglob("*") if p.is_file()) / 1e6
    fused = ", ".join(f"{n} {k}" for k, n in manifest["fused"].items()) or "none"
    typer.echo(f"exported {model} to {manifest['output']} ({size:.0f} MB, {manifest['model']}) in "
               f"{manifest['seconds']:.1f} s; fused operators: {fused}")
    typer.echo(f"agreement with the PyTorch model: max |Δp| = {manifest['check']['max_abs_probability_diff']:.2g} "
               f"on {manifest['check']['texts']} probe texts")
    typer.echo(f"next: fewtune predict {manifest['output']} new.csv -o labeled.csv (or fewtune serve "
               f"{manifest['output']}); neither needs torch")
