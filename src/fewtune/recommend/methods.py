"""Importing this module registers every recommendation method (each lives in its own module)."""

from . import hierarchical, item_knn, mf, popularity, tallrec  # noqa: F401
from .base import RECOMMENDERS

__all__ = ["RECOMMENDERS"]
