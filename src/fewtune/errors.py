"""Errors a user can act on.

Every error fewtune raises for bad input or a missing resource derives from FewtuneError; the CLI
prints its message on one line and exits non-zero without a traceback. Anything else is a bug.
"""

import contextlib
import warnings


class FewtuneError(Exception):
    """An error caused by input or environment, with a message that says what to do."""


class SettingError(FewtuneError, ValueError):
    """A setting with a value it cannot take, worded by the estimator's name for it (`select`): the message
    starts with that name, so the command line can put its flag there instead (`--select`; cli.options).

    choices: the names an optional setting may take; the message then says "None or one of 'a', 'b'" and
    the command line, where leaving the flag out is the None, "one of a, b"."""

    def __init__(self, setting: str, message: str | None = None, *, value=None, choices: tuple = ()):
        self.setting, self.value, self.choices = setting, value, tuple(choices)
        if message is None:
            message = f"{setting} must be None or one of {', '.join(map(repr, self.choices))}, got {value!r}"
        super().__init__(message)


class DataError(FewtuneError, ValueError):
    """Bad training or prediction data: the message names the file, row and field."""


class BackboneError(FewtuneError):
    """A backbone that is unknown, not installed, or cannot be loaded."""


class ModelFolderError(FewtuneError):
    """A saved model folder that is missing, corrupt, tampered with, or unsafe to load."""


class TrustRequired(ModelFolderError):
    """A refusal to load pickle files or a folder's own code, which the caller can lift by trusting the source.

    Each audience is told its own switch: str() names the Python API's `trust=True`, `cli_message` the
    command line's `--trust`. The message is written with "{trust}" where the switch goes.
    """

    PLACEHOLDER = "{trust}"

    def __init__(self, message: str):
        self.template = message
        super().__init__(message.replace(self.PLACEHOLDER, "trust=True"))

    @property
    def cli_message(self) -> str:
        return self.template.replace(self.PLACEHOLDER, "--trust")


@contextlib.contextmanager
def warnings_after_checks():
    """Warnings raised while a command checks its inputs, shown only once every check has passed.

    A refusal is then one line (the error), not a warning and then an error that says the same or
    something else: the warning is for a run that goes on. On success they are raised again in order,
    through the filters as raised warnings are, so callers and tests see them as before.
    """
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
