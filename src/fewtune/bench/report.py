"""`fewtune report RUNS.jsonl`: a benchmark's runs as markdown and one self-contained HTML file.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and written
twice: markdown beside the PNGs it links to, and HTML with the same tables and the PNGs embedded
as data URIs, so the HTML file can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..storage.atomic import atomic_write_text
from ..errors import FewtuneError
from .calibration_plots import reliability_diagrams, risk_coverage_curves
from .plots import accuracy_vs_time, learning_curves
from .records import cpu_seconds, label, load_runs
from .stats import fmt_p, format_mean_std, paired_tests


@dataclass
class Block:
    kind: str  # "h1", "h2", "p", "table", "img", "details"
    text: str = ""
    header: tuple = ()
    rows: tuple = ()
    path: Path | None = None


def groups(records: list[dict]) -> list[tuple[str, int]]:
    """(dataset, K) in the order they first appear, K ascending within a data set."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    return [(d, k) for d in datasets for k in sorted({r["K"] for r in records if r["dataset"] == d})]


def by_label(records: list[dict], dataset: str, k: int) -> dict[str, dict[int, dict]]:
    """{method label: {seed: record}} for one (dataset, K), labels sorted with baselines last."""
    out: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in records:
        if r["dataset"] == dataset and r["K"] == k:
            out[label(r)][r["seed"]] = r
    return dict(sorted(out.items(), key=lambda kv: (kv[0] in ("majority",) or kv[0].startswith("setfit-lib"), kv[0])))


def header_blocks(records: list[dict], title: str, note: str | None) -> list[Block]:
    first = records[0]
    machine = first.get("machine") or {}
    v = first.get("versions") or {}
    seeds = sorted({r["seed"] for r in records})
    blocks = [Block("h1", title)]
    text = (f"{len(records)} runs: data sets {', '.join(dict.fromkeys(r['dataset'] for r in records))}; "
            f"K (examples per class) {', '.join(map(str, sorted({r['K'] for r in records})))}; "
            f"seeds {', '.join(map(str, seeds))}. Every method of a (data set, K, seed) trained on the same "
            "draw and was scored on the same fixed test subset.")
    blocks.append(Block("p", text))
    blocks.append(Block("p", f"Machine: {machine.get('cpu_count')} CPUs, {machine.get('platform')}, Python "
                             f"{machine.get('python')}; torch threads per run {first.get('torch_threads')}, "
                             f"{first.get('jobs', 1)} run(s) at a time. Versions: "
                             + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + f"; fewtune commit {first.get('fewtune_git')}."))
    if note:
        blocks.append(Block("p", f"Note: {note}"))
    for text in dict.fromkeys(n for r in records for n in (r.get("notes") or ())):
        blocks.append(Block("p", f"Note: {text}"))
    return blocks


def summary_table(records: list[dict]) -> Block:
    header = ("data", "K", "method", "seeds", "accuracy %", "macro-F1 %", "ECE %", "NLL", "Brier",
              "train s", "predict s", "CPU s", "peak MB")
    rows = []
    for d, k in groups(records):
        for name, runs in by_label(records, d, k).items():
            rs = list(runs.values())
            has = all("ece" in r for r in rs)
            rows.append((d, k, name, len(rs), format_mean_std([r["accuracy"] for r in rs]),
                         format_mean_std([r["macro_f1"] for r in rs]),
                         format_mean_std([r["ece"] for r in rs]) if has else "",
                         format_mean_std([r["nll"] for r in rs], 1, 3) if has else "",
                         format_mean_std([r["brier"] for r in rs], 1, 3) if has else "",
                         f"{statistics.mean(r['train_seconds'] for r in rs):.1f}",
                         f"{statistics.mean(r['predict_seconds'] for r in rs):.1f}",
                         f"{statistics.mean(cpu_seconds(r) for r in rs):.1f}",
                         f"{max(r.get('peak_rss_mb', 0) for r in rs):.0f}"))
    return Block("table", header=header, rows=tuple(rows))


def comparisons(records: list[dict], pairs: list[tuple[str, str]] = (), metric: str = "accuracy") -> Block | None:
    """Paired A − B on the same splits: the given pairs, else the best method against every other."""
    header = ("data", "K", "A", "B", "seeds", "A %", "B %", "A − B (points)", "A better on", "t-test p", "Wilcoxon p",
              "sign-flip p")
    rows = []
    for d, k in groups(records):
        table = by_label(records, d, k)
        if pairs:
            wanted = [(a, b) for a, b in pairs if a in table and b in table]
        else:
            best = max(table, key=lambda n: statistics.mean(r[metric] for r in table[n].values()))
            wanted = [(best, other) for other in table if other != best]
        for a, b in wanted:
            seeds = sorted(set(table[a]) & set(table[b]))
            if not seeds:
                continue
            xa = [table[a][s][metric] for s in seeds]
            xb = [table[b][s][metric] for s in seeds]
            t = paired_tests(xa, xb)
            rows.append((d, k, a, b, len(seeds), format_mean_std(xa), format_mean_std(xb),
                         f"{100 * t['mean_diff']:+.1f}",
                         f"{t['wins']}/{len(seeds)}", fmt_p(t["t_p"]), fmt_p(t["wilcoxon_p"]), fmt_p(t["sign_flip_p"])))
    return Block("table", header=header, rows=tuple(rows)) if rows else None


