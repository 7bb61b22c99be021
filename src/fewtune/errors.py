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
