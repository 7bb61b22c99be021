"""What `fewtune chat` does apart from option parsing: the conversation loop and its input."""

from __future__ import annotations

import sys
from typing import Callable, Optional

from ..errors import FewtuneError
from .generator import FewShotGenerator


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
