"""What `fewtune train --task generate|lm`, `fewtune generate` and `fewtune chat` do, apart from option parsing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from ..data import draw, fixed_subset
from ..errors import DataError, FewtuneError
from .builtin import DIALOGUE_DATASETS, load_dialogues, load_text_dataset
from .data import load_chats, load_texts
from .tuner import FewShotGenerator, GenerationParams

DEFAULT_SHOTS = 64  # built-in pools hold thousands of examples; few-shot means a few dozen
DEFAULT_MAX_TEST = 100  # perplexity on 100 held-out examples: ~1 min for SmolLM2 on 2 cores


def train_generator(*, task: str, data: Optional[Path], dataset: Optional[str], text_col: str, prompt_col: str,
                    response_col: str, shots: Optional[int], seed: int, backbone: str, params: dict[str, str],
                    output: Optional[Path], overwrite: bool, merge: bool, test: Optional[Path],
                    max_test: Optional[int], encoding: str, device: Optional[str], quiet: bool,
                    note: Callable[[str], None], resume: bool = False) -> dict[str, Any]:
    from ..backbones import resolve_backbone

    GenerationParams.from_dict(params, method="generation")  # settings checked before any data or model
    resolve_backbone(backbone)

    def read(path: Path) -> list:
        if task == "generate":
            return load_chats(path, prompt_col=prompt_col, response_col=response_col, encoding=encoding)
        return load_texts(path, text_col=text_col, encoding=encoding)

    if dataset is not None:
        if task == "generate":
            if dataset not in DIALOGUE_DATASETS:
                raise DataError(f"--task generate needs a dialogue data set ({', '.join(DIALOGUE_DATASETS)}), "
                                f"got {dataset!r}")
            pool, heldout = load_dialogues(dataset)
        else:
            pool, heldout = load_text_dataset(dataset)
        what = f"the {dataset} test split"
        if shots is None:
            shots = DEFAULT_SHOTS
            note(f"training on {shots} examples of {dataset} drawn with seed {seed} (set --shots to change)")
    else:
        pool, heldout, what = read(data), None, None
    if shots is not None:
        if shots > len(pool):
            raise DataError(f"--shots {shots} asks for more examples than {dataset or data} has ({len(pool)})")
        train, rest = draw(pool, shots, seed)
        if heldout is None:
            heldout, what = rest, f"the {len(rest)} rows of {data} not drawn for training"
    else:
        train = pool
    if test is not None:
        heldout, what = read(test), str(test)
    if heldout is not None:
        heldout = fixed_subset(heldout, DEFAULT_MAX_TEST if max_test is None else max_test)
    if heldout is not None and not heldout:
        heldout = None

    kind = "conversations" if task == "generate" else "texts"
    note(f"fine-tuning {backbone} ({task}) on {len(train)} {kind}")
    gen = FewShotGenerator(backbone, task=task, params=params, seed=seed, device=device, show_progress=not quiet)
    # Beside the output, hidden: an interrupted run leaves it there for --resume, a finished one removes it.
    checkpoint = output.parent / f".{output.name}.checkpoint" if output is not None else None
    if resume:
        if checkpoint is None:
            raise FewtuneError("--resume needs --output: the checkpoint lives beside the model folder")
        if not checkpoint.is_dir():
            note(f"no checkpoint at {checkpoint}; starting from the beginning")
    elif checkpoint is not None and checkpoint.is_dir():
        note(f"an earlier run's checkpoint is at {checkpoint}; starting over (--resume continues it instead)")
    gen.fit(train, eval_examples=heldout, checkpoint=checkpoint, resume=resume)
    gen.train_info_["data"] = f"{dataset or data}" + (f", {shots} drawn with seed {seed}" if shots else "")
    result: dict[str, Any] = {"task": task, "backbone": gen.backbone_.name, "n_train": len(train), "seed": seed,
                              "train_seconds": gen.train_info_["train_seconds"],
                              "distance_from_pretrained": gen.train_info_["distance_from_pretrained"]}
    if gen.evaluation_:
        result["evaluation"] = {"held_out": what, **gen.evaluation_}
    if output is not None:
        gen.save(output, merge=merge, overwrite=overwrite)
        shutil.rmtree(checkpoint, ignore_errors=True)
        result["output"] = str(output)
    return result


def chat_loop(gen: FewShotGenerator, *, system: Optional[str], max_new_tokens: int, temperature: float,
              top_p: float, max_turns: int, repetition_penalty: float = 1.0, read_line: Callable[[], Optional[str]],
              write: Callable[[str], None]) -> int:
    """Talk to a dialogue model until EOF or /exit; returns the number of replies.

    The conversation so far is the prompt; only the last `max_turns` exchanges are kept, so a long
    chat does not outgrow the model's context. /reset starts over.
    """
    if gen.task != "generate":
        raise FewtuneError("this model continues text (task 'lm'); use `fewtune generate`, not chat")
    history: list[dict[str, str]] = []
    replies = 0
    while True:
        line = read_line()
        if line is None or line.strip() in {"/exit", "/quit"}:
            return replies
        if not line.strip():
            continue
        if line.strip() == "/reset":
            history = []
            continue
        history.append({"role": "user", "content": line.strip()})
        history = history[-(2 * max_turns - 1):]
        prompt = ([{"role": "system", "content": system}] if system else []) + history
        reply = gen.generate(prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             repetition_penalty=repetition_penalty, on_text=write)
        write("\n")
        history.append({"role": "assistant", "content": reply or "…"})
        replies += 1


def stdin_line(prompt: str) -> Callable[[], Optional[str]]:
    """A reader for chat_loop: shows `prompt` on stderr when a person is typing, None at EOF."""

    def read() -> Optional[str]:
        if sys.stdin.isatty():
            sys.stderr.write(prompt)
            sys.stderr.flush()
        line = sys.stdin.readline()
        return None if line == "" else line.rstrip("\n")

    return read
