"""Review data for the command-line tests: a user's own CSV with its own column names, and checks of
`predict` output."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.fast import FAST_SETFIT, as_options


FAST = as_options(FAST_SETFIT)
POS = ["great", "excellent", "wonderful", "loved"]
NEG = ["awful", "terrible", "boring", "hated"]
HEADER = ["id", "review", "sentiment"]  # deliberately not the default text/label column names

# Texts to predict on: commas, quotes, non-ASCII and (file input only) an embedded newline, so the
# CSV output has to quote properly to round-trip.
PREDICT_TEXTS = [
    "I loved it, a wonderful and great film",
    'She called it "awful": terrible, boring, hated it',
    "Café society: excellent acting, loved the score",
    "The plot was boring and the ending terrible",
    "Neither here nor there",
]
MULTILINE_TEXT = "hated every minute\nof this awful film"


def review_rows(n_per_class: int = 20) -> list[list[str]]:
    rows = []
    for i in range(n_per_class):
        a, b = POS[i % 4], POS[(i + 1) % 4]
        rows.append([f"p{i}", f"a {a} film, truly {b} from start to end (review {i})", "positive"])
        a, b = NEG[i % 4], NEG[(i + 1) % 4]
        rows.append([f"n{i}", f"an {a} film, truly {b} from start to end (review {i})", "negative"])
    return rows


def read_csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def proba_columns(row: dict, classes) -> np.ndarray:
    return np.array([float(row[f"p_{c}"]) for c in classes])


def tree(folder: Path) -> set[str]:
    """Every path below `folder`, hidden ones included: what a command must not leave behind."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def train_args(data: Path, output: Path, backbone, *extra: str) -> list[str]:
    return ["train", "--data", data, "--text-col", "review", "--label-col", "sentiment", "--shots", "8",
            "-o", output, "--backbone", backbone, *FAST, *extra]


def check_predictions(rows: list[dict], texts: list[str], classes, expected: np.ndarray,
                      text_col: str = "review") -> None:
    """Rows of `predict` output: one per text (in the input's text column), in order, probabilities equal to
    `expected`."""
    assert [r[text_col] for r in rows] == texts
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        got = proba_columns(row, classes)
        assert got == pytest.approx(want, abs=1e-6)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == str(classes[int(np.argmax(got))])
        assert float(row["probability"]) == pytest.approx(got.max(), abs=1e-6)
