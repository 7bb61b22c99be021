"""`fewtune distill`: a saved classifier teaches a fast student on unlabeled texts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..backbones.catalog import FAST_ENCODER
from . import checks
from .options import Json, Quiet, note, parse_params, print_json


def distill(
    teacher: Annotated[Path, typer.Argument(help="The teacher: any saved classifier folder (prompt, icl, auto, hybrid, setfit, ...; an ONNX export or a static student too).")],
    unlabeled: Annotated[Path, typer.Option("--unlabeled", help="Unlabeled texts for the teacher to label: CSV, TSV, JSONL or Parquet.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the student to.")],
    student: Annotated[str, typer.Option(help="'encoder': a finetune model on --backbone (exportable with `fewtune export --format onnx [--int8]`); 'static': a model2vec static table distilled from --backbone and a softmax head (predicts without torch, thousands of texts a second).")] = "encoder",
    backbone: Annotated[str, typer.Option(help="The student's sentence encoder (or the one its static table is distilled from); the small fast one by default, me5-small for texts beyond English.")] = FAST_ENCODER,
    data: Annotated[Optional[Path], typer.Option(help="The labeled shots the teacher was trained on: they join the pool with their true labels.")] = None,
    text_col: Annotated[str, typer.Option(help="Column holding the text (pool and shots).")] = "text",
    label_col: Annotated[str, typer.Option(help="Column holding the label (--data).")] = "label",
    max_pool: Annotated[int, typer.Option(help="Label at most this many pool texts, a random sample (0 = all).")] = 0,
    self_train: Annotated[int, typer.Option("--self-train", help="Rounds of training (2 or more: self-training, each round's teacher is the student before it).")] = 1,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="The encoder student's finetune parameter KEY=VALUE (repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the pool sample, the held-out texts and training.")] = 0,
    encoding: Annotated[str, typer.Option(help="Text encoding of the data files.")] = "utf-8",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (default: best available).")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Load pickle weights and a model folder's own code (only from a source you trust).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing student folder.")] = False,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Distill a slow classifier into a fast student: the teacher labels --unlabeled with its probabilities, the student learns them."""
    from ..data import load_labeled
    from ..distill.api import distill as run

    # The options, the output folder and the data before anything loads; the API then checks the student's
    # settings, the teacher's folder and the whole pool before the teacher loads.
    params = parse_params(param)
    checks.output_folder(output, overwrite=overwrite)
    checks.input_file(unlabeled, "--unlabeled")
    checks.device(device)
    shots = None
    if data is not None:
        shots = load_labeled(data, text_col=text_col, label_col=label_col, encoding=encoding)
    result = run(teacher, unlabeled, output, student=student, backbone=backbone, shots=shots, text_col=text_col,
                 encoding=encoding, max_pool=max_pool, rounds=self_train, params=params,
                 seed=seed, device=device, trust=trust, overwrite=overwrite, show_progress=not quiet)
    if json_out:
        print_json(result)
        return
    if data is None:  # after the run, so a refused one ends in its error line alone
        note(quiet, "note: no --data: the student learned from the teacher's labels alone")
    pool, held = result["pool"], result["heldout"]
    typer.echo(f"student ({student} on {backbone}) saved to {output}")
    typer.echo(f"pool: {pool['n_train']} texts labeled by the teacher for training ({pool['n_texts']} in the file), "
               f"{result['n_shots']} shots")
    if held:
        typer.echo(f"agreement with the teacher on {held['n']} held-out pool texts: {held['agreement']:.1%} "
                   f"(mean total variation {held['total_variation']:.3f})")
    else:
        typer.echo("agreement with the teacher: not measured (pool too small to hold texts out)")
    seconds = result["seconds"]
    typer.echo(f"seconds: teacher labeling {seconds['teacher_labeling']:.1f}, students {seconds['students']:.1f}, "
               f"total {seconds['total']:.1f}")
    if student == "encoder":
        typer.echo(f"next: fewtune predict {output} new.csv -o labeled.csv, or fewtune export {output} --format onnx "
                   "[--int8] for a student that runs without torch")
    else:
        typer.echo(f"next: fewtune predict {output} new.csv -o labeled.csv (or fewtune serve {output}); no torch needed")

