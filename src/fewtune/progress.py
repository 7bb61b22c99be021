"""Progress bars that go to stderr (stdout stays clean for --json) and vanish with --quiet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress


class Progress:
    """A thin wrapper over rich.Progress: `add` a task, `advance` it; a no-op when disabled."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._rich = (
            _RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            if enabled
            else None
        )

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()

    def add(self, description: str, total: int | None) -> int | None:
        return self._rich.add_task(description, total=total) if self._rich is not None else None

    def log(self, message: str) -> None:
        """A line above the bars (kept when they redraw); nothing when disabled."""
        if self._rich is not None:
            self._rich.console.print(message, markup=False, highlight=False)

    def advance(self, task: int | None, amount: float = 1) -> None:
        if self._rich is not None and task is not None:
            self._rich.advance(task, amount)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    with Progress(enabled) as p:
        yield p
