"""Read a table of examples from CSV, TSV, JSONL or Parquet, keeping text as text.

``read_table`` returns ``(columns, records, rows)``: the column names in file order, one dict per
example (column name -> value), and one name per example for messages. Values are exactly what the
file holds: every CSV/TSV cell is a ``str`` (an empty cell is ``""``, never NaN, so that "missing
text" is reported as such instead of turning into the string "nan"); JSONL and Parquet keep their
types (str, int, float, bool, None, ...). A JSONL record without some key simply lacks it.

Row names point where a user can look: "line N" for CSV/TSV/JSONL is the line in the file where the
record starts (the header is line 1), as an editor shows it; "row N" for Parquet is the 0-based
record index, as pandas shows it.

Everything wrong with the file itself raises DataError naming the file and, where there is one,
the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from fewtune.errors import DataError

from .labeled import DataWarning

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

Table = tuple[list[str], list[dict[str, Any]], list[str]]


def read_table(path: str | Path, *, encoding: str = "utf-8") -> Table:
    """Read ``path`` as a table, choosing the format by its extension.

    Returns ``(columns, records, rows)`` as described in the module docstring. ``encoding`` applies
    to the text formats (Parquet strings are always UTF-8); a UTF-8 byte-order mark is skipped.
    """
    source = str(path)
    path = Path(path)
    if path.is_dir():
        columns, records, rows = _read_saved_dataset(path, source)
        if not records:
            raise DataError(f"{source}: no examples (the dataset is empty)")
        return columns, records, rows
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(FORMATS)
        raise DataError(f"{source}: unsupported file type {path.suffix or '(none)'!r}; use one of {supported}")
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if not path.is_file():
        raise DataError(f"{source}: not a file")
    if fmt == "parquet":
        columns, records, rows = _read_parquet(path, source)
    else:
        text = decode_bytes(path.read_bytes(), source, encoding)
        if fmt == "jsonl":
            columns, records, rows = _read_jsonl(text, source)
        else:
            columns, records, rows = read_delimited(text, source, delimiter="," if fmt == "csv" else "\t")
    if not records:
        raise DataError(f"{source}: no examples (the file is empty or has only a header)")
    return columns, records, rows


def _byte_kind(data: bytes) -> str:
    """"utf-16" (a byte-order mark, or a NUL in every other byte as ASCII in UTF-16 has), "binary" (a known
    binary signature, NULs in many places or many control bytes), else "text" (a stray NUL is still text)."""
    head = data[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith((b"PK\x03\x04", b"%PDF", b"\x89PNG", b"\x1f\x8b", b"\xd0\xcf\x11\xe0")):
        return "binary"
    if len(head) >= 8 and max(head[0::2].count(0), head[1::2].count(0)) > 0.3 * len(head) / 2:
        return "utf-16"
    controls = sum(b < 9 or 13 < b < 32 for b in head)  # bytes no text holds (tab, newlines and CR aside)
    return "binary" if head.count(0) > max(2, len(head) // 400) or controls > len(head) // 10 else "text"


def byte_kind(data: bytes, source: str) -> str:
    """_byte_kind of the file's first bytes; binary data is an error naming the file (read whole or streamed)."""
    kind = _byte_kind(data)
    if kind == "binary":
        excel = " (an Excel workbook? save it as CSV)" if data.startswith(b"PK\x03\x04") else ""
        raise DataError(f"{source}: not a text file but binary data{excel}; give a CSV, TSV, JSONL or Parquet file")
    return kind


def encoding_guess(kind: str) -> str:
    """The --encoding to suggest for a file of this byte_kind that did not decode."""
    return "utf-16" if kind == "utf-16" else "latin-1"


