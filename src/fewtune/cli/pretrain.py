"""`fewtune pretrain` and `fewtune adapt` (the work: fewtune.pretrain.api). Torch-free until a command runs.

Under `accelerate launch` every process runs the command; only the main one prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..pretrain.params import AdaptParams, PretrainParams
from ..pretrain.presets import PRESETS
from ..experiment.spec import RunSpec
from .options import Json, Quiet, parse_params

Corpus = Annotated[list[str], typer.Option("--corpus", help="A text file (.txt: one text per line; .jsonl, .csv, .tsv, .parquet: a text column) or a built-in corpus: imdb, mr, bbc, tweets, rt-subj, chitchat. Repeatable.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model in; a backbone for every other command.")]
Params = Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Training setting KEY=VALUE (repeatable); the keys are listed above.")]
TextCol = Annotated[str, typer.Option(help="Column (or JSONL field) holding the text.")]
Encoding = Annotated[str, typer.Option(help="Text encoding of the corpus files, e.g. latin-1.")]
Resume = Annotated[bool, typer.Option(help="Continue an interrupted run from its last checkpoint (in OUT.work/).")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output folder written by pretrain or adapt.")]
Device = Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (default: best available; accelerate launch picks per process).")]
LogWith = Annotated[Optional[list[str]], typer.Option("--log-with", help=RunSpec.help("log_with").replace("held-out scores", "held-out perplexity"))]
LoggingDir = Annotated[Optional[Path], typer.Option(help=RunSpec.help("logging_dir"))]


def pretrain(
    corpus: Corpus,
    out: Out,
    preset: Annotated[str, typer.Option(help=f"Model size: {', '.join(f'{k} ({v.description})' for k, v in PRESETS.items())}.")] = "tiny",
    tokenizer: Annotated[Optional[str], typer.Option(help="Reuse this backbone's tokenizer (name, folder or hub id) instead of learning a BPE vocabulary.")] = None,
    param: Params = None,
    text_col: TextCol = "text",
    encoding: Encoding = "utf-8",
    resume: Resume = False,
    overwrite: Overwrite = False,
    device: Device = None,
    log_with: LogWith = None,
    logging_dir: LoggingDir = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    from ..pretrain.api import pretrain as run

    params = parse_params(param)
    _check_before_work(out, device)
    if tokenizer:
        from ..backbones import resolve_backbone

        resolve_backbone(tokenizer)  # an unknown name fails now, not after the corpus is read
    facts = run(corpus, out, preset=preset, params=params, tokenizer=tokenizer, resume=resume,
                overwrite=overwrite, text_col=text_col, encoding=encoding, device=device, show_progress=not quiet,
                note=_note(quiet), log_with=log_with, logging_dir=logging_dir)
    _report(facts, out, json_out)


def adapt(
    backbone: Annotated[str, typer.Option(help="The backbone to adapt: a name (`fewtune models`), a model folder (e.g. from pretrain) or a hub id.")],
    corpus: Corpus,
    out: Out,
    objective: Annotated[str, typer.Option(help="auto (clm for a causal LM, simcse for an encoder), clm (next-token), simcse (contrastive, dropout views) or mlm (masked LM).")] = "auto",
    param: Params = None,
    text_col: TextCol = "text",
    encoding: Encoding = "utf-8",
    resume: Resume = False,
    overwrite: Overwrite = False,
    device: Device = None,
    log_with: LogWith = None,
    logging_dir: LoggingDir = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    from ..pretrain.api import adapt as run

    params = parse_params(param)
    _check_before_work(out, device)
    facts = run(backbone, corpus, out, objective=objective, params=params, resume=resume, overwrite=overwrite,
                text_col=text_col, encoding=encoding, device=device, show_progress=not quiet, note=_note(quiet),
                log_with=log_with, logging_dir=logging_dir)
    _report(facts, out, json_out)


def _doc(summary: str, params_class) -> str:
    # \b keeps click from re-flowing the list into one paragraph.
    keys = "\n".join(f"  {name}: {text}" for name, text in params_class.help().items())
    return f"{summary}\n\n\b\n-p keys:\n{keys}"


pretrain.__doc__ = _doc(
    "Pretrain a small Llama-style causal LM from scratch on unlabeled text (streamed): a BPE tokenizer, next-token "
    "training with AdamW and cosine decay, checkpoints, held-out perplexity. Data-parallel under `accelerate launch "
    "--config_file configs/accelerate/cpu-ddp.yaml -m fewtune.cli pretrain ...`.", PretrainParams)
adapt.__doc__ = _doc(
    "Continue pretraining a backbone on unlabeled in-domain text before few-shot training: next-token prediction for "
    "a causal LM, SimCSE or masked-LM for an encoder. Works under `accelerate launch` too.", AdaptParams)



def _check_before_work(out: Path, device) -> None:
    """What the API cannot see before it starts: that --out's folder can be written in, and --device.
    (The API checks the settings, the corpora and --out itself before any model or tokenizer.)"""
    from . import checks

    checks.writable_parent(out, "--out")
    checks.device(device)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _note(quiet: bool):
    def note(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    return note


def _report(facts: dict, out: Path, json_out: bool) -> None:
    if not _is_main():
        return
    if json_out:
        typer.echo(json.dumps(facts, indent=2, ensure_ascii=False, default=str))
        return
    if "perplexity_after" in facts:
        typer.echo(f"held-out perplexity {_num(facts['perplexity_before'])} before → "
                   f"{_num(facts['perplexity_after'])} after ({facts['heldout_tokens']:,} held-out tokens)")
        typer.echo(f"{facts['tokens_seen']:,} tokens in {facts['train_seconds']:.1f} s "
                   f"({facts['tokens_per_second'] or 0:,.0f} tokens/s) on {facts['processes']} process(es)")
    else:
        typer.echo(f"held-out {facts['objective']} loss {_num(facts['heldout_loss_before'])} before → "
                   f"{_num(facts['heldout_loss_after'])} after; {facts['texts_seen']:,} texts in "
                   f"{facts['train_seconds']:.1f} s on {facts['processes']} process(es)")
    typer.echo(f"model saved to {out}; use it with --backbone {out}")


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"
