"""Few-shot methods, one module each. Each module registers its method on import; METHODS is the one list.

Every module of this package but base (what the methods build on) is imported the first time METHODS is
read (registry.import_all, through the registry's `found_in`), so adding a method means adding a module.
Not at import: the methods' support code in training/ imports methods.base, which runs this __init__
first. Methods that combine others (auto, hybrid) look them up in METHODS when they run; the order only
sets how `fewtune methods` lists them (base.LISTED_FIRST, then the rest).
"""

from .base import METHODS, FewShotMethod, MethodParams, get_method, register_method

__all__ = ["METHODS", "FewShotMethod", "MethodParams", "get_method", "register_method"]
