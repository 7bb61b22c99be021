"""Turn raw records into LabeledTexts, rejecting what would train a model on garbage.

Every rejection is a DataError with one line in the form ``<source>, <row>, <field>: <problem>``
(e.g. ``my.csv, line 7, column 'text': empty text``), so the user can go straight to the cell.
When several rows are bad, the first is named and the rest are counted: fixing a file one error
per run is tedious, but a wall of messages hides the pattern.

Things that load but are probably mistakes (duplicates, conflicting labels, train/test overlap) are
warned about with DataWarning rather than refused, because they are sometimes intended.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Iterable, Sequence

from fewtune.errors import DataError

from .labeled import DataWarning, LabeledTexts, normalize_text
from .readers import read_table
from .sampling import too_few_shots

_MISSING = object()  # a JSONL record that lacks the key altogether


def load_labeled(
    path: str | Path,
    *,
    text_col: str,
    label_col: str | None,
    text_pair_col: str | None = None,
    encoding: str = "utf-8",
) -> LabeledTexts:
    """Read a CSV/TSV/JSONL/Parquet file and validate the named columns.

    ``label_col=None`` reads texts only (for prediction). Raises DataError for a missing column,
    empty or non-text text, or a missing label; warns (DataWarning) about duplicate examples and
    texts that appear with different labels.
    """
    source = str(path)
    columns, records, rows = read_table(path, encoding=encoding)
    for col in (text_col, text_pair_col, label_col):
        if col is not None and col not in columns:
            raise DataError(_missing_column_message(source, col, columns))

    def column(name: str | None) -> list[Any] | None:
        return None if name is None else [record.get(name, _MISSING) for record in records]

    return _build(
        source,
        rows,
        texts=column(text_col),
        pairs=column(text_pair_col),
        labels=column(label_col),
        fields=(f"column {text_col!r}", f"column {text_pair_col!r}", f"column {label_col!r}"),
        text_col=text_col,
        label_col=label_col,
    )


def as_labeled(texts: Iterable[Any], labels: Iterable[Any] | None = None, *, source: str = "input") -> LabeledTexts:
    """Validate in-memory data, e.g. the ``X, y`` of a scikit-learn style ``fit``.

    ``texts`` is a sequence of strings, or of ``(text, text_pair)`` pairs for sentence-pair tasks
    (a 2-column array or DataFrame works too). Examples are named "example i" after their 0-based
    index, as ``X[i]`` finds them. Validation and warnings are the same as for ``load_labeled``.
    """
    items = _as_list(texts, source, "texts")
    rows = [f"example {i}" for i in range(len(items))]
    is_pair = [isinstance(x, (tuple, list)) for x in items]
    pairs = None
    if any(is_pair):
        if not all(is_pair):
            i = is_pair.index(False)
            raise DataError(f"{source}, example {i}, text: expected a (text, text_pair) pair like the other examples")
        for i, item in enumerate(items):
            if len(item) != 2:
                raise DataError(
                    f"{source}, example {i}, text: expected a (text, text_pair) pair, got {len(item)} items"
                )
        items, pairs = [x[0] for x in items], [x[1] for x in items]
    label_list = None
    if labels is not None:
        label_list = _as_list(labels, source, "labels")
        if len(label_list) != len(items):
            raise DataError(f"{source}: {len(items)} texts but {len(label_list)} labels")
    return _build(
        source,
        rows,
        texts=items,
        pairs=pairs,
        labels=label_list,
        fields=("text", "text_pair", "label"),
        text_col=None,
        label_col=None,
    )


def from_table(table: Any, labels: Any = None, *, text_col: str = "text", label_col: str = "label",
               text_pair_col: str | None = None, source: str = "input") -> tuple[Any, Any]:
    """A pandas DataFrame or a `datasets.Dataset` with named columns -> (texts, or (text, text_pair) pairs;
    labels), the labels read from `label_col` unless given (a ClassLabel column gives its names, not its
    integers). Anything else, and a table without `text_col` whose labels are given (a 2-column table of
    sentence pairs), passes through unchanged. `datasets` is never imported here: a Dataset is recognised
    by its column_names."""
    columns = getattr(table, "column_names", None)
    if columns is None and hasattr(table, "columns") and getattr(table, "ndim", 0) == 2:
        columns = [str(c) for c in table.columns]
    if columns is None or (labels is not None and text_col not in columns):
        return table, labels
    wanted = [text_col, *([text_pair_col] if text_pair_col else []), *([label_col] if labels is None else [])]
    for col in wanted:
        if col not in columns:
            raise DataError(_missing_column_message(source, col, list(columns)).replace("the file has", "it has"))
    texts = list(table[text_col])
    if text_pair_col:
        texts = list(zip(texts, list(table[text_pair_col])))
    if labels is None:
        labels = list(table[label_col])
        names = getattr((getattr(table, "features", None) or {}).get(label_col), "names", None)
        if names:  # a datasets ClassLabel: integers stand for these names
            labels = [names[i] for i in labels]
    return texts, labels


def check_trainable(data: LabeledTexts, *, shots: int | None = None, conflicts: bool = True) -> None:
    """Refuse data a classifier cannot be trained on.

    Needs labels, at least two classes, no text under two labels (the rule check-data applies; conflicts=False
    leaves them to its audit) and, when ``shots`` is given, at least that many examples of every class
    (k-shot sampling draws ``shots`` per class).
    """
    field = f"column {data.label_col!r}" if data.label_col else "label"
    if data.labels is None:
        raise DataError(f"{data.source}: no labels; training needs a label column")
    if not data.labels:
        raise DataError(f"{data.source}: no examples")
    counts = data.class_counts()
    if len(counts) < 2:
        only = next(iter(counts))
        raise DataError(f"{data.source}, {field}: only one class ({only!r}); training needs at least 2 classes")
    warn_if_mixed_labels(list(counts), f"{data.source}, {field}")
    conflicting = label_conflicts(data) if conflicts else []
    if conflicting:  # as `fewtune check-data` counts it: an error, since no model can learn both labels
        a, b = conflicting[0]
        raise DataError(f"{data.source}, {field}: the same text under two labels, {data.rows[a]} "
                        f"({data.labels[a]!r}) and {data.rows[b]} ({data.labels[b]!r}); {len(conflicting)} such "
                        "text(s) in all. No model can learn both: fix or drop one (`fewtune check-data` lists them)")
    if shots is not None:
        if shots < 1:
            raise DataError(f"shots must be at least 1, got {shots}")
        problem = too_few_shots(counts, shots)
        if problem:
            raise DataError(f"{data.source}, {field}: {problem}")


def warn_if_mixed_labels(classes: list, where: str) -> None:
    """Classes that mix numbers and words ('0', '1', 'neutral', 'positive') are usually two labelings of
    one column: say so, naming them, rather than train four classes without a word."""
    numbers = sorted(str(c) for c in classes if str(c).strip().lstrip("-").isdigit())
    words = sorted(str(c) for c in classes if not str(c).strip().lstrip("-").isdigit())
    if numbers and words:
        warnings.warn(f"{where}: the classes mix numbers ({', '.join(numbers[:5])}) and words "
                      f"({', '.join(words[:5])}); they train as {len(classes)} separate classes. If the numbers "
                      "stand for words, relabel them first", DataWarning, stacklevel=3)


def check_known_labels(labels, classes, source: str, *, allow_unknown: bool) -> None:
    """Scoring labels the model never saw is an error that names them (a 0/1 file against a model trained on
    words gives a believable wrong accuracy otherwise); allow_unknown counts them as wrong instead."""
    known = {str(c) for c in classes}
    unknown = sorted({str(label) for label in labels} - known)
    if unknown and not allow_unknown:
        n = sum(str(label) not in known for label in labels)
        raise DataError(f"{source}: {n} row(s) have labels the model does not know ({', '.join(map(repr, unknown[:5]))}"
                        f"{', ...' if len(unknown) > 5 else ''}); its classes are {', '.join(map(repr, sorted(known)))}. "
                        "Fix the labels, or pass --allow-unknown-labels to count those rows as wrong")


def check_overlap(train: LabeledTexts, test: LabeledTexts) -> int:
    """Count test examples whose text (and text pair) also occurs in the training data.

    Texts are compared ignoring case and spacing. Warns (DataWarning) when the count is not zero:
    a model scored on examples it was trained on looks better than it is.
    """
    seen = {}
    for i, key in enumerate(_keys(train)):
        seen.setdefault(key, i)
    hits = [(j, seen[key]) for j, key in enumerate(_keys(test)) if key in seen]
    if hits:
        j, i = hits[0]
        warnings.warn(
            f"{len(hits)} of {len(test)} examples in {test.source} also appear in {train.source} "
            f"(first: {test.rows[j]} = {train.rows[i]}); scores on them overstate how well the model generalises",
            DataWarning,
            stacklevel=2,
        )
    return len(hits)


# --- internals ---------------------------------------------------------------------------------


def _as_list(values: Any, source: str, name: str) -> list[Any]:
    if isinstance(values, (str, bytes)):
        raise DataError(f"{source}: {name} must be a list, got a single {type(values).__name__}")
    if getattr(values, "ndim", 1) == 2:
        # A 2-column array or DataFrame of sentence pairs: iterate rows, not columns.
        values = values.to_numpy() if hasattr(values, "to_numpy") else values
        return [tuple(row) if len(row) > 1 else row[0] for row in values]
    try:
        return list(values)
    except TypeError:
        raise DataError(f"{source}: {name} must be a list, got {type(values).__name__}") from None


def _missing_column_message(source: str, col: str, columns: Sequence[str]) -> str:
    close = get_close_matches(col, columns, n=1) or [c for c in columns if c.lower() == col.lower()]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    have = ", ".join(repr(c) for c in columns)
    return f"{source}: no column {col!r}{hint}; the file has columns {have}"


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "no value"
    if value is None:
        return "null"
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{type(value).__name__} {shown}"


def _scalar(value: Any) -> Any:
    """numpy/pandas scalars -> plain Python, so labels compare, sort and serialise predictably."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0:
        return item()
    return value


