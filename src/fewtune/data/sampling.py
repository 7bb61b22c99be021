"""K-shot sampling: the same k examples per class for the same seed, on every machine."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from fewtune.errors import DataError


def too_few_shots(counts: dict[Any, int], shots: int) -> str | None:
    """Name the smallest class with fewer than ``shots`` examples (and count the others), if any."""
    short = {label: n for label, n in counts.items() if n < shots}
    if not short:
        return None
    label = min(short, key=short.get)
    n = short[label]
    message = f"class {label!r} has {n} example{'s' * (n != 1)}, fewer than the {shots} shots asked for"
    if len(short) == 2:
        message += " (1 other class is short too)"
    elif len(short) > 2:
        message += f" ({len(short) - 1} other classes are short too)"
    return message


def sample_k_shot(labels: Sequence[Any], k: int, seed: int) -> np.ndarray:
    """Indices of exactly ``k`` examples of every class, drawn with ``numpy.random.default_rng(seed)``.

    Classes are visited in sorted order and each draws from its examples in data order, so the
    result depends only on the labels, ``k`` and ``seed`` (not on dict or set ordering). The
    indices come back sorted ascending, i.e. in data order; shuffling for training is the
    trainer's job. Raises DataError naming a class that has fewer than ``k`` examples.
    """
    if k < 1:
        raise DataError(f"shots must be at least 1, got {k}")
    if len(labels) == 0:
        raise DataError("cannot sample k-shot examples from no data")
    by_class: dict[Any, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    problem = too_few_shots({label: len(ix) for label, ix in by_class.items()}, k)
    if problem:
        raise DataError(problem)
    try:
        classes = sorted(by_class)
    except TypeError:  # labels of mixed types (validated data never has them): still a fixed order
        classes = sorted(by_class, key=repr)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(by_class[label], size=k, replace=False) for label in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