def decode_bytes(data: bytes, source: str, encoding: str) -> str:
    """Decode a whole file, reporting the line and byte offset of the first undecodable byte."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"{source}: unknown encoding {encoding!r}") from None
    # "utf-8-sig" decodes plain UTF-8 too and drops the byte-order mark Excel and Notepad write;
    # left in, the mark would glue itself to the first column name ("\ufefftext").
    name = "utf-8-sig" if codec.name == "utf-8" else encoding
    kind = byte_kind(data, source)
    try:
        text = data.decode(name)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        guess = encoding_guess(kind)
        raise DataError(
            f"{source}, line {line}: byte 0x{data[e.start]:02x} at byte offset {e.start} is not valid "
            f"{codec.name}; pass the file's encoding, e.g. --encoding {guess}"
        ) from None
    if "\x00" in text:
        at = text.index("\x00")
        where = f"{source}, line {text.count(chr(10), 0, at) + 1}"
        if kind == "utf-16":  # UTF-16 read as UTF-8 puts a NUL after every ASCII letter
            raise DataError(f"{where}: NUL characters; the file looks like UTF-16: pass --encoding utf-16")
        raise DataError(f"{where}: a stray NUL character at offset {at}; no text holds one: remove it")
    return text.removeprefix("\ufeff")


@contextmanager
def _unlimited_fields() -> Iterator[None]:
    """Lift the csv module's 128 KiB field limit while reading.

    Long documents are legitimate, and a runaway field (an unclosed quote) is better reported as
    the ragged record it produces, with a hint, than as "field larger than field limit".
    """
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_delimited(text: str, source: str, *, delimiter: str) -> Table:
    """Parse CSV (``delimiter=","``) or TSV (``"\\t"``) text that has a header row.

    CSV follows RFC 4180 quoting. TSV is read without quote processing, as the IANA TSV format and
    GLUE-style files intend: a quote character is part of the text, so a sentence that starts with
    '"' is not silently unquoted or merged with the following lines.
    """
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    # newline="" hands the csv module the raw line endings, which it needs for quoted newlines.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    records: list[dict[str, Any]] = []
    rows: list[str] = []
    start = 1  # the line where the next record starts
    suspects: list[tuple[int, int, list[str]]] = []  # quoted texts over several lines: (line, end, first line's parts)
    with _unlimited_fields():
        try:
            for fields in reader:
                line, start = start, reader.line_num + 1
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if header is None:
                    header = _check_header([f.strip() for f in fields], source, line)
                    continue
                if len(fields) != len(header):
                    raise DataError(_ragged_message(source, line, start - 1, len(fields), len(header), delimiter))
                records.append(dict(zip(header, fields)))
                rows.append(f"line {line}")
                if start - 1 > line:
                    suspects.extend(_row_like_start(fields, len(header), delimiter, line, start - 1))
        except csv.Error as e:
            raise DataError(f"{source}, line {start}: cannot parse: {e}") from None
    if header is None:
        raise DataError(f"{source}: the file is empty")
    _warn_if_swallowed(suspects, records, header, source)
    if delimiter == "\t":
        _warn_if_quoted(records, rows, source)
    return header, records, rows


def _row_like_start(fields: list[str], n_columns: int, delimiter: str, line: int, end: int) -> list:
    """A quoted field over several lines whose first line splits into the fields the row still needs."""
    for j, value in enumerate(fields):
        if "\n" in value:
            parts = value.split("\n", 1)[0].rstrip("\r").split(delimiter)
            return [(line, end, parts)] if len(parts) == n_columns - j and all(p.strip() for p in parts) else []
    return []


def _warn_if_swallowed(suspects: list, records: list[dict[str, Any]], header: list[str], source: str) -> None:
    """Warn when a stray opening quote (`"great film,positive`) swallowed the line breaks up to the next quote,
    turning the rows between into one text: the quoted field's first line reads as the rest of a row, its last
    piece a value the file's last column holds elsewhere (a label, usually). A real multi-line text rarely does."""
    if not suspects:
        return
    last_column = {record[header[-1]] for record in records}
    for line, end, parts in suspects:
        if parts[-1] in last_column:
            first = ",".join(parts)
            warnings.warn(f"{source}, line {line}: a quoted text runs to line {end}, and its first line reads as a "
                          f"whole row ({first[:60]!r}); is a quote left unclosed? Lines {line}-{end} were read as one "
                          "example", DataWarning, stacklevel=5)
            return


def _check_header(header: list[str], source: str, line: int) -> list[str]:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{source}, line {line}: column {name!r} appears twice in the header")
        seen.add(name)
    return header


