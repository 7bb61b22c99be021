"""K-shot sampling and fixed held-out subsets: the same examples for the same seed, on every machine.

- ``sample_k_shot``: indices of k examples of every class.
- ``draw``: the K-shot training draw from a pool and the rows it left, for `train` and `check-data`.
- ``fixed_subset`` / ``fixed_subset_indices``: at most N held-out examples, the same whatever the
  training seed (a generator seeded 0), so that runs with different seeds are scored on the same ones.
- ``cv_folds``: stratified cross-validation folds over the shots, for choosing hyper-parameters and
  fitting calibrations on the shots alone.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from fewtune.errors import DataError, FewtuneError

from .labeled import LabeledTexts


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


def shot_indices(pool: Sequence[Any] | LabeledTexts, k: int, seed: int) -> np.ndarray:
    """Sorted indices of the K-shot draw: k examples of every class from LabeledTexts (``sample_k_shot``),
    k items drawn uniformly from any other sequence (texts or chats, which have no labels)."""
    if isinstance(pool, LabeledTexts):
        return sample_k_shot(pool.labels, k, seed)
    return np.sort(np.random.default_rng(seed).choice(len(pool), k, replace=False))


def draw(pool, k: int, seed: int) -> tuple[Any, Any]:
    """(shots, rest): the K-shot draw from ``pool`` (see ``shot_indices``) and the examples not drawn,
    both in data order and of the pool's own kind (LabeledTexts, or a list)."""
    chosen = shot_indices(pool, k, seed)
    rest = sorted(set(range(len(pool))) - set(chosen.tolist()))
    return _take(pool, chosen), _take(pool, rest)


def fixed_subset_indices(n: int, limit: int | None) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` examples (all of them when ``limit`` is 0 or None),
    drawn with a generator seeded 0: the same ones whatever the run's seed, so runs compare fairly."""
    if not limit or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def fixed_subset(data, limit: int | None):
    """At most ``limit`` examples of ``data`` (LabeledTexts or a list), the same ones whatever the
    training seed; ``data`` itself when it has no more than that (or ``limit`` is 0 or None)."""
    if not limit or len(data) <= limit:
        return data
    return _take(data, fixed_subset_indices(len(data), limit))


def cv_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds over the shots; as many as the rarest class allows (at least 2)."""
    from sklearn.model_selection import KFold, StratifiedKFold  # why: scikit-learn is slow to import; data is not

    y = np.asarray(y)
    if y.ndim == 2:  # multi-label: folds over examples
        n = min(folds, len(y))
        if n < 2:
            raise FewtuneError("cross-validation needs at least 2 examples")
        return list(KFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    _, counts = np.unique(y, return_counts=True)
    n = min(folds, int(counts.min()))
    if n < 2:
        raise FewtuneError(
            f"--select cv needs at least 2 examples of every class to cross-validate; the rarest has {counts.min()}"
        )
    return list(StratifiedKFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _take(data, indices):
    return data.subset(indices) if isinstance(data, LabeledTexts) else [data[i] for i in indices]
