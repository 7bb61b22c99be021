"""Unlabeled text for pretraining, read as a stream: files of any size, and built-in corpora by name.

    corpora = open_corpora(["reviews.txt", "imdb"])     # checked now: a missing file fails here
    for text in iter_texts(corpora, "train"): ...        # one text at a time, never the whole file

Files are read line by line, so memory stays flat however large the corpus grows:
`.txt` (one text per non-empty line), `.jsonl` (an object per line with a text field, or a JSON
string), `.csv` / `.tsv` (a header row and a text column) and `.parquet` (read in record batches).
Every problem names the file and the line (or Parquet row), as the labeled-data readers do.

Each corpus splits into a training part and a held-out part for perplexity. A file holds out a fixed
share of its texts chosen by a hash of the text (so the split never depends on the order of lines or
on a seed); a built-in corpus holds out its fixed test split, so pretraining never sees the texts a
few-shot evaluation on that data set is scored on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..data.builtin import BUILTIN_DATASETS, is_test, split_key
from ..data.stream import json_line
from ..errors import DataError

TRAIN, HELDOUT = "train", "heldout"
FILE_TYPES = (".txt", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".pq")
DIALOGUE_CORPORA = {"chitchat": "real two-person chats (chitchat-dataset), one conversation per text"}


def builtin_corpora() -> dict[str, str]:
    """Built-in corpus names and what they hold (the classification data sets' texts, labels dropped)."""
    texts = {name: f"{d.description} (texts only)" for name, d in BUILTIN_DATASETS.items()}
    return {**texts, **DIALOGUE_CORPORA}


@dataclass(frozen=True)
class Corpus:
    """One source of unlabeled text: a file, or a built-in corpus name (see `builtin_corpora`)."""

    spec: str
    text_col: str = "text"
    encoding: str = "utf-8"
    heldout: float = 0.01  # files: the share of texts held out

    @property
    def builtin(self) -> bool:
        # Built-in names win over a same-named file in the working directory ("./imdb" reaches that),
        # as backbone names do.
        return self.spec.removeprefix("builtin:") in builtin_corpora()

    def texts(self, part: str) -> Iterator[str]:
        """The texts of one part, TRAIN or HELDOUT, in file order."""
        if self.builtin:
            yield from _builtin_texts(self.spec.removeprefix("builtin:"), part)
            return
        for text in read_texts(self.spec, text_col=self.text_col, encoding=self.encoding):
            if held_out(text, self.heldout) == (part == HELDOUT):
                yield text

    def fingerprint(self) -> dict:
        """What identifies this corpus's content cheaply, so a token cache is reused only for the same text."""
        if self.builtin:
            name = self.spec.removeprefix("builtin:")
            package = BUILTIN_DATASETS[name].package if name in BUILTIN_DATASETS else "chitchat-dataset"
            try:
                version = metadata.version(package)
            except metadata.PackageNotFoundError:
                version = None
            return {"builtin": name, "package": package, "version": version}
        stat = Path(self.spec).stat()
        return {"file": str(Path(self.spec).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "text_col": self.text_col, "encoding": self.encoding, "heldout": self.heldout}


def open_corpora(specs: list[str], *, text_col: str = "text", encoding: str = "utf-8",
                 heldout: float = 0.01) -> list[Corpus]:
    """Check every corpus exists before anything is read or trained; DataError naming the first problem."""
    if not specs:
        raise DataError("no corpus given; pass a text file (.txt, .jsonl, .csv, .tsv, .parquet) or a built-in "
                        f"name ({', '.join(builtin_corpora())})")
    if not 0 <= heldout < 1:
        raise DataError(f"the held-out share must be in [0, 1), got {heldout}")
    corpora = []
    for spec in specs:
        corpus = Corpus(str(spec), text_col=text_col, encoding=encoding, heldout=heldout)
        if corpus.builtin:
            _check_installed(corpus.spec.removeprefix("builtin:"))
        else:
            _check_file(Path(spec), str(spec))
        corpora.append(corpus)
    return corpora


def iter_texts(corpora: list[Corpus], part: str) -> Iterator[str]:
    for corpus in corpora:
        yield from corpus.texts(part)


def held_out(text: str, share: float) -> bool:
    """Whether a file's text is held out: a hash of its normalised form, so duplicates stay together."""
    digest = hashlib.md5(split_key(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


# --- files ---------------------------------------------------------------------------------------
def _check_file(path: Path, source: str) -> None:
    if not path.exists():
        bare = path.suffix == "" and "/" not in source
        hint = f", and not a built-in corpus ({', '.join(builtin_corpora())})" if bare else ""
        raise DataError(f"{source}: no such file{hint}")
    if not path.is_file():
        raise DataError(f"{source}: not a file")
    if path.suffix.lower() not in FILE_TYPES:
        raise DataError(f"{source}: unsupported file type {path.suffix or '(none)'!r}; use one of "
                        f"{', '.join(FILE_TYPES)}")


def read_texts(path: str | Path, *, text_col: str = "text", encoding: str = "utf-8") -> Iterator[str]:
    """Every non-blank text of a corpus file, streamed. DataError (file, line) for anything unreadable,
    and for a file with no text at all."""
    source = str(path)
    path = Path(path)
    _check_file(path, source)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts = (line.rstrip("\r\n") for _, line in _lines(path, source, encoding))
    elif suffix in (".jsonl", ".ndjson"):
        texts = _jsonl(path, source, encoding, text_col)
    elif suffix in (".csv", ".tsv"):
        texts = _delimited(path, source, encoding, text_col, "," if suffix == ".csv" else "\t")
    else:
        texts = _parquet(path, source, text_col)
    found = False
    for text in texts:
        if text.strip():  # blank lines and empty cells separate documents in many corpora: skipped
            found = True
            yield text
    if not found:
        raise DataError(f"{source}: no text (the file is empty or blank)")


def _lines(path: Path, source: str, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) pairs; each line is decoded alone, so a bad byte names its line."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"{source}: unknown encoding {encoding!r}") from None
    if codec.name.startswith(("utf-16", "utf-32")):
        raise DataError(f"{source}: {codec.name} cannot be read line by line; convert the file to UTF-8")
    name = "utf-8-sig" if codec.name == "utf-8" else encoding  # drop a byte-order mark on the first line
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode(name if number == 1 else codec.name)
            except UnicodeDecodeError as e:
                raise DataError(f"{source}, line {number}: byte 0x{raw[e.start]:02x} is not valid {codec.name}; "
                                "pass the file's encoding, e.g. --encoding latin-1") from None
            yield number, line


def _jsonl(path: Path, source: str, encoding: str, text_col: str) -> Iterator[str]:
    for number, line in _lines(path, source, encoding):
        if not line.strip():
            continue
        record = json_line(line, source, number)
        if isinstance(record, dict):
            if text_col not in record:
                raise DataError(f"{source}, line {number}: no field {text_col!r} (fields: "
                                f"{', '.join(map(repr, record)) or 'none'}); pass --text-col")
            record = record[text_col]
        if record is None:
            continue
        if not isinstance(record, str):
            raise DataError(f"{source}, line {number}: expected text in {text_col!r}, got {type(record).__name__}")
        yield record


def _delimited(path: Path, source: str, encoding: str, text_col: str, delimiter: str) -> Iterator[str]:
    lines = _lines(path, source, encoding)
    numbers = []  # the line number where each line handed to csv starts

    def feed() -> Iterator[str]:
        for number, line in lines:
            numbers.append(number)
            yield line

    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE  # TSV has no quoting (as in data.readers)
    reader = csv.reader(feed(), delimiter=delimiter, quoting=quoting)
    old_limit = csv.field_size_limit(2**31 - 1)  # a long document is legitimate
    try:
        header, column, end = None, 0, 0
        for fields in reader:
            line, end = end + 1, numbers[-1]  # a quoted field may span lines: the record starts after the last
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                if text_col not in header:
                    raise DataError(f"{source}, line {line}: no column {text_col!r}; columns are "
                                    f"{', '.join(map(repr, header))} (pass --text-col)")
                column = header.index(text_col)
                continue
            if len(fields) != len(header):
                raise DataError(f"{source}, line {line}: {len(fields)} fields, but the header has {len(header)} "
                                "columns (put text that contains a comma in double quotes)")
            yield fields[column]
    except csv.Error as e:
        raise DataError(f"{source}, line {end + 1}: cannot parse: {e}") from None
    finally:
        csv.field_size_limit(old_limit)


def _parquet(path: Path, source: str, text_col: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{source}: cannot read as Parquet ({e})") from None
    if text_col not in table.schema_arrow.names:
        raise DataError(f"{source}: no column {text_col!r}; columns are "
                        f"{', '.join(map(repr, table.schema_arrow.names))} (pass --text-col)")
    row = 0
    for batch in table.iter_batches(batch_size=1024, columns=[text_col]):
        for value in batch.column(0).to_pylist():
            if value is not None and not isinstance(value, str):
                raise DataError(f"{source}, row {row}: expected text in {text_col!r}, got {type(value).__name__}")
            row += 1
            if value is not None:
                yield value


# --- built-in corpora ----------------------------------------------------------------------------
def _check_installed(name: str) -> None:
    if name in BUILTIN_DATASETS:
        dataset = BUILTIN_DATASETS[name]
        if dataset.location() is None:
            raise DataError(f"built-in corpus {name!r} needs the package {dataset.package}: {dataset.install_command}")
    else:
        import importlib.util

        chitchat = _dialogues().CHITCHAT
        if importlib.util.find_spec(chitchat["module"]) is None:
            raise DataError(f"built-in corpus {name!r} needs the package {chitchat['package']}: "
                            f"pip install --no-deps {chitchat['package']}=={chitchat['version']}")


def _builtin_texts(name: str, part: str) -> Iterator[str]:
    if name in DIALOGUE_CORPORA:
        train, test = _dialogues().load_dialogues(name)
        for chat in test if part == HELDOUT else train:
            yield "\n".join(m["content"] for m in chat)
        return
    dataset = BUILTIN_DATASETS[name]
    # The data set's own reader and its own test rule (a hash of the text): the held-out part is
    # exactly the test split that few-shot runs on this data set are scored on.
    for text, _label, _row in dataset.read(dataset.location(), f"builtin:{name}"):
        if text.strip() and is_test(text) == (part == HELDOUT):
            yield text


def _dialogues():
    """The dialogue data sets' module (chitchat), whose package also holds FewShotGenerator."""
    from ..generation import builtin  # why: the generation package imports torch; reading a text corpus needs none

    return builtin
