"""The in-memory form of a labeled data set, shared by every reader and method."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable


class DataWarning(UserWarning):
    """Data that loads but probably is not what the user meant (duplicates, leakage, ...)."""


def normalize_text(text: str) -> str:
    """Collapse whitespace and case, so "Great  film" and "great film" count as the same text.

    Used to detect duplicates and train/test overlap: texts that differ only in spacing or case are
    the same example as far as a model's score is concerned.
    """
    return " ".join(text.split()).casefold()


@dataclass
class LabeledTexts:
    """Texts with their labels and where each one came from.

    ``rows`` names every example the way error messages should ("line 7" of a CSV, "row 3" of a
    Parquet file, "example 3" of an in-memory list), so a message can point the user at the exact
    place to fix. ``text_col`` and ``label_col`` are the file columns the texts and labels came
    from (None for in-memory data), so later messages can name the field too.
    """

    texts: list[str]
    labels: list[Any] | None
    source: str
    rows: list[str]
    text_pairs: list[str] | None = None
    text_col: str | None = None
    label_col: str | None = None

    def __post_init__(self) -> None:
        # A length mismatch is a bug in the code that built this object, not bad user data.
        n = len(self.texts)
        for name in ("labels", "rows", "text_pairs"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"LabeledTexts: {len(value)} {name} for {n} texts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int]) -> LabeledTexts:
        """The examples at ``indices`` (any iterable of ints, e.g. a numpy array), in that order."""
        idx = [int(i) for i in indices]

        def pick(values):
            return None if values is None else [values[i] for i in idx]

        return LabeledTexts(
            texts=pick(self.texts),
            labels=pick(self.labels),
            source=self.source,
            rows=pick(self.rows),
            text_pairs=pick(self.text_pairs),
            text_col=self.text_col,
            label_col=self.label_col,
        )

    @property
    def classes(self) -> list[Any]:
        """The distinct labels, sorted (empty when there are no labels)."""
        return sorted(set(self.labels)) if self.labels is not None else []

    def class_counts(self) -> dict[Any, int]:
        """Examples per class, in sorted class order (empty when there are no labels)."""
        if self.labels is None:
            return {}
        counts = Counter(self.labels)
        return {label: counts[label] for label in sorted(counts)}
