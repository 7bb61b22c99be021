"""Keep library chatter out of the user's terminal while models load, and show fewtune's own progress.

transformers and sentence-transformers log and warn about things users of fewtune cannot act on
(unused weights of a pooler, progress bars for a 0.1 s load, deprecations inside the libraries).
Errors still raise; only logging below ERROR, library warnings and progress bars are hidden, and
only for the duration of a load, so a caller's own logging setup is left as it was.
"""

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator

_LIBRARY_LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "accelerate")
# Warnings raised from inside these packages are about their internals, not about the user's input.
_LIBRARY_MODULES = r"(transformers|sentence_transformers|huggingface_hub|accelerate|torch|peft)(\.|$)"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the model libraries' info logging, warnings and progress bars inside the block."""
    import transformers.utils.logging as hf_logging

    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    hf_verbosity = hf_logging.get_verbosity()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.set_verbosity_error()
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        hf_logging.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_LIBRARY_MODULES)
            yield
    finally:
        hf_logging.set_verbosity(hf_verbosity)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if bars_were_on:
            hf_logging.enable_progress_bar()


Report = Callable[[str], None]


@contextlib.contextmanager
def progress(message: str, *, quiet: bool = False) -> Iterator[Report]:
    """A spinner on stderr showing `message`; yields a function that replaces the message.

    stderr keeps stdout clean for output a user may pipe. With quiet=True nothing is shown.
    """
    if quiet:
        yield lambda _message: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(message) as status:

        def report(new_message: str) -> None:
            status.update(new_message)

        yield report
