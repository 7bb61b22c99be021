"""Validation: every bad value is a one-line DataError naming file, row and field; doubtful data warns."""

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from fewtune.data import (
    DataWarning,
    LabeledTexts,
    as_labeled,
    check_overlap,
    check_trainable,
    load_labeled,
)
from fewtune.errors import DataError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "data"


def write(tmp_path, name: str, content) -> Path:
    """A file from text (CSV/TSV/JSONL) or from a dict of columns (Parquet)."""
    path = tmp_path / name
    if isinstance(content, dict):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(content), path)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@contextmanager
def no_warnings():
    """Turn any warning into a failure inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# (file name, content, load_labeled options, substrings of the message: file, row, field, problem)
BAD_VALUES = [
    ("empty.csv", "text,label\nfine,a\n,b\n", {}, ["empty.csv, line 3, column 'text': empty text"]),
    ("blank.csv", "text,label\nfine,a\n   ,b\n", {}, ["blank.csv, line 3, column 'text': empty text"]),
    ("blank.tsv", "text\tlabel\nfine\ta\n \tb\n", {}, ["blank.tsv, line 3, column 'text': empty text"]),
    ("nolabel.csv", "text,label\nfine,a\nok,\n", {}, ["nolabel.csv, line 3, column 'label': missing label"]),
    ("spacelabel.csv", "text,label\nfine,a\nok, \n", {}, ["line 3, column 'label': missing label"]),
    ("number.jsonl", '{"text": "a", "label": "x"}\n{"text": 5, "label": "y"}\n', {}, ["number.jsonl, line 2, column 'text'", "int 5"]),
    ("null.jsonl", '{"text": null, "label": "x"}\n', {}, ["null.jsonl, line 1, column 'text'", "null"]),
    ("nokey.jsonl", '{"text": "a", "label": "x"}\n{"label": "y"}\n', {}, ["nokey.jsonl, line 2, column 'text'", "no value"]),
    ("nulllabel.jsonl", '{"text": "a", "label": null}\n', {}, ["nulllabel.jsonl, line 1, column 'label': missing label"]),
    ("nanlabel.jsonl", '{"text": "a", "label": NaN}\n', {}, ["nanlabel.jsonl, line 1, column 'label': missing label"]),
    ("listlabel.jsonl", '{"text": "a", "label": ["x", "y"]}\n', {}, ["listlabel.jsonl, line 1, column 'label'", "single label", "list"]),
    ("mixed.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "label": "1"}\n', {}, ["mixed.jsonl, line 3, column 'label'", "str", "one type"]),
    ("int.parquet", {"text": [1, 2], "label": ["a", "b"]}, {}, ["int.parquet, row 0, column 'text'", "int 1"]),
    ("null.parquet", {"text": ["a", None], "label": ["x", "y"]}, {}, ["null.parquet, row 1, column 'text'", "null"]),
    ("nolabel.parquet", {"text": ["a", "b"], "label": ["x", None]}, {}, ["nolabel.parquet, row 1, column 'label': missing label"]),
    ("pair.csv", "premise,hypothesis,label\na,b,x\nc,,y\n", {"text_col": "premise", "text_pair_col": "hypothesis"}, ["pair.csv, line 3, column 'hypothesis': empty text"]),
    ("review.csv", "text,label\na,b\n", {"text_col": "review"}, ["review.csv: no column 'review'", "'text', 'label'"]),
    ("Label.csv", "text,Label\na,b\n", {}, ["Label.csv: no column 'label'", "did you mean 'Label'"]),
    ("pairs.csv", "premise,label\na,b\n", {"text_col": "premise", "text_pair_col": "hyp"}, ["no column 'hyp'"]),
]


@pytest.mark.parametrize("name, content, options, expected", BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_bad_values_raise_one_line_data_error(tmp_path, name, content, options, expected):
    path = write(tmp_path, name, content)
    options = {"text_col": "text", "label_col": "label", **options}
    with pytest.raises(DataError) as err:
        load_labeled(path, **options)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_first_bad_row_is_named_and_the_rest_counted(tmp_path):
    path = write(tmp_path, "many.csv", "text,label\nok,a\n,b\nfine,\n,\n")
    with pytest.raises(DataError) as err:
        load_labeled(path, text_col="text", label_col="label")
    assert str(err.value) == f"{path}, line 3, column 'text': empty text (3 more problems after this one)"


def test_unlabeled_data_loads_without_a_label_column(tmp_path):
    path = write(tmp_path, "predict.csv", "text\nfirst\nsecond\nsecond\n")
    with no_warnings():  # duplicates only matter when they carry labels
        data = load_labeled(path, text_col="text", label_col=None)
    assert data.labels is None and data.texts == ["first", "second", "second"]


def test_labels_are_stripped_strings_as_read(tmp_path):
    path = write(tmp_path, "l.csv", "text,label\na, pos\nb,neg \nc,1\n")
    assert load_labeled(path, text_col="text", label_col="label").labels == ["pos", "neg", "1"]


def test_sentence_pairs(tmp_path):
    data = load_labeled(FIXTURES / "pairs.csv", text_col="premise", label_col="label", text_pair_col="hypothesis")
    assert data.text_pairs[0] == "A person makes music" and data.texts[0] == "A man plays guitar"
    assert data.text_col == "premise" and data.label_col == "label"


def test_duplicates_warn_with_count_and_first_rows(tmp_path):
    path = write(tmp_path, "dup.csv", "text,label\nGood film,pos\nbad film,neg\ngood  FILM,pos\nGood film,pos\n")
    with pytest.warns(DataWarning, match=r"dup\.csv: 2 duplicate examples .* line 2 and line 4"):
        load_labeled(path, text_col="text", label_col="label")


def test_conflicting_labels_warn(tmp_path):
    path = write(tmp_path, "conflict.csv", "text,label\nGood film,pos\nbad film,neg\ngood film,neg\n")
    with pytest.warns(DataWarning, match=r"conflict\.csv: 1 texts appear with different labels, first: line 2 \('pos'\) and line 4 \('neg'\)"):
        load_labeled(path, text_col="text", label_col="label")


def test_same_text_with_a_different_pair_is_not_a_duplicate():
    with no_warnings():
        as_labeled([("a dog", "an animal"), ("a dog", "a cat")], ["yes", "no"])


# --- in-memory data ---------------------------------------------------------------------------


def test_as_labeled_names_examples_by_index():
    data = as_labeled(["good", "bad"], np.array([1, 0]))
    assert data.rows == ["example 0", "example 1"]
    assert data.labels == [1, 0] and all(type(label) is int for label in data.labels)
    assert data.source == "input" and data.label_col is None


def test_as_labeled_accepts_pairs_and_arrays():
    data = as_labeled([("a", "b"), ["c", "d"]], ["x", "y"])
    assert data.texts == ["a", "c"] and data.text_pairs == ["b", "d"]
    data = as_labeled(np.array([["a", "b"], ["c", "d"]]), ["x", "y"])
    assert data.texts == ["a", "c"] and data.text_pairs == ["b", "d"]
    assert as_labeled(np.array(["a", "b"])).texts == ["a", "b"]


@pytest.mark.parametrize(
    "texts, labels, expected",
    [
        (["ok", " "], ["a", "b"], "input, example 1, text: empty text"),
        (["ok", None], ["a", "b"], "input, example 1, text: expected text, got null"),
        (["ok", 3.5], ["a", "b"], "input, example 1, text: expected text, got float 3.5"),
        (["ok", "fine"], ["a", None], "input, example 1, label: missing label"),
        (["ok", "fine"], ["a", float("nan")], "input, example 1, label: missing label (NaN)"),
        ([("a", "b"), "c"], ["x", "y"], "input, example 1, text: expected a (text, text_pair) pair"),
        ([("a", "b", "c")], ["x"], "input, example 0, text: expected a (text, text_pair) pair, got 3 items"),
        ([("a", "")], ["x"], "input, example 0, text_pair: empty text"),
        (["a", "b"], ["x"], "input: 2 texts but 1 labels"),
        ("one string", None, "input: texts must be a list, got a single str"),
    ],
)
def test_as_labeled_rejects_bad_values(texts, labels, expected):
    with pytest.raises(DataError) as err:
        as_labeled(texts, labels)
    assert str(err.value).startswith(expected)


# --- trainability and overlap -----------------------------------------------------------------


def test_check_trainable_accepts_enough_shots():
    data = load_labeled(FIXTURES / "reviews.csv", text_col="text", label_col="label")
    check_trainable(data)
    check_trainable(data, shots=3)


@pytest.mark.parametrize(
    "labels, shots, expected",
    [
        (None, None, "no labels"),
        (["pos", "pos", "pos"], None, "column 'label': only one class ('pos')"),
        (["pos", "pos", "neg"], 2, "column 'label': class 'neg' has 1 example, fewer than the 2 shots asked for"),
        (["a", "a", "b", "c"], 2, "class 'b' has 1 example, fewer than the 2 shots asked for (1 other class is short too)"),
        (["a", "b"], 0, "shots must be at least 1"),
    ],
)
def test_check_trainable_refuses(labels, shots, expected):
    data = LabeledTexts(
        texts=[f"t{i}" for i in range(3 if labels is None else len(labels))],
        labels=labels,
        source="my.csv",
        rows=[f"line {i + 2}" for i in range(3 if labels is None else len(labels))],
        label_col="label",
    )
    with pytest.raises(DataError) as err:
        check_trainable(data, shots=shots)
    assert expected in str(err.value)
    if labels is not None and shots != 0:
        assert str(err.value).startswith("my.csv")


def test_check_trainable_names_in_memory_field():
    with pytest.raises(DataError, match=r"^input, label: only one class \(1\)"):
        check_trainable(as_labeled(["a", "b"], [1, 1]))


def test_check_overlap_counts_and_warns():
    train = as_labeled(["A good film", "a bad film", "fine"], ["p", "n", "p"], source="train.csv")
    test = as_labeled(["a GOOD  film", "new text", "fine"], ["p", "n", "p"], source="test.csv")
    with pytest.warns(DataWarning, match=r"2 of 3 examples in test\.csv also appear in train\.csv \(first: example 0 = example 0\)"):
        assert check_overlap(train, test) == 2
    with no_warnings():
        assert check_overlap(train, as_labeled(["unseen"], ["p"])) == 0


def test_subset_keeps_everything_aligned():
    data = as_labeled([("a", "A"), ("b", "B"), ("c", "C")], ["x", "y", "x"], source="s")
    part = data.subset(np.array([2, 0]))
    assert (part.texts, part.text_pairs, part.labels, part.rows) == (["c", "a"], ["C", "A"], ["x", "x"], ["example 2", "example 0"])
    assert part.source == "s" and len(part) == 2
    assert data.classes == ["x", "y"] and data.class_counts() == {"x": 2, "y": 1}
