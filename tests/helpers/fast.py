"""The settings that keep a setfit test fast, in one place.

head_c=1: a fixed head. setfit's default (head_c=0) trains 4 fold bodies more to choose it;
tests/cli/test_every_command.py runs train's default path with it, tests/methods/test_setfit.py what it chooses.
"""

# Shared by every test file: copy it to change it ({**FAST_SETFIT, ...}), never change it in place.
FAST_SETFIT = {"steps": 4, "batch_size": 8, "head_c": 1}


def as_options(params: dict) -> list[str]:
    """The same settings as the CLI's -p KEY=VALUE options."""
    return [arg for key, value in params.items() for arg in ("-p", f"{key}={value}")]
