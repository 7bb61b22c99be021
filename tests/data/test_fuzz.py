"""Property-based tests of the data readers: whatever a file or a caller hands them, the answer is a
correct table or one clean DataError naming the source — never another exception, never a hang.

Every example runs under a 10-second alarm, so a reader that loops forever fails the test instead of
stalling the suite.
"""

import csv
import io
import json
import signal
import warnings
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fewtune.data import load_labeled
from fewtune.data.ingest import as_labeled, check_trainable
from fewtune.errors import DataError, FewtuneError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text a user might have: any unicode except surrogates (not encodable as UTF-8) and NUL (the csv
# module refuses it, a clean error we test separately). Must hold a non-space character.
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=80).filter(
    lambda s: s.strip() and s == s.strip())
label = st.sampled_from(["pos", "neg", "neutral", "спорт", "体育", "a,b", 'say "hi"'])
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=6)


@contextmanager
def alarm(seconds=10):
    def hang(signum, frame):
        raise AssertionError(f"the reader did not answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read(path, **kwargs):
    """load_labeled's answer, or the DataError it raised; anything else fails the test."""
    with alarm(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate / quoted-text warnings are fine here
        try:
            return load_labeled(path, text_col="text", label_col="label", **kwargs)
        except DataError as e:
            assert str(path) in str(e), f"the error does not name the file: {e}"
            return e


@FUZZ
@given(rows=st.lists(st.tuples(text, label), min_size=1, max_size=12), fmt=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_any_text_written_by_a_standard_writer_reads_back_exactly(tmp_path_factory, rows, fmt):
    path = tmp_path_factory.mktemp("fuzz") / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows),
                        encoding="utf-8")
    elif fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    else:
        # TSV has no quoting (IANA): a text holds no tab or line break, and its quotes are its own.
        rows = [(" ".join(t.replace("\t", " ").splitlines()) or "x", y) for t, y in rows]
        rows = [(t.strip() or "x", y) for t, y in rows]
        path.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8", newline="")
    data = read(path)
    assert not isinstance(data, Exception), data
    assert data.texts == [t for t, _ in rows]
    assert data.labels == [y for _, y in rows]


@FUZZ
@given(blob=st.binary(max_size=400), fmt=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_arbitrary_bytes_give_a_table_or_one_clean_error(tmp_path_factory, blob, fmt):
    path = tmp_path_factory.mktemp("fuzz") / f"data.{fmt}"
    path.write_bytes(b"text,label\n" + blob if fmt == "csv" else blob)
    data = read(path)
    if not isinstance(data, Exception):
        assert all(isinstance(t, str) and t.strip() for t in data.texts)
        assert len(data.labels) == len(data.texts)


@FUZZ
@given(records=st.lists(st.dictionaries(st.sampled_from(["text", "label", "other"]), json_value, max_size=3),
                        min_size=1, max_size=6))
def test_jsonl_with_wrong_types_and_missing_keys_is_read_or_refused_cleanly(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    data = read(path)
    if isinstance(data, Exception):
        assert "line" in str(data) or "column" in str(data), data
    else:
        assert all(isinstance(r.get("text"), str) for r in records)  # only real texts get through
        assert data.texts == [r["text"] for r in records]


@FUZZ
@given(texts=st.lists(st.one_of(text, json_value, st.tuples(text, text)), max_size=8),
       labels=st.one_of(st.none(), st.lists(st.one_of(label, json_value), max_size=8)))
def test_in_memory_inputs_are_validated_or_refused_cleanly(texts, labels):
    with alarm(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = as_labeled(texts, labels, source="X")
            if labels is not None:
                check_trainable(data)
        except FewtuneError as e:
            assert str(e).startswith("X"), e
            return
    assert len(data.texts) == len(texts)


@pytest.mark.parametrize("size", [1_000_000])
def test_a_huge_field_is_read_whole(tmp_path, size):
    # The csv module's default field limit (128 kB) would refuse this; a long document is not an error.
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + "x" * size + ",pos\nshort,neg\n", encoding="utf-8")
    data = read(path)
    assert not isinstance(data, Exception), data
    assert [len(t) for t in data.texts] == [size, 5]


def test_nul_bytes_and_bad_encodings_name_the_file_and_line(tmp_path):
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"text,label\nfine,pos\nbro\x00ken,neg\n")
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\nok,pos\ncaf\xe9,neg\n".encode("latin-1"))
    for path in (nul, bad):
        err = read(path)
        assert isinstance(err, DataError) and "line 3" in str(err), err
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("text,label\nok,pos\nthé,neg\n".encode("utf-16-le"))  # no byte-order mark
    assert "utf-16" in str(read(utf16)).lower()
    assert read(utf16, encoding="utf-16-le").texts == ["ok", "thé"]
