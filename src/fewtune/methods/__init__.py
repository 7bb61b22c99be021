"""Few-shot methods. Each module registers its method on import; METHODS is the one list."""

from . import linear_probe, setfit  # noqa: F401  (importing registers the methods)
from . import finetune, majority, prompting  # noqa: F401
from . import auto, hybrid  # noqa: F401  (after the methods they combine)
from .base import METHODS, FewShotMethod, MethodParams, get_method, register_method

__all__ = ["METHODS", "FewShotMethod", "MethodParams", "get_method", "register_method"]
