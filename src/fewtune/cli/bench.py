"""`fewtune bench` (every method on the same K-shot draws, resumable) and `fewtune report` (its tables and plots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import FewtuneError
from ..experiment.spec import settings_yaml
from . import config as config_file
from .options import Encoding, Json, MaxTest, Quiet, TextCol, note, print_json


def bench(
    ctx: typer.Context,
    config: config_file.Config = None,
    dataset: Annotated[str, typer.Option(help="Built-in data sets and/or data files, comma-separated (a file's test set: --test, else a fixed 30% of each class).")] = "mr,bbc",
    methods: Annotated[str, typer.Option(help="fewtune methods, comma-separated; METHOD:KEY=VALUE,... (quoted) sets parameters, e.g. setfit:select=cv.")] = "setfit,finetune,linear-probe",
    baselines: Annotated[str, typer.Option(help="Baselines run beside them; setfit-lib (the SetFit library) only when the worker's Python has setfit. '' for none.")] = "majority,setfit-lib",
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="One more method variant, METHOD:KEY=VALUE,KEY=VALUE (repeatable), e.g. setfit:l2sp=1.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="METHOD.KEY=VALUE for every run of that method (repeatable).")] = None,
    shots: Annotated[str, typer.Option(help="K examples per class, comma-separated.")] = "4,8,16",
    seeds: Annotated[str, typer.Option(help="A count (5 = seeds 0-4), a range (0-4) or a list (0,3,7); each seed is one k-shot draw.")] = "5",
    max_test: MaxTest = 500,
    max_tokens: Annotated[int, typer.Option(help="Truncate every method's texts to this many tokens (each method's max_tokens; 0 = each one's own default).")] = 0,
    max_seq_length: Annotated[Optional[int], typer.Option(hidden=True, help="The old name of --max-tokens.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone for every method (default: each method's own default).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON lines, one per finished run; runs already there are skipped.")] = Path("runs.jsonl"),
    jobs: Annotated[int, typer.Option(help="Runs in parallel processes; the cores are shared out among them.")] = 1,
    python: Annotated[Optional[str], typer.Option(help="Interpreter for the runs (default: this one), e.g. one with setfit installed.")] = None,
    ray: Annotated[Optional[str], typer.Option(help="Run every run as a Ray task: 'local' starts Ray on this machine; 'auto' or ray://HOST:10001 joins a cluster (each node needs fewtune and the data installed). Needs fewtune[ray].")] = None,
    run_timeout: Annotated[float, typer.Option(help="Seconds before one run is killed and recorded as failed.")] = 6 * 3600,
    text_col: TextCol = "text",
    label_col: Annotated[str, typer.Option(help="Column holding the label (data files).")] = "label",
    test: Annotated[Optional[str], typer.Option(help="Test file for a --dataset data file (same columns).")] = None,
    encoding: Encoding = "utf-8",
    report: Annotated[bool, typer.Option(help="Write the markdown/HTML report with plots when the runs are done.")] = True,
    dry_run: Annotated[bool, typer.Option(help="List the runs still to do; run nothing.")] = False,
    as_user_file: Annotated[bool, typer.Option("--as-user-file", help="Run built-in data sets as a user's file: their templates and label words withheld (reported as NAME-as-file).")] = False,
    quiet: Quiet = False,
    json_out: Json = False,
    print_config: config_file.PrintConfig = False,
):
    """Few-shot benchmark: every method on the same K-shot draws over several seeds, one JSON line per run (resumable)."""
    for line in config_file.overrides(ctx):
        note(quiet, line)
    if max_seq_length is not None:  # the flag's old name, kept working for scripts written before the rename
        if max_tokens:
            raise FewtuneError("give --max-tokens only: --max-seq-length is its old name")
        typer.echo("warning: --max-seq-length is now --max-tokens; the old name will be removed", err=True)
        max_tokens = max_seq_length
    if print_config:
        settings = config_file.resolved(ctx)
        settings.pop("max_seq_length", None)
        typer.echo(settings_yaml({**settings, "max_tokens": max_tokens}), nl=False)
        return
    from ..bench.api import bench as run_bench
    from ..progress import progress_bar

    with progress_bar(not quiet and not dry_run) as progress:
        state: dict[str, Any] = {}

        def on_plan(runs, notes):
            for n in notes:
                note(quiet, f"note: {n}")
            state["task"] = progress.add("Benchmark runs", total=len(runs))

        def on_event(kind, run, record, why):
            if kind == "start":
                return
            progress.advance(state["task"])
            name = f"{run['dataset']} K={run['K']} seed={run['seed']} {run['method']}" + (
                f" {json.dumps(run['params'])}" if run["params"] else "")
            if kind == "failed":
                note(quiet, f"FAILED {name}: {why.splitlines()[0]}")
            elif not quiet:
                progress.log(f"{name}: accuracy {record['accuracy']:.3f}, train {record['train_seconds']:.1f} s")

        result = run_bench(datasets=dataset, methods=methods, baselines=baselines, variants=variant or [],
                           params=param or [], shots=shots, seeds=seeds, max_test=max_test, max_tokens=max_tokens,
                           backbone=backbone, out=out, jobs=jobs, python=python, timeout=run_timeout, text_col=text_col,
                           label_col=label_col, test=test, encoding=encoding, dry_run=dry_run, on_plan=on_plan,
                           on_event=on_event, as_user_file=as_user_file, ray=ray)
        if state.get("task") is not None and result["skipped"]:
            progress.advance(state["task"], result["skipped"])
    if dry_run:
        if json_out:
            print_json(result)
        else:
            typer.echo("\n".join(result["todo"]))
            note(quiet, f"{result['planned']} runs planned, {result['skipped']} already in {out}, {len(result['todo'])} to do")
        return
    if report and (result["done"] or result["skipped"]):
        from ..bench.report import write_report

        written = write_report(out)
        result["report"] = {"markdown": str(written["markdown"]), "html": str(written["html"])}
    if json_out:
        print_json(result)
    else:
        typer.echo(f"{result['done']} runs done, {result['skipped']} already there, {result['failed']} failed; "
                   f"results in {out}" + (f", report {result['report']['html']}" if "report" in result else ""))
    if result["failed"]:
        raise typer.Exit(1)


def report(
    runs: Annotated[Path, typer.Argument(help="A JSONL file written by fewtune bench.")],
    out_dir: Annotated[Optional[Path], typer.Option(help="Folder for report.md, report.html and the PNGs (default: RUNS_report beside the file).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    note: Annotated[Optional[str], typer.Option(help="A note printed under the header, e.g. about machine load.")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="A:B, a paired comparison of two method labels (repeatable); default: the best method against each other.")] = None,
    json_out: Json = False,
):
    """A benchmark's runs as tables (mean ± std, paired tests) and plots: markdown plus one self-contained HTML file."""
    from ..bench.report import write_report

    pairs = []
    for item in compare or []:
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise FewtuneError(f"--compare {item!r}: expected A:B, two method labels from the report")
        pairs.append((a, b))
    written = write_report(runs, out_dir, title=title, note=note, pairs=pairs)
    if json_out:
        print_json({k: [str(p) for p in v] if isinstance(v, list) else str(v) for k, v in written.items()})
    else:
        typer.echo(f"wrote {written['markdown']}, {written['html']} and {len(written['plots'])} plots")