def _ragged_message(source: str, line: int, end: int, n_fields: int, n_columns: int, delimiter: str) -> str:
    sep = "comma" if delimiter == "," else "tab"
    fields = "1 field" if n_fields == 1 else f"{n_fields} fields"
    msg = f"{source}, line {line}: {fields}, but the header has {n_columns} columns"
    if end > line:
        # Only a quoted field can span lines; a record this long usually means an unclosed quote.
        return f"{msg} (the record runs to line {end}: is a quote left unclosed?)"
    if n_fields < n_columns:
        return f"{msg} (every row needs one value per column; an empty value is fine)"
    if delimiter == ",":
        return f"{msg} (put text that contains a {sep} in double quotes)"
    return f"{msg} (a text cannot contain a {sep} in TSV)"


def _warn_if_quoted(records: list[dict[str, Any]], rows: list[str], source: str) -> None:
    """Warn when TSV cells look CSV-quoted ('"a ""b"" c"'): their quotes stay in the text."""
    quoted = [
        row
        for record, row in zip(records, rows)
        if any(len(v) > 2 and v[0] == v[-1] == '"' and '""' in v for v in record.values())
    ]
    if quoted:
        warnings.warn(
            f"{source}: {len(quoted)} rows have cells that look quoted CSV-style (first: {quoted[0]}); "
            "TSV is read without quote processing, so the quotes stay in the text. If the file quotes "
            "its fields, save it as .csv",
            DataWarning,
            stacklevel=4,
        )


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _read_jsonl(text: str, source: str) -> Table:
    columns: dict[str, None] = {}  # an ordered set: columns in order of first appearance
    records: list[dict[str, Any]] = []
    rows: list[str] = []
    # Split on "\n" only: str.splitlines would also split at U+2028 and other characters that JSON
    # strings may legally contain unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{source}, line {number}: not valid JSON ({e.msg} at column {e.colno}); "
                "JSONL needs one complete object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f'{source}, line {number}: expected a JSON object such as {{"text": ..., "label": ...}}, '
                f"got {_json_type(record)}"
            )
        columns.update(dict.fromkeys(record))
        records.append(record)
        rows.append(f"line {number}")
    return list(columns), records, rows


def _read_parquet(path: Path, source: str) -> Table:
    # Imported here: pyarrow takes about half a second to import and most runs read CSV.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{source}: cannot read as Parquet ({e})") from None
    columns = table.column_names
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"{source}: column {twice[0]!r} appears twice")
    records = table.to_pylist()
    return columns, records, [f"row {i}" for i in range(len(records))]


def _read_saved_dataset(path: Path, source: str) -> Table:
    """A folder written by `datasets.Dataset.save_to_disk` (Arrow files + dataset_info.json), read with
    pyarrow alone: `datasets` is not needed. A ClassLabel column gives its label names, not integers."""
    import pyarrow as pa

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise DataError(f"{source}: a DatasetDict with splits {', '.join(splits)}; give one split's folder, "
                        f"e.g. {path / (splits[0] if splits else 'train')}")
    info_file = path / "dataset_info.json"
    files = sorted(path.glob("*.arrow"))
    if not info_file.is_file() or not files:
        raise DataError(f"{source}: a folder, but not one saved by datasets' save_to_disk (no dataset_info.json "
                        "and .arrow files); give a CSV, TSV, JSONL or Parquet file")
    try:
        tables = []
        for file in files:
            with pa.memory_map(str(file)) as stream:
                tables.append(pa.ipc.open_stream(stream).read_all())
        table = pa.concat_tables(tables)
        features = json.loads(info_file.read_text(encoding="utf-8")).get("features") or {}
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{source}: cannot read the saved dataset ({e})") from None
    records = table.to_pylist()
    for column, feature in features.items():
        names = feature.get("names") if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" else None
        if names:
            for record in records:
                value = record.get(column)
                if isinstance(value, int) and 0 <= value < len(names):
                    record[column] = names[value]
    return table.column_names, records, [f"row {i}" for i in range(len(records))]
