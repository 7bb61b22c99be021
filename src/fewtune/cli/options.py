"""What the `fewtune` commands share: option types, parsing of -p KEY=VALUE and of stdin, notes on
stderr, JSON and plain tables on stdout.

Torch-free and importing no command module, so every command module can import it and
`fewtune --help` answers at once.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer

from ..errors import DataError, FewtuneError, SettingError

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, for scripts.")]
TextCol = Annotated[str, typer.Option(help="Column holding the text.")]
Encoding = Annotated[str, typer.Option(help="Text encoding of the data file, e.g. latin-1.")]
MultiLabel = Annotated[bool, typer.Option(help="Each row has several labels in the label column, split at --label-sep (one-vs-rest).")]
LabelSep = Annotated[str, typer.Option(help="With --multi-label: what separates the labels in a cell.")]
Trust = Annotated[bool, typer.Option("--trust", help="Load pickle weights and a model folder's own code (both can run anything: only from a source you trust).")]
ClassPrior = Annotated[Optional[str], typer.Option(help="The class mix of the texts to label, LABEL=WEIGHT,... (or a JSON object), when known and unlike the shots' mix: probabilities are re-weighted by Bayes' rule for label shift. train: saved with the model; predict: replaces the saved one.")]
MaxTest = Annotated[int, typer.Option(help="Evaluate on at most this many held-out examples (a fixed subset; 0 = all).")]


# --- talking to a terminal or a script ------------------------------------------------------------
def note(quiet: bool, message: str) -> None:
    """A line for the person at the terminal (stderr), unless --quiet."""
    if not quiet:
        typer.echo(message, err=True)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        typer.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def cli_message(error: FewtuneError) -> str:
    """The error's one line as the command line words it: a setting by its flag (select -> --select), a
    refusal that trust lifts by --trust (TrustRequired's own cli_message)."""
    if isinstance(error, SettingError):
        flag = "--" + error.setting.replace("_", "-")
        if error.choices:  # leaving the flag out is the None the API names
            return f"{flag} must be one of {', '.join(error.choices)}, got {error.value!r}"
        return flag + str(error).removeprefix(error.setting)
    return getattr(error, "cli_message", str(error))


# --- parsing ------------------------------------------------------------------------------------
def parse_params(items: Optional[list[str]]) -> dict[str, str]:
    """-p KEY=VALUE items -> {key: value}; dashes in keys read as underscores."""
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FewtuneError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


def stdin_texts(encoding: str, *, skip_blank: bool = False) -> tuple[list[str], int]:
    """One text per line of stdin, and how many blank lines were skipped (skip_blank; else a blank line in
    the middle is an error naming it). Trailing blank lines are always dropped."""
    raw = sys.stdin.buffer.read()
    if encoding.lower().replace("_", "-") in {"utf-8", "utf8"}:
        encoding = "utf-8-sig"  # a byte-order mark (Notepad, PowerShell) is not part of the first text
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"stdin, line {line}: bytes that are not {encoding} (offset {e.start}); "
                        "pass --encoding latin-1 if the input is in another encoding") from None
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, form feeds and others.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    blank = sum(not line.strip() for line in lines)
    if skip_blank:
        lines = [line for line in lines if line.strip()]
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"stdin, line {i}: empty text")
    if not lines:
        raise DataError("stdin: no texts given (one text per line)")
    return lines, blank
