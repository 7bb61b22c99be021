"""`fewtune generate` and `fewtune chat`: a causal LM fine-tuned by `fewtune train --task generate`, or any other."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import checks
from .options import Encoding, Json, Quiet, print_json, stdin_texts

MaxNew = Annotated[int, typer.Option(help="Stop after this many new tokens.")]
Temperature = Annotated[float, typer.Option(help="0 = greedy (deterministic); higher = more varied.")]
TopP = Annotated[float, typer.Option(help="Nucleus sampling: keep the most likely tokens up to this mass (temperature > 0).")]
RepetitionPenalty = Annotated[float, typer.Option(help="Divide the scores of tokens already in the context by this (1 = off); small models loop without it.")]


def generate(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train --task generate|lm`.")],
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", help="A prompt (repeatable); default: one per line on stdin.")] = None,
    max_new_tokens: MaxNew = 64,
    temperature: Temperature = 0.0,
    top_p: TopP = 0.9,
    repetition_penalty: RepetitionPenalty = 1.1,
    encoding: Encoding = "utf-8",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Generate a reply (dialogue model) or a continuation (adapted LM) for each prompt."""
    from ..generation import FewShotGenerator

    _check_sampling(max_new_tokens, temperature, top_p, repetition_penalty)
    checks.generator_folder(model)
    checks.device(device)
    prompts = list(prompt) if prompt else stdin_texts(encoding)[0]  # read before the model loads (seconds)
    gen = FewShotGenerator.load(model, device=device)
    stream = not json_out and len(prompts) == 1
    rows = []
    for text in prompts:
        reply = gen.generate(text, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             repetition_penalty=repetition_penalty, on_text=_write_now if stream else None)
        rows.append({"prompt": text, "response": reply})
        if stream:
            typer.echo("")
        elif not json_out:
            typer.echo(reply)
    if json_out:
        print_json(rows)


def chat(
    model: Annotated[Path, typer.Argument(help="A dialogue model folder saved by `fewtune train --task generate`.")],
    system: Annotated[Optional[str], typer.Option(help="A system message before the conversation.")] = None,
    max_new_tokens: MaxNew = 128,
    temperature: Temperature = 0.7,
    top_p: TopP = 0.9,
    repetition_penalty: RepetitionPenalty = 1.1,
    max_turns: Annotated[int, typer.Option(help="Exchanges of history kept in the prompt.")] = 6,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
):
    """Talk to a dialogue model; replies stream as they are generated. /reset starts over, /exit or Ctrl-D ends."""
    from ..generation import FewShotGenerator
    from ..generation.chat import chat_loop, stdin_line

    if max_turns < 1:
        raise FewtuneError(f"--max-turns must be at least 1, got {max_turns}")
    _check_sampling(max_new_tokens, temperature, top_p, repetition_penalty)
    checks.generator_folder(model, task="generate")
    checks.device(device)
    gen = FewShotGenerator.load(model, device=device)
    if sys.stdin.isatty():
        typer.echo("chatting with the model; /reset starts over, /exit or Ctrl-D ends", err=True)
    chat_loop(gen, system=system, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
              repetition_penalty=repetition_penalty, max_turns=max_turns, read_line=stdin_line("you> "), write=_write_now)


def _check_sampling(max_new_tokens: int, temperature: float, top_p: float, repetition_penalty: float) -> None:
    """The decoding options, before the model loads (the generator checks them again, per prompt)."""
    checks.at_least(max_new_tokens, 1, "--max-new-tokens")
    if not temperature >= 0:
        raise FewtuneError(f"--temperature must be 0 (greedy) or more, got {temperature}")
    if not 0 < top_p <= 1:
        raise FewtuneError(f"--top-p is a probability mass in (0, 1], got {top_p}")
    if not repetition_penalty > 0:
        raise FewtuneError(f"--repetition-penalty must be positive (1 = off), got {repetition_penalty}")


def _write_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
