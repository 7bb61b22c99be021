"""Batch prediction over a file of any size: read a chunk, predict it, write its rows, forget it.

Memory holds one chunk of texts and their rows at a time (fewtune.data.stream), so a file of ten
million rows costs what a file of 256 does; a progress bar follows the bytes read. Output to a file
goes to a hidden temporary sibling renamed into place at the end, so an interrupted run leaves no
half-written file behind.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data.stream import stream_texts
from .errors import FewtuneError
from .progress import Progress

CHUNK_ROWS = 256


def predict_file(path: str | Path, rows_for: Callable[[list, list[dict]], list[dict[str, Any]]], *,
                 text_col: str = "text", text_pair_col: str | None = None, encoding: str = "utf-8",
                 format: str = "csv", output: Path | None = None, show_progress: bool = True,
                 chunk_rows: int = CHUNK_ROWS) -> int:
    """Write `rows_for(inputs, records)` for every chunk of `path`'s texts to `output` (None: stdout); return
    the count. inputs are texts, or (text, text_pair) tuples with text_pair_col; records are the chunk's
    rows with every column, as read."""
    stream = stream_texts(path, text_col=text_col, text_pair_col=text_pair_col, encoding=encoding,
                          chunk_rows=chunk_rows)
    _check_output(output)
    # The first chunk is read before the bar appears: a missing column or a bad first row is then
    # reported as one error line, with no half-drawn bar above it.
    first = next(stream.chunks)
    n = 0
    with _open_output(output) as out, Progress(show_progress) as progress:
        task = progress.add(f"Predicting ({stream.unit} of {Path(path).name})", total=stream.total)
        writer, done = _RowWriter(out, format), 0
        for chunk in itertools.chain([first], stream.chunks):
            data = chunk.data
            inputs = data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))
            rows = rows_for(inputs, chunk.records)
            writer.write(rows)
            n += len(rows)
            progress.advance(task, chunk.position - done)
            done = chunk.position
    return n


def write_rows(rows: list[dict[str, Any]], *, format: str = "csv", output: Path | None = None) -> None:
    """Rows already in memory (texts from stdin) to `output` (None: stdout), as predict_file writes them."""
    _check_output(output)
    with _open_output(output) as out:
        _RowWriter(out, format).write(rows)


def _check_output(output: Path | None) -> None:
    if output is not None and output.is_dir():
        raise FewtuneError(f"--output {output} is a folder; give a file name")


class _RowWriter:
    """CSV (the header from the first rows' keys) or JSON lines, written as the rows come."""

    def __init__(self, out, format: str):
        self.out, self.format, self.csv = out, format, None

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:  # nothing to write (predict --json collects the rows itself)
            return
        if self.format != "csv":
            self.out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            return
        if self.csv is None:
            self.csv = csv.DictWriter(self.out, fieldnames=list(rows[0]), lineterminator="\n")
            self.csv.writeheader()
        self.csv.writerows(rows)


class _open_output:
    """stdout as it is, or a temporary sibling of `output` that replaces it only when all went well."""

    def __init__(self, output: Path | None):
        self.output = output
        self.tmp = None if output is None else output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        if self.output is None:
            return sys.stdout
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(self.tmp, "w", encoding="utf-8", newline="")
        except OSError as e:
            raise _cannot_write(self.output, e) from None
        return self.f

    def __exit__(self, kind, value, tb) -> None:
        if self.output is None:
            sys.stdout.flush()
            return
        try:
            if kind is None:
                self.f.flush()
                os.fsync(self.f.fileno())
            self.f.close()
            if kind is None:
                os.replace(self.tmp, self.output)
        except OSError as e:
            if kind is None:
                raise _cannot_write(self.output, e) from None
            raise
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def _cannot_write(output: Path, e: OSError) -> FewtuneError:
    """The OS's refusal, naming --output rather than the hidden temporary file it was written through."""
    return FewtuneError(f"cannot write --output {output}: {e.strerror or e}; choose a place you can write to "
                        "(nothing was written)")
