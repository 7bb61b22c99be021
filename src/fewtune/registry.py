"""A named set of plug-in classes (the classification methods, the recommenders, the posterior and calibration
strategies of fewtune.bayes): one kind of registry for all of them.

Each class registers itself with the `register` decorator under its `name`; callers look it up with
`get`, which names the known ones when the name is unknown. Iteration follows registration order.

Plug-ins are found one way: each lives in a module of its package, and `import_all` imports every
module of that package but the ones named as not plug-ins; importing a module registers what it
defines. Adding a plug-in is adding a module. The methods' registry runs it when first read (`found_in`),
the recommenders' and strategies' packages when they are imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from .errors import FewtuneError

T = TypeVar("T", bound=type)


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, what: str, *, found_in: str | None = None, skip: Collection[str] = (),
                 first: Sequence[str] = ()):
        """found_in: a package whose modules are imported (import_all(found_in, skip, first)) the first time
        the registry is read, not when it is made: the plug-ins' own modules import the package of their
        base class, so importing them all from that package's __init__ would make an import cycle."""
        self.what = what  # how messages call an entry: "method", "recommendation method", "posterior"
        self._classes: dict[str, T] = {}
        self._found_in = (found_in, tuple(skip), tuple(first)) if found_in else None

    def register(self, cls: T) -> T:
        """Class decorator: file `cls` under `cls.name`."""
        if cls.name in self._classes:
            raise RuntimeError(f"{self.what} '{cls.name}' registered twice")
        self._classes[cls.name] = cls
        return cls

    def _found(self) -> dict[str, T]:
        if self._found_in is not None:
            package, skip, first = self._found_in
            self._found_in = None  # first: the modules imported below may read the registry themselves
            import_all(package, skip=skip, first=first)
        return self._classes

    def get(self, name: str) -> T:  # unlike Mapping.get, an unknown name is the user's error, never None
        classes = self._found()
        try:
            return classes[name]
        except KeyError:
            raise FewtuneError(f"unknown {self.what} '{name}'; available: {', '.join(sorted(classes))}") from None

    def __getitem__(self, name: str) -> T:
        return self._found()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._found())

    def __len__(self) -> int:
        return len(self._found())


def import_all(package: str, *, skip: Collection[str] = (), first: Sequence[str] = ()) -> None:
    """Import every module of `package` (its dotted name; the package's own __init__ may call this on
    itself) except those named in `skip`, so that each registers its plug-ins: the modules named in `first`
    in that order, then the rest in alphabetical order. A registry lists its entries in the order they
    were registered, so `first` sets the order of listings and messages."""
    path = importlib.import_module(package).__path__
    names = [m.name for m in pkgutil.iter_modules(path) if m.name not in skip]
    ranked = [name for name in first if name in names]
    for name in ranked + sorted(set(names) - set(ranked)):
        importlib.import_module(f"{package}.{name}")
