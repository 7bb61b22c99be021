"""Multi-label targets: each text carries a set of labels (possibly empty) instead of exactly one.

Accepted the two ways scikit-learn users hold them: a list of label collections
(``[["sports"], ["politics", "economy"], []]``) or a 0/1 indicator matrix (n × C). Internally both
become the indicator matrix, columns in sorted label order, which is what the methods train on
(one-vs-rest) and what ``predict`` returns, as in scikit-learn's multi-label estimators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
# Reading targets against a fitted classifier (to_indicator, for scoring) lives below fewtune.data, where
# labels.py can reach it; it is named here too, beside the training-side helpers.
from ..label_sets import COLLECTIONS, is_matrix, label_set, to_indicator  # noqa: F401


def looks_multi_label(y: Any) -> bool:
    """True for a 2-D indicator matrix or a sequence whose entries are label collections."""
    if y is None or isinstance(y, str):
        return False
    if is_matrix(y):
        return True
    try:
        first = next(iter(y))
    except (TypeError, StopIteration):
        return False
    return isinstance(first, COLLECTIONS) or (isinstance(first, np.ndarray) and first.ndim == 1)


def binarize(y: Any, n_texts: int, *, source: str) -> tuple[list[Any], np.ndarray]:
    """(classes, indicator matrix) from multi-label targets; refuses anything a classifier cannot learn."""
    if is_matrix(y):
        matrix = np.asarray(y)
        if matrix.shape[0] != n_texts:
            raise DataError(f"{source}: {n_texts} texts but {matrix.shape[0]} label rows")
        if not np.isin(matrix, (0, 1)).all():
            row = int(np.argwhere(~np.isin(matrix, (0, 1)))[0][0])
            raise DataError(f"{source}, example {row}, labels: an indicator matrix holds only 0 and 1")
        classes = list(range(matrix.shape[1]))
        matrix = matrix.astype(np.int64)
    else:
        rows = list(y)
        if len(rows) != n_texts:
            raise DataError(f"{source}: {n_texts} texts but {len(rows)} label sets")
        sets = [label_set(row, i, source) for i, row in enumerate(rows)]
        classes = sorted(set().union(*sets), key=lambda v: (str(type(v)), v))
        index = {c: j for j, c in enumerate(classes)}
        matrix = np.zeros((n_texts, len(classes)), dtype=np.int64)
        for i, labels in enumerate(sets):
            matrix[i, [index[c] for c in labels]] = 1
    check_multi_label_trainable(matrix, classes, source)
    return classes, matrix


def check_multi_label_trainable(matrix: np.ndarray, classes: Sequence[Any], source: str) -> None:
    if len(matrix) == 0:
        raise DataError(f"{source}: no examples")
    if len(classes) < 2:
        raise DataError(f"{source}: multi-label training needs at least 2 different labels, got {list(classes)}")
    positives = matrix.sum(0)
    for j, c in enumerate(classes):
        if positives[j] == 0 or positives[j] == len(matrix):
            where = "no" if positives[j] == 0 else "every"
            raise DataError(
                f"{source}: label {c!r} is on {where} example; each label needs examples with it and without it"
            )
