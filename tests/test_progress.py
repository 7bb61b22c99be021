"""Progress bars by default where someone watches: show_progress=None (the Python API's default) shows
them when stderr is a terminal or the code runs in a Jupyter kernel, not when stderr is piped."""

from __future__ import annotations

import sys
import types

import pytest

from fewtune import FewShotClassifier
from fewtune.generation.generator import FewShotGenerator
from fewtune.progress import Progress, shown


class _Stream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_auto_follows_whether_stderr_is_a_terminal(monkeypatch, tty):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    assert shown(None) is tty
    assert Progress(None).enabled is tty
    assert shown(True) is True and shown(False) is False  # a setting given is kept, terminal or not


def test_auto_shows_bars_in_a_jupyter_notebook_whose_stderr_is_a_pipe(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    kernel = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel))
    assert shown(None) is True
    terminal = type("TerminalInteractiveShell", (), {})()  # IPython in a terminal: its stderr decides
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: terminal))
    assert shown(None) is False


def test_the_python_api_defaults_to_auto():
    assert FewShotClassifier().show_progress is None
    assert FewShotGenerator().show_progress is None
    # The models cross-validation trains draw no bars of their own under their caller's.
    assert FewShotClassifier(show_progress=None).sibling().show_progress is False