def _text_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return None if value.strip() else "empty text"
    return f"expected text, got {_describe(value)}"


def _clean_label(value: Any) -> tuple[Any, str | None]:
    """The label to keep and what is wrong with it, if anything."""
    value = _scalar(value)
    if value is _MISSING or value is None:
        return None, "missing label"
    if isinstance(value, str):
        # Surrounding spaces ("pos, neg" after a comma) would otherwise make a second class.
        value = value.strip()
        return value, None if value else "missing label (empty)"
    if isinstance(value, float) and math.isnan(value):
        return None, "missing label (NaN)"
    if isinstance(value, (bool, int, float)):
        return value, None
    return None, f"expected a single label, got {_describe(value)}"


def _build(
    source: str,
    rows: list[str],
    *,
    texts: list[Any],
    pairs: list[Any] | None,
    labels: list[Any] | None,
    fields: tuple[str, str, str],
    text_col: str | None,
    label_col: str | None,
) -> LabeledTexts:
    text_field, pair_field, label_field = fields
    texts = [_scalar(t) for t in texts]
    pairs = None if pairs is None else [_scalar(t) for t in pairs]
    cleaned: list[Any] | None = None if labels is None else []
    problems: list[str] = []
    for i, row in enumerate(rows):
        if (p := _text_problem(texts[i])) is not None:
            problems.append(f"{source}, {row}, {text_field}: {p}")
        if pairs is not None and (p := _text_problem(pairs[i])) is not None:
            problems.append(f"{source}, {row}, {pair_field}: {p}")
        if labels is not None:
            label, p = _clean_label(labels[i])
            if p is not None:
                problems.append(f"{source}, {row}, {label_field}: {p}")
            cleaned.append(label)
    if problems:
        more = f" ({len(problems) - 1} more problems after this one)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    labels = cleaned
    if labels is not None:
        _check_label_types(labels, rows, source, label_field)
    data = LabeledTexts(
        texts=texts,
        labels=labels,
        source=source,
        rows=rows,
        text_pairs=pairs,
        text_col=text_col,
        label_col=label_col,
    )
    if labels is not None:
        _warn_duplicates(data)
    return data


