"""A named set of plug-in classes (the classification methods, the recommenders): one kind of registry for both.

Each class registers itself with the `register` decorator under its `name`; callers look it up with
`get`, which names the known ones when the name is unknown. Iteration follows registration order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .errors import FewtuneError

T = TypeVar("T", bound=type)


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, what: str):
        self.what = what  # how messages call an entry: "method", "recommendation method"
        self._classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: file `cls` under `cls.name`."""
        if cls.name in self._classes:
            raise RuntimeError(f"{self.what} '{cls.name}' registered twice")
        self._classes[cls.name] = cls
        return cls

    def get(self, name: str) -> T:  # unlike Mapping.get, an unknown name is the user's error, never None
        try:
            return self._classes[name]
        except KeyError:
            raise FewtuneError(f"unknown {self.what} '{name}'; available: {', '.join(sorted(self._classes))}") from None

    def __getitem__(self, name: str) -> T:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)
