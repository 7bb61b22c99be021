"""`fewtune ARGS` run in-process through `fewtune.cli.main(argv)`, with its exit code and output."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import types
import warnings
from dataclasses import dataclass
from typing import Optional

import pytest

from fewtune.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@contextlib.contextmanager
def _undo_main_side_effects():
    """main() sets two environment variables and warnings.showwarning for the process; undo that."""
    keys = ("HF_HUB_DISABLE_PROGRESS_BARS", "TOKENIZERS_PARALLELISM")
    env = {k: os.environ.get(k) for k in keys}
    showwarning = warnings.showwarning
    try:
        yield
    finally:
        warnings.showwarning = showwarning
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(capfd, *args: str, stdin: Optional[bytes] = None, monkeypatch=None) -> Result:
    """Run `fewtune ARGS` in-process and return its exit code, stdout and stderr."""
    capfd.readouterr()  # drop anything printed before
    with contextlib.ExitStack() as stack:
        stack.enter_context(_undo_main_side_effects())
        if stdin is not None:
            mp = stack.enter_context(pytest.MonkeyPatch.context()) if monkeypatch is None else monkeypatch
            mp.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(stdin)))
        code = main([str(a) for a in args])
    captured = capfd.readouterr()
    return Result(code, captured.out, captured.err)


def run_redirected(*args: str) -> Result:
    """The same, for module-scoped fixtures (which cannot use capfd)."""
    out, err = io.StringIO(), io.StringIO()
    with _undo_main_side_effects(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def private_home(tmp_path_factory):
    """conftest's FEWTUNE_HOME, for module-scoped fixtures that run before its autouse fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEWTUNE_HOME", str(tmp_path_factory.getbasetemp() / "fewtune_home"))
        yield
