"""Errors a user can act on.

Every error fewtune raises for bad input or a missing resource derives from FewtuneError; the CLI
prints its message on one line and exits non-zero without a traceback. Anything else is a bug.
"""


class FewtuneError(Exception):
    """An error caused by input or environment, with a message that says what to do."""


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