def runs_table(records: list[dict]) -> Block:
    header = ("data", "K", "seed", "method", "accuracy %", "macro-F1 %", "ECE %", "train s", "CPU s", "peak MB", "split")
    rows = []
    for r in sorted(records, key=lambda r: (r["dataset"], r["K"], r["seed"], label(r))):
        rows.append((r["dataset"], r["K"], r["seed"], label(r), f"{100 * r['accuracy']:.1f}", f"{100 * r['macro_f1']:.1f}",
                     f"{100 * r['ece']:.1f}" if "ece" in r else "", f"{r['train_seconds']:.1f}", f"{cpu_seconds(r):.1f}",
                     f"{r.get('peak_rss_mb', 0):.0f}", r.get("split_sha", "")))
    return Block("table", header=header, rows=tuple(rows))


def build(records: list[dict], out_dir: Path, *, title: str, note: str | None = None,
          pairs: list[tuple[str, str]] = (), plots: bool = True) -> list[Block]:
    blocks = header_blocks(records, title, note)
    blocks += [Block("h2", "Results"),
               Block("p", "Mean ± sample std over seeds. ECE: top-label expected calibration error, 10 equal-width bins; "
                          "NLL: mean −log p(true class); Brier: squared error of the probability vector (lower is better "
                          "for all three). train s: wall seconds from loading the backbone to a trained model; CPU s: its "
                          "CPU seconds, all threads; peak MB: the run process's peak resident memory."),
               summary_table(records)]
    compared = comparisons(records, pairs)
    if compared:
        blocks += [Block("h2", "Paired comparisons on the same splits"),
                   Block("p", "A − B accuracy per seed on the same draw, averaged; two-sided p-values of the paired "
                              "t-test, the Wilcoxon signed-rank test and the exact sign-flip permutation test. "
                              + ("Pairs as asked." if pairs else "The best method by mean accuracy against each other.")),
                   compared]
    if plots:
        figures = [("Learning curves", "Accuracy against K, mean ± one std over seeds (band).",
                    learning_curves(records, out_dir, "accuracy")),
                   ("Calibration against K", "ECE against K, mean ± std.",
                    learning_curves(records, out_dir, "ece") if all("ece" in r for r in records) else []),
                   ("Reliability diagrams", "At the largest K: accuracy per confidence bin, pooled over seeds; the "
                                            "diagonal is perfect calibration.", reliability_diagrams(records, out_dir)),
                   ("Accuracy when abstaining", "At the largest K: accuracy on the share of test examples the "
                                                "model is most confident about (coverage), the rest left unanswered; "
                                                "a falling curve means confidence ranks right answers first.",
                    risk_coverage_curves(records, out_dir)),
                   ("Accuracy against training time", "Mean train seconds (log scale) and accuracy per method and K, "
                                                      "± std.", accuracy_vs_time(records, out_dir))]
        for heading, caption, paths in figures:
            if paths:
                blocks += [Block("h2", heading), Block("p", caption)] + [Block("img", path=p) for p in paths]
    blocks += [Block("h2", "Every run"), runs_table(records)]
    return blocks


def to_markdown(blocks: list[Block], out_dir: Path) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind == "h1":
            lines += [f"# {b.text}", ""]
        elif b.kind == "h2":
            lines += [f"## {b.text}", ""]
        elif b.kind == "p":
            lines += [b.text, ""]
        elif b.kind == "table":
            lines += ["| " + " | ".join(map(str, b.header)) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "img":
            rel = b.path.relative_to(out_dir) if b.path.is_relative_to(out_dir) else b.path
            lines += [f"![{b.path.stem}]({rel.as_posix()})", ""]
    return "\n".join(lines)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;"
         "text-align:right}th{background:#f3f3f3}td:nth-child(-n+4){text-align:left}img{max-width:100%;"
         "display:block;margin:1em 0}")


def to_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if b.kind == "h1"), "fewtune report")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            # The run-by-run table is long: folded, one click away.
            parts.append(f"<details><summary>{len(b.rows)} rows</summary>{table}</details>" if len(b.rows) > 60 else table)
        elif b.kind == "img":
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(b.path.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(runs_file: str | Path, out_dir: str | Path | None = None, *, title: str | None = None,
                 note: str | None = None, pairs: list[tuple[str, str]] = (), plots: bool = True) -> dict[str, Path]:
    """Write report.md, report.html and the PNGs for a runs file; returns their paths."""
    runs_file = Path(runs_file)
    records = load_runs(runs_file)
    if not records:
        raise FewtuneError(f"{runs_file}: no finished runs to report")
    out_dir = Path(out_dir) if out_dir else runs_file.with_name(runs_file.stem + "_report")
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build(records, out_dir, title=title or f"fewtune benchmark: {runs_file.name}", note=note, pairs=pairs,
                   plots=plots)
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, to_markdown(blocks, out_dir))
    atomic_write_text(page, to_html(blocks))
    return {"markdown": md, "html": page, "plots": [b.path for b in blocks if b.kind == "img"]}