def _check_label_types(labels: list[Any], rows: list[str], source: str, field: str) -> None:
    """Refuse a mix like 1 and "1": they would be two classes that look identical in reports."""
    types = Counter(type(label).__name__ for label in labels)
    if len(types) > 1:
        main = types.most_common(1)[0][0]
        i = next(i for i, label in enumerate(labels) if type(label).__name__ != main)
        raise DataError(
            f"{source}, {rows[i]}, {field}: label {labels[i]!r} is {type(labels[i]).__name__}, but most labels "
            f"are {main}; use one type for all labels"
        )


def _keys(data: LabeledTexts) -> list[tuple[str, str | None]]:
    pairs = data.text_pairs if data.text_pairs is not None else [None] * len(data)
    return [(normalize_text(t), None if p is None else normalize_text(p)) for t, p in zip(data.texts, pairs)]


def label_conflicts(data: LabeledTexts) -> list[tuple[int, int]]:
    """For each text that appears under two labels (ignoring case and spacing), its first two such rows."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(_keys(data)):
        groups[key].append(i)
    return [(members[0], next(i for i in members if data.labels[i] != data.labels[members[0]]))
            for members in groups.values() if len({data.labels[i] for i in members}) > 1]


def _warn_duplicates(data: LabeledTexts) -> None:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(_keys(data)):
        groups[key].append(i)
    duplicates, first_duplicate = 0, None
    for members in groups.values():
        if len(members) > 1 and len({data.labels[i] for i in members}) == 1:
            duplicates += len(members) - 1
            first_duplicate = first_duplicate or (members[0], members[1])
    conflict_rows = label_conflicts(data)
    conflicts, first_conflict = len(conflict_rows), (conflict_rows[0] if conflict_rows else None)
    if duplicates:
        a, b = first_duplicate
        warnings.warn(
            f"{data.source}: {duplicates} duplicate examples (same text and label, ignoring case and "
            f"spacing), first: {data.rows[a]} and {data.rows[b]}; each copy counts again in training and scoring",
            DataWarning,
            stacklevel=4,
        )
    if conflicts:
        a, b = first_conflict
        warnings.warn(
            f"{data.source}: {conflicts} texts appear with different labels, first: {data.rows[a]} "
            f"({data.labels[a]!r}) and {data.rows[b]} ({data.labels[b]!r})",
            DataWarning,
            stacklevel=4,
        )
