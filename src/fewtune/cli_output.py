"""What every `fewtune` command shares in how it talks to a terminal or a script: the --quiet and --json
options, notes on stderr, JSON and plain tables on stdout. Its own module (torch-free, importing no
command) because the sub-apps (recommend, pretrain, serve, export) are imported by cli.py itself."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, for scripts.")]


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
