"""Progress bars that go to stderr (stdout stays clean for --json) and vanish with --quiet; from Python,
show_progress=None shows them when someone is watching (a terminal or a notebook), not in a pipe or a log."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress


# Someone watching progress without a terminal (the training page of `fewtune serve`): called with
# ("add", task, description, total) and ("advance", task, amount, None) by every Progress in this
# context, shown or not, so code that trains needs no callback parameter threaded through it.
Observer = Callable[[str, int, object, object], None]
_OBSERVER: contextvars.ContextVar[Observer | None] = contextvars.ContextVar("fewtune_progress_observer", default=None)
_TASK_IDS = itertools.count()


@contextlib.contextmanager
def observe_progress(observer: Observer) -> Iterator[None]:
    """Report every progress task started in this context (this thread) to `observer`."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def interactive() -> bool:
    """Someone is watching: stderr is a terminal, or this runs in a Jupyter kernel (whose stderr is a pipe
    to the notebook, where rich draws its bars as a widget). IPython is looked up, never imported."""
    stderr = sys.stderr
    if stderr is not None and hasattr(stderr, "isatty") and stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def shown(setting: bool | None) -> bool:
    """show_progress as given, or for None (the Python API's default) whether someone is watching."""
    return interactive() if setting is None else bool(setting)


class Progress:
    """A thin wrapper over rich.Progress: `add` a task, `advance` it; a no-op when disabled.
    enabled=None: shown when someone is watching (`shown`)."""

    def __init__(self, enabled: bool | None = True):
        self.enabled = enabled = shown(enabled)
        self._observer = _OBSERVER.get()
        self._rich_ids: dict[int, int] = {}
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
        if self._observer is None:
            return self._rich.add_task(description, total=total) if self._rich is not None else None
        task = next(_TASK_IDS)
        if self._rich is not None:
            self._rich_ids[task] = self._rich.add_task(description, total=total)
        self._observer("add", task, description, total)
        return task

    def log(self, message: str) -> None:
        """A line above the bars (kept when they redraw); nothing when disabled."""
        if self._rich is not None:
            self._rich.console.print(message, markup=False, highlight=False)

    def advance(self, task: int | None, amount: float = 1) -> None:
        if self._observer is not None and task is not None:
            self._observer("advance", task, amount, None)
            task = self._rich_ids.get(task)
        if self._rich is not None and task is not None:
            self._rich.advance(task, amount)


@contextlib.contextmanager
def progress_bar(enabled: bool | None = True) -> Iterator[Progress]:
    with Progress(enabled) as p:
        yield p
