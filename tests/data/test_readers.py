"""Reading CSV, TSV, JSONL and Parquet: same content in, same examples out; broken files named."""

import json
import re
import warnings
from pathlib import Path

import pytest

from fewtune.data import DataWarning, load_labeled, read_table
from fewtune.errors import DataError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "data"
EXPECTED_TEXTS = [
    "A warm, funny film",
    "Dull and far too long",
    'She said "wow" twice',
    "Café scenes shine ☕",
    "Nothing happens",
    "Two hours, no plot",
]
EXPECTED_LABELS = ["pos", "neg", "pos", "pos", "neg", "neg"]


def write_parquet(path, columns: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture
def reviews_parquet(tmp_path):
    return write_parquet(tmp_path / "reviews.parquet", {"text": EXPECTED_TEXTS, "label": EXPECTED_LABELS})


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.tsv", "reviews.jsonl"])
def test_text_formats_load_identically(name):
    data = load_labeled(FIXTURES / name, text_col="text", label_col="label")
    assert data.texts == EXPECTED_TEXTS
    assert data.labels == EXPECTED_LABELS
    assert data.source == str(FIXTURES / name)


def test_parquet_loads_identically_and_names_rows_by_index(reviews_parquet):
    data = load_labeled(reviews_parquet, text_col="text", label_col="label")
    assert (data.texts, data.labels) == (EXPECTED_TEXTS, EXPECTED_LABELS)
    assert data.rows[:2] == ["row 0", "row 1"]


def test_other_extensions_are_aliases(tmp_path, reviews_parquet):
    for fixture, alias in [("reviews.tsv", "r.tab"), ("reviews.jsonl", "r.ndjson"), ("reviews.csv", "R.CSV")]:
        (tmp_path / alias).write_bytes((FIXTURES / fixture).read_bytes())
        assert load_labeled(tmp_path / alias, text_col="text", label_col="label").texts == EXPECTED_TEXTS
    (tmp_path / "r.pq").write_bytes(reviews_parquet.read_bytes())
    assert load_labeled(tmp_path / "r.pq", text_col="text", label_col="label").texts == EXPECTED_TEXTS


def test_rows_are_named_by_the_line_where_the_record_starts(tmp_path):
    # The quoted text spans lines 3-4, a blank line follows, so the last record starts on line 6.
    path = tmp_path / "multi.csv"
    path.write_text('text,label\nfirst,a\n"two\nlines",b\n\nlast,a\n', encoding="utf-8")
    columns, records, rows = read_table(path)
    assert columns == ["text", "label"]
    assert rows == ["line 2", "line 3", "line 6"]
    assert records[1] == {"text": "two\nlines", "label": "b"}


def test_jsonl_rows_count_blank_lines():
    data = load_labeled(FIXTURES / "reviews.jsonl", text_col="text", label_col="label")
    assert data.rows == ["line 1", "line 2", "line 4", "line 5", "line 6", "line 7"]


def test_csv_cells_stay_text(tmp_path):
    # pandas would turn "NA" into NaN and "007" into 7; a reader for text must not.
    path = tmp_path / "t.csv"
    path.write_text("text,label,extra\nNA,007,\nnan,1.0,x\n", encoding="utf-8")
    _, records, _ = read_table(path)
    assert records == [{"text": "NA", "label": "007", "extra": ""}, {"text": "nan", "label": "1.0", "extra": "x"}]


def test_jsonl_and_parquet_keep_value_types(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n', encoding="utf-8")
    assert load_labeled(path, text_col="text", label_col="label").labels == [1, 0]
    pq_path = write_parquet(tmp_path / "t.parquet", {"text": ["a", "b"], "label": [True, False]})
    assert load_labeled(pq_path, text_col="text", label_col="label").labels == [True, False]


def test_utf8_bom_is_skipped(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,a\n".encode("utf-8"))
    assert read_table(path)[0] == ["text", "label"]


def test_undecodable_bytes_name_line_offset_and_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nfine,a\nCafé au lait,b\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_labeled(path, text_col="text", label_col="label")
    message = str(err.value)
    offset = path.read_bytes().index(b"\xe9")
    assert "latin.csv, line 3" in message and f"byte offset {offset}" in message
    assert "--encoding latin-1" in message and "\n" not in message
    data = load_labeled(path, text_col="text", label_col="label", encoding="latin-1")
    assert data.texts == ["fine", "Café au lait"]


def test_tsv_quotes_are_part_of_the_text(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('text\tlabel\n"Great" they said\tpos\n"unclosed quote\tneg\n', encoding="utf-8")
    data = load_labeled(path, text_col="text", label_col="label")
    assert data.texts == ['"Great" they said', '"unclosed quote']


def test_tsv_with_csv_style_quoting_warns(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('text\tlabel\nplain\ta\n"She said ""hi"""\tb\n', encoding="utf-8")
    with pytest.warns(DataWarning, match=r"q\.tsv: 1 rows .*line 3"):
        read_table(path)


def test_clean_files_do_not_warn(reviews_parquet):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ["reviews.csv", "reviews.tsv", "reviews.jsonl"]:
            load_labeled(FIXTURES / name, text_col="text", label_col="label")
        load_labeled(reviews_parquet, text_col="text", label_col="label")


def test_long_fields_are_not_limited(tmp_path):
    long_text = "word " * 60_000  # 300 kB, past the csv module's default 128 kB field limit
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{long_text}",a\n', encoding="utf-8")
    assert read_table(path)[1][0]["text"] == long_text


# Broken files: (file name, content, substrings the one-line message must contain).
BROKEN_FILES = [
    ("empty.csv", "", ["empty.csv", "empty"]),
    ("blank.csv", "\n\n", ["blank.csv", "empty"]),
    ("header.csv", "text,label\n", ["header.csv", "only a header"]),
    ("header.tsv", "text\tlabel\n\n", ["header.tsv", "only a header"]),
    ("empty.jsonl", "\n", ["empty.jsonl", "empty"]),
    ("ragged.csv", "text,label\nok,a\ntoo,many,fields\n", ["ragged.csv, line 3", "3 fields", "2 columns"]),
    ("short.csv", "text,label\nok,a\nno label here\n", ["short.csv, line 3", "1 field,"]),
    ("ragged.tsv", "text\tlabel\nok\ta\nx\ty\tz\n", ["ragged.tsv, line 3", "3 fields"]),
    ("unclosed.csv", 'text,label\nok,a\n"never closed,b\nmore,a\n', ["unclosed.csv, line 3", "unclosed"]),
    ("twice.csv", "text,text\na,b\n", ["twice.csv, line 1", "'text'", "twice"]),
    ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label: "y"}\n', ["bad.jsonl, line 2", "not valid JSON"]),
    ("list.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n', ["list.jsonl, line 2", "JSON object", "array"]),
    ("scalar.jsonl", '\n"just a string"\n', ["scalar.jsonl, line 2", "JSON object"]),
    ("pretty.jsonl", '{\n  "text": "a"\n}\n', ["pretty.jsonl, line 1", "one complete object per line"]),
    ("data.txt", "text,label\na,b\n", ["data.txt", "unsupported", ".csv", ".jsonl", ".parquet"]),
    ("noext", "text,label\na,b\n", ["noext", "unsupported"]),
    ("corrupt.parquet", "this is not parquet", ["corrupt.parquet", "Parquet"]),
]


@pytest.mark.parametrize("name, content, expected", BROKEN_FILES, ids=[case[0] for case in BROKEN_FILES])
def test_broken_files_raise_one_line_data_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_missing_file_and_empty_parquet(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        read_table(tmp_path / "nope.csv")
    path = write_parquet(tmp_path / "none.parquet", {"text": [], "label": []})
    with pytest.raises(DataError, match="none.parquet: no examples"):
        read_table(path)


def test_unknown_encoding(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text\na\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        read_table(path, encoding="klingon")


def _save_to_disk_layout(folder, texts, label_ids, names):
    """What datasets' Dataset.save_to_disk writes (Arrow IPC stream + dataset_info.json), written with
    pyarrow so the test needs no `datasets`."""
    import pyarrow as pa

    folder.mkdir()
    table = pa.table({"text": texts, "label": pa.array(label_ids, pa.int64())})
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    info = {"features": {"text": {"dtype": "string", "_type": "Value"},
                         "label": {"names": names, "_type": "ClassLabel"}}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    return folder


def test_a_folder_saved_by_datasets_reads_with_its_class_names(tmp_path):
    from fewtune.data import load_labeled

    folder = _save_to_disk_layout(tmp_path / "ds", ["good film", "bad film", "great", "awful"], [1, 0, 1, 0],
                                  ["neg", "pos"])
    data = load_labeled(folder, text_col="text", label_col="label")
    assert data.texts == ["good film", "bad film", "great", "awful"] and data.labels == ["pos", "neg", "pos", "neg"]


def test_a_dataset_dict_folder_names_its_splits(tmp_path):
    from fewtune.data import load_labeled

    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    with pytest.raises(DataError, match="splits train, test; give one split's folder"):
        load_labeled(tmp_path / "dd", text_col="text", label_col="label")
    with pytest.raises(DataError, match="not one saved by datasets"):
        load_labeled(tmp_path, text_col="text", label_col="label")


@pytest.mark.parametrize("content, fragment", [
    (b"PK\x03\x04" + bytes(range(256)) * 4, "binary data (an Excel workbook? save it as CSV)"),
    (bytes(range(256)) * 8, "not a text file but binary data"),
    (b"text,label\ngood\x00 film,pos\nbad film,neg\n", "a stray NUL character"),
    ("text,label\ngood film,pos\n".encode("utf-16-le"), "looks like UTF-16"),
])
def test_binary_files_stray_nuls_and_utf16_each_get_their_own_message(tmp_path, content, fragment):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(fragment)) as err:
        read_table(path)
    assert ("utf-16" in str(err.value).lower()) == ("UTF-16" in fragment)


def test_a_stray_opening_quote_that_swallows_rows_is_reported_by_line(tmp_path):
    # The quote on line 3 runs to the next quote, on line 5: three rows become one example.
    path = tmp_path / "stray.csv"
    path.write_text('text,label\nfine,pos\n"stray start,pos\nanother row,neg\nthird "quoted" word,neg\nlast,pos\n',
                    encoding="utf-8")
    with pytest.warns(DataWarning, match=r"stray\.csv, line 3: a quoted text runs to line 5.*quote left unclosed"):
        data = load_labeled(path, text_col="text", label_col="label")
    assert len(data) == 3  # read as before (one example), but no longer silently


def test_a_real_multi_line_text_is_not_taken_for_swallowed_rows(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,label\nfine,pos\n"a long, careful\nreview over lines",neg\nlast,pos\n', encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_labeled(path, text_col="text", label_col="label")
    assert data.texts[1] == "a long, careful\nreview over lines"


@pytest.mark.parametrize("content", [b"PK\x03\x04" + bytes(range(256)) * 4, bytes(range(32)) * 50])
def test_streaming_a_binary_file_says_binary_as_reading_it_whole_does(tmp_path, content):
    from fewtune.data.stream import stream_texts

    path = tmp_path / "texts.csv"
    path.write_bytes(content)
    for read in (lambda: read_table(path), lambda: list(stream_texts(path).chunks)):  # train's and predict's readers
        with pytest.raises(DataError, match=r"texts\.csv: not a text file but binary data") as err:
            read()
        assert "--encoding" not in str(err.value)


def test_streaming_names_the_offset_of_the_undecodable_byte_not_how_far_it_has_read(tmp_path):
    from fewtune.data.stream import stream_texts

    path = tmp_path / "latin.csv"
    head = b"text\n" + b"plain ascii line\n" * 1000
    path.write_bytes(head + "Caf\xe9\n".encode("latin-1") + b"more\n" * 5000)
    with pytest.raises(DataError, match=rf"near byte {len(head) + 3} ") as err:
        list(stream_texts(path).chunks)
    assert "--encoding latin-1" in str(err.value)
