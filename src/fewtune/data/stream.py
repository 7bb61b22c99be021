"""Read the texts of a large file a chunk at a time, so memory stays flat whatever the file's size.

`read_table` holds a whole file (its bytes, its text and every record) at once, which training data
can afford and a million rows to label cannot. The same formats, the same row names ("line N",
"row N") and the same one-line DataErrors, a chunk of rows at a time; `position` says how far into
the file a chunk ends (bytes for text formats, rows for Parquet), for a progress bar.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .labeled import LabeledTexts
from .readers import FORMATS, _check_header, _json_type, _ragged_message, _unlimited_fields, byte_kind, encoding_guess
from .ingest import _MISSING, _build, _missing_column_message


@dataclass
class Chunk:
    data: LabeledTexts  # texts (and text pairs) of this chunk, validated; rows named as in the file
    position: int  # bytes (CSV, TSV, JSONL) or rows (Parquet) of the file read so far
    records: list[dict] = field(default_factory=list)  # each row's every column, as read (predict keeps them)


@dataclass
class TextStream:
    total: int  # the file's size in bytes, or its number of rows for Parquet
    unit: str  # "bytes" or "rows"
    chunks: Iterator[Chunk]


def stream_texts(path: str | Path, *, text_col: str = "text", text_pair_col: str | None = None,
                 encoding: str = "utf-8", chunk_rows: int = 256) -> TextStream:
    """The texts of `path` in chunks of `chunk_rows`; the file is opened and its header checked now."""
    source, path = str(path), Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{source}: unsupported file type {path.suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError(f"{source}: no such file" if not path.exists() else f"{source}: not a file")
    columns = (text_col, text_pair_col)
    if fmt == "parquet":
        return _parquet(path, source, columns, chunk_rows)
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"{source}: unknown encoding {encoding!r}") from None
    with open(path, "rb") as f:
        kind = byte_kind(f.read(4096), source)  # binary data is named as such, not as a wrong encoding
    raw = _CountingReader(open(path, "rb"))
    # "utf-8-sig" drops the byte-order mark Excel writes; newline="" hands csv the raw line endings.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig" if codec.name == "utf-8" else encoding,
                            newline="" if fmt != "jsonl" else "\n")
    records = _jsonl(text, source) if fmt == "jsonl" else _delimited(text, source, "," if fmt == "csv" else "\t")
    guess = encoding_guess(kind)
    return TextStream(path.stat().st_size, "bytes", _chunks(records, source, columns, chunk_rows, lambda: raw.count,
                                                           text, codec.name, guess))


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read through it (the progress of a text stream over it)."""

    def __init__(self, f):
        self.f, self.count = f, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


def _delimited(text: io.TextIOWrapper, source: str, delimiter: str) -> Iterator[tuple]:
    """(row name, record) pairs; the first item is the header's column list. As readers.read_delimited."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(text, delimiter=delimiter, quoting=quoting)
    header = None
    start = 1
    with _unlimited_fields():
        try:
            for fields in reader:
                line, start = start, reader.line_num + 1
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if header is None:
                    header = _check_header([f.strip() for f in fields], source, line)
                    yield header
                    continue
                if len(fields) != len(header):
                    raise DataError(_ragged_message(source, line, start - 1, len(fields), len(header), delimiter))
                yield f"line {line}", dict(zip(header, fields))
        except csv.Error as e:
            raise DataError(f"{source}, line {start}: cannot parse: {e}") from None
    if header is None:
        raise DataError(f"{source}: the file is empty")


def json_line(line: str, source: str, number: int):
    """One JSONL line parsed, or a DataError naming the file and line (shared with pretraining corpora)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{source}, line {number}: not valid JSON ({e.msg} at column {e.colno}); "
                        "JSONL needs one complete object per line") from None


def _jsonl(text: io.TextIOWrapper, source: str) -> Iterator:
    yield None  # JSONL has no header: columns are checked record by record
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        record = json_line(line, source, number)
        if not isinstance(record, dict):
            raise DataError(f"{source}, line {number}: expected a JSON object, got {_json_type(record)}")
        yield f"line {number}", record


def _chunks(records: Iterator, source: str, columns: tuple, chunk_rows: int, position, text, codec: str, guess: str):
    text_col, pair_col = columns
    try:
        header = next(records)
        for col in columns:
            if header is not None and col is not None and col not in header:
                raise DataError(_missing_column_message(source, col, header))
        rows, batch, seen = [], [], 0
        for row, record in records:
            rows.append(row)
            batch.append(record)
            seen += 1
            if len(batch) == chunk_rows:
                yield Chunk(_validated(source, rows, batch, columns), position(), batch)
                rows, batch = [], []
        if batch:
            yield Chunk(_validated(source, rows, batch, columns), position(), batch)
        if not seen:
            raise DataError(f"{source}: no examples (the file is empty or has only a header)")
    except UnicodeDecodeError as e:
        at = position() - len(e.object) + e.start  # position() is what the reader has buffered, past the byte
        raise DataError(f"{source}: bytes that are not valid {codec} near byte {at} ({e.reason}); pass "
                        f"the file's encoding, e.g. --encoding {guess}") from None
    finally:
        text.close()


def _validated(source: str, rows: list[str], records: list[dict], columns: tuple) -> LabeledTexts:
    text_col, pair_col = columns
    return _build(source, rows, texts=[r.get(text_col, _MISSING) for r in records],
                  pairs=None if pair_col is None else [r.get(pair_col, _MISSING) for r in records], labels=None,
                  fields=(f"column {text_col!r}", f"column {pair_col!r}", "label"), text_col=text_col, label_col=None)


def _parquet(path: Path, source: str, columns: tuple, chunk_rows: int) -> TextStream:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{source}: cannot read as Parquet ({e})") from None
    names = f.schema_arrow.names
    wanted = [c for c in columns if c is not None]
    for col in wanted:
        if col not in names:
            raise DataError(_missing_column_message(source, col, names))

    def chunks() -> Iterator[Chunk]:
        done = 0
        for batch in f.iter_batches(batch_size=chunk_rows):
            records = batch.to_pylist()
            rows = [f"row {done + i}" for i in range(len(records))]
            done += len(records)
            yield Chunk(_validated(source, rows, records, columns), done, records)

    return TextStream(f.metadata.num_rows, "rows", chunks())
