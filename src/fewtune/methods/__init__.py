"""Few-shot methods, one module each. Each module registers its method on import; METHODS is the one list.

Every module of this package is imported here, so adding a method means adding a module. Methods
that combine others (auto, hybrid) look them up in METHODS when they run, so import order does not
matter to them; it only sets the order `fewtune methods` lists them in (LISTED_FIRST, then the rest).
"""

import importlib
import pkgutil

from ..method import METHODS, FewShotMethod, MethodParams, get_method, register_method

# The baselines and the encoder methods first, then the causal-LM ones, then those combining others.
LISTED_FIRST = ("linear_probe", "setfit", "finetune", "majority", "zero_shot", "prompt", "icl", "auto", "hybrid")


def _listing_key(module: str) -> tuple[int, str]:
    return (LISTED_FIRST.index(module) if module in LISTED_FIRST else len(LISTED_FIRST), module)


for _module in sorted((m.name for m in pkgutil.iter_modules(__path__)), key=_listing_key):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "FewShotMethod", "MethodParams", "get_method", "register_method"]
