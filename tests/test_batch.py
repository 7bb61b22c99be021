"""Batch prediction over large files: read in chunks, memory flat in the file's size, a progress bar."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.batch import predict_file
from fewtune.cli import main
from fewtune.data import load_labeled
from fewtune.data.stream import stream_texts
from fewtune.errors import DataError
from fewtune.progress import observe_progress
from tests.helpers.fast import FAST_SETFIT as FAST


def write_csv(path, n: int, *, width: int = 200):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review"])
        for i in range(n):
            writer.writerow([i, f"review {i}: " + ("great, " if i % 2 else "awful \"film\", ") * (width // 8)])
    return path


class Stub:
    """A classifier that costs nothing, so the test measures the reading and writing alone."""

    classes_ = np.array(["neg", "pos"], dtype=object)
    multi_label_ = False

    def predict_proba(self, inputs):
        return np.tile([0.25, 0.75], (len(inputs), 1))


def rows_for(inputs, records=None):
    return [{"text": t, "label": "pos", "probability": 0.75} for t in inputs]


# --- reading lazily ---------------------------------------------------------------------------------
def test_chunks_hold_the_same_texts_and_row_names_as_reading_the_whole_file(tmp_path):
    path = tmp_path / "r.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review"])
        for i in range(700):
            writer.writerow([i, f"line one of {i}\nline two, \"quoted\"" if i % 100 == 0 else f"text {i} é"])
    whole = load_labeled(path, text_col="review", label_col=None)
    stream = stream_texts(path, text_col="review", chunk_rows=256)
    chunks = list(stream.chunks)
    assert [len(c.data) for c in chunks] == [256, 256, 188]
    assert [t for c in chunks for t in c.data.texts] == whole.texts
    assert [r for c in chunks for r in c.data.rows] == whole.rows  # "line N" where each record starts
    assert stream.unit == "bytes" and chunks[-1].position == stream.total == path.stat().st_size


@pytest.mark.parametrize("suffix", ["jsonl", "tsv", "parquet"])
def test_other_formats_stream_too(tmp_path, suffix):
    import pandas as pd

    texts = [f"text number {i}" for i in range(300)]
    frame = pd.DataFrame({"text": texts, "other": range(300)})
    path = tmp_path / f"t.{suffix}"
    if suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_parquet(path)
    stream = stream_texts(path, chunk_rows=128)
    chunks = list(stream.chunks)
    assert [t for c in chunks for t in c.data.texts] == texts
    assert chunks[-1].position == stream.total


@pytest.mark.parametrize("content,fragment", [
    ("id,review\n1,fine\n2,\n", "line 3, column 'review': empty text"),
    ("id,text\n1,fine\n", "no column 'review'"),
    ("id,review\n1,fine,extra\n", "line 2: 3 fields, but the header has 2 columns"),
    ("id,review\n", "no examples"),
])
def test_bad_rows_are_named_as_the_whole_file_reader_names_them(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")):
        list(stream_texts(path, text_col="review").chunks)


def test_bytes_in_another_encoding_are_reported(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("review\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8.*--encoding latin-1"):
        list(stream_texts(path, text_col="review").chunks)
    assert [c.data.texts for c in stream_texts(path, text_col="review", encoding="latin-1").chunks] == [["café"]]


# --- memory flat in the file's size -------------------------------------------------------------------
def peak_bytes(path, out) -> int:
    tracemalloc.start()
    try:
        predict_file(path, rows_for, text_col="review", output=out, show_progress=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_file_grows(tmp_path):
    small = write_csv(tmp_path / "small.csv", 2_000)
    large = write_csv(tmp_path / "large.csv", 20_000)  # ~4 MB of text
    peak_small = peak_bytes(small, tmp_path / "small.out.csv")
    peak_large = peak_bytes(large, tmp_path / "large.out.csv")
    assert large.stat().st_size > 3_000_000
    assert peak_large < 1.3 * peak_small + 100_000, (peak_small, peak_large)
    assert peak_large < large.stat().st_size / 4  # nowhere near holding the file
    with open(tmp_path / "large.out.csv", encoding="utf-8") as f:
        assert sum(1 for _ in csv.reader(f)) == 20_001


def test_the_progress_bar_follows_the_bytes_read(tmp_path):
    path = write_csv(tmp_path / "p.csv", 1_000)
    events = []
    with observe_progress(lambda *event: events.append(event)):
        predict_file(path, rows_for, text_col="review", output=tmp_path / "o.jsonl", format="jsonl",
                     show_progress=False)
    (add,) = [e for e in events if e[0] == "add"]
    assert add[3] == path.stat().st_size and "bytes" in add[2]
    assert sum(e[2] for e in events if e[0] == "advance") == path.stat().st_size
    assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 1_000


def test_a_failure_half_way_leaves_no_output_file(tmp_path):
    path = write_csv(tmp_path / "f.csv", 600)
    with open(path, "a", encoding="utf-8") as f:
        f.write("600,\n")  # an empty text in the third chunk
    with pytest.raises(DataError, match="line 602"):
        predict_file(path, rows_for, text_col="review", output=tmp_path / "out.csv", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv"]


# --- the command line -----------------------------------------------------------------------------------
def test_cli_predict_streams_a_file_in_chunks_with_the_models_probabilities(st_folder, tmp_path, capfd):
    texts = ["a great film", "wonderful", "loved it", "an awful film", "terrible", "hated it"]
    clf = FewShotClassifier(str(st_folder), params=FAST).fit(texts, ["pos"] * 3 + ["neg"] * 3)
    clf.save(tmp_path / "m")
    path = write_csv(tmp_path / "in.csv", 300, width=40)  # two chunks: 256 and 44
    assert main(["predict", str(tmp_path / "m"), str(path), "--text-col", "review", "-q", "-f", "jsonl"]) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    data = load_labeled(path, text_col="review", label_col=None)
    assert [r["review"] for r in rows] == data.texts and [r["id"] for r in rows] == [str(i) for i in range(300)]
    want = clf.predict_proba(data.texts)
    assert np.array([[r["p_neg"], r["p_pos"]] for r in rows]) == pytest.approx(want, abs=1e-6)
    assert main(["predict", str(tmp_path / "m"), str(path), "--text-col", "review"]) == 0
    captured = capfd.readouterr()
    assert "Predicting (bytes of in.csv)" in captured.err  # the progress bar, on stderr
    assert len(list(csv.DictReader(io.StringIO(captured.out)))) == 300
