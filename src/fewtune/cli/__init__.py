"""The `fewtune` command line: one module per command group, each parsing its options, calling the
API and printing; this module gathers them into one typer app and runs it (`main`).

Heavy libraries (torch, transformers) are imported inside the commands, so `fewtune models` and
`fewtune --help` answer at once. Errors a user can fix (and refusals of the OS: permissions, a full
disk) print one line and exit 2; anything else is a bug: one line and exit 1, the traceback with
`fewtune --debug COMMAND` (or FEWTUNE_DEBUG=1). Ctrl-C prints one line saying what was kept and exits 130.
"""

from __future__ import annotations

import os
import warnings
from typing import Annotated, Optional

import typer

from ..errors import FewtuneError
from . import (bench, catalog, check_data, distill, evaluate, export, generate, predict, pretrain, recommend, serve,
               train)
from .options import cli_message

# "\b" keeps click from re-wrapping a paragraph: these are lines to copy.
EPILOG = """\b
Start here (a CSV with a text and a label column; 8 examples per class):
  fewtune train --data reviews.csv --shots 8 -o my-model
  fewtune predict my-model new.csv -o labeled.csv
  fewtune evaluate my-model --data test.csv
  fewtune check-data --data reviews.csv      # suspect labels, duplicates, before training

\b
Commands by what they are for:
  start here:        train, predict, evaluate, check-data, methods, datasets, models
  serve and export:  serve, export, distill, generate, chat
  research:          bench, report, suggest, pretrain, adapt, recommend
\b
`fewtune COMMAND --help` shows a command's options and examples."""

app = typer.Typer(
    help="Fine-tune pretrained language models on a handful of labeled examples.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain-text usage errors: one readable line, not a box cut to the terminal width
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fewtune {version('fewtune')}")
        raise typer.Exit()


_DEBUG = {"on": False}


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print fewtune's version and exit.")] = False,
             debug: Annotated[bool, typer.Option("--debug", help="On an unexpected error (a bug), print the "
                                                 "whole traceback instead of one line.")] = False) -> None:
    """Fine-tune pretrained language models on a handful of labeled examples."""
    _DEBUG["on"] = debug or os.environ.get("FEWTUNE_DEBUG") == "1"


# Registered in this order, which is the order `fewtune --help` lists them in.
app.command(epilog=train.EXAMPLES)(train.train)  # the first hour's commands first
for command in (predict.predict, evaluate.evaluate):
    app.command()(command)
app.command("check-data")(check_data.check_data)
for command in (catalog.methods, catalog.datasets):
    app.command()(command)
app.add_typer(catalog.models_app, name="models")
for command in (serve.serve, export.export, distill.distill, generate.generate, generate.chat, bench.bench,
                bench.report, predict.suggest, pretrain.pretrain, pretrain.adapt):
    app.command()(command)
app.add_typer(recommend.app, name="recommend")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from ..data import DataWarning
    from ..params import RenamedParamWarning

    if issubclass(category, (DataWarning, RenamedParamWarning)):  # a parameter's old name: one line too
        typer.echo(f"warning: {message}", err=True)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: returns the exit code (0 ok, 2 for errors a user can fix)."""
    # Never reach for a model hub behind the user's back; a hub id still works when they unset it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.showwarning = _show_warning
    try:
        # Standalone mode: click itself reports usage errors (exit 2); typer turns Ctrl-C into exit 130
        # silently, which is said here in one line. Our own errors pass through it and are reported here.
        app(args=argv, prog_name="fewtune")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == INTERRUPTED and _from_ctrl_c(e):
            typer.echo(_interrupted(argv), err=True)
    except KeyboardInterrupt:  # outside typer's own handler
        typer.echo(_interrupted(argv), err=True)
        code = INTERRUPTED
    except FewtuneError as e:
        # Worded for the command line: settings by their flags, a refusal that trust lifts by --trust.
        typer.echo(f"error: {cli_message(e)}", err=True)
        code = 2
    except OSError as e:  # the file system or the OS said no (permissions, a full disk): the user can act
        where = f"{e.filename}: " if e.filename else ""
        typer.echo(f"error: {where}{e.strerror or e}", err=True)
        code = 2
    except Exception as e:  # a bug: one line, and the traceback on request
        if _DEBUG["on"]:
            raise
        message = " ".join(str(e).split())[:300]
        typer.echo(f"error: unexpected {type(e).__name__}: {message} (a bug in fewtune; run with --debug "
                   "for the traceback, and please report it)", err=True)
        code = 1
    finally:
        _DEBUG["on"] = False
    return code


INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _from_ctrl_c(e: BaseException) -> bool:
    """Whether this exit was caused by a KeyboardInterrupt (typer raises Exit(130) from it)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _interrupted(argv: Optional[list[str]]) -> str:
    """The one line after Ctrl-C: what was kept. Model folders and -o files are written to a hidden
    temporary sibling and renamed at the end, so an interrupted command leaves none of them behind."""
    import sys

    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = next((a for a in args if not a.startswith("-")), "")
    if command in ("pretrain", "adapt"):
        return ("interrupted; the model folder was not written; a causal LM's training continues from its last "
                "checkpoint (in OUT.work/) when you rerun the command with --resume")
    if command == "bench" or (command == "recommend" and "bench" in args):
        return "interrupted; the runs that finished are kept in the results file: rerun the command to do the rest"
    return "interrupted; nothing was saved (outputs are written whole at the end, or not at all)"
