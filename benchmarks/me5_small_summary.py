"""Tables of benchmarks/me5_small.sh's results: me5-small against MiniLM, every method, the same draws.

    .venv/bin/python benchmarks/me5_small_summary.py [benchmarks/results/me5_small.jsonl]

Accuracy, macro-F1 and ECE are mean ± std over the seeds that finished for a cell (the seed count is
shown where it is not 5); times are medians. "setfit ÷ lib" is the SetFit library's training time over
fewtune's setfit on the same split and backbone, the median of those per-split ratios. "+T": with
temperature scaling fitted on out-of-fold predictions of the shots (calibrate="temperature").
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ["mr", "imdb", "tweets", "rt-subj", "bbc", "thucnews"]
SENTIMENT_2CLASS = ["mr", "imdb"]
BACKBONES = [("minilm", "MiniLM"), ("me5-small", "me5")]
METHODS = [("linear-probe", "linear-probe"), ("linear-probe+T", "linear-probe +T"), ("setfit", "setfit"),
           ("setfit+T", "setfit +T"), ("finetune:lora", "finetune (LoRA)"), ("setfit-lib", "SetFit lib"),
           ("auto", "auto"), ("majority", "majority")]


def method_key(record: dict) -> str:
    """The row a record belongs to: its method, "+T" with temperature scaling, finetune's LoRA apart."""
    params = record.get("params", {})
    if record["method"] == "finetune" and params.get("lora"):
        return "finetune:lora"
    return record["method"] + ("+T" if params.get("calibrate") == "temperature" else "")


def load(path: Path) -> dict:
    cells: dict = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        name = r["dataset"].removesuffix("-as-file")
        backbone = r.get("backbone") or "minilm"
        cells[(name, r["K"], method_key(r), backbone)].append(r)
    return cells


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return ""
    mean = scale * statistics.fmean(values)
    std = scale * statistics.stdev(values) if len(values) > 1 else 0.0
    seeds = "" if len(values) == 5 else f" ({len(values)})"
    return f"{mean:.{digits}f} ± {std:.{digits}f}{seeds}"


def table(cells: dict, K: int, field: str, scale: float = 100.0, digits: int = 1) -> list[str]:
    columns = [(m, b, f"{label} {short}") for m, label in METHODS for b, short in BACKBONES
               if any(k[1] == K and k[2] == m and k[3] == b for k in cells)]
    lines = ["| data | " + " | ".join(c[2] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in SETS:
        row = [mean_std([r[field] for r in cells.get((name, K, m, b), [])], scale, digits) for m, b, _ in columns]
        if any(row):
            lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def averages(cells: dict, K: int, names: list[str]) -> list[str]:
    """Each method × backbone's accuracy averaged over `names` (only where every set has ≥ 1 seed)."""
    out = []
    for m, label in METHODS:
        for b, short in BACKBONES:
            per_set = [statistics.fmean(r["accuracy"] for r in cells[(n, K, m, b)])
                       for n in names if cells.get((n, K, m, b))]
            if len(per_set) == len(names):
                out.append(f"| {label} | {short} | {100 * statistics.fmean(per_set):.1f} |")
    return ["| method | backbone | accuracy % |", "|---|---|---|", *out] if out else []


def timing(cells: dict) -> list[str]:
    lines = ["| method | backbone | K | train s (median) | predict texts/s (median) | peak RSS MB (median) |",
             "|---|---|---|---|---|---|"]
    for m, label in METHODS:
        for b, short in BACKBONES:
            for K in (8, 32):
                runs = [r for (n, k, mm, bb), rs in cells.items() if k == K and mm == m and bb == b for r in rs]
                if not runs or m == "majority":
                    continue
                speed = [r["n_test"] / r["predict_seconds"] for r in runs if r.get("predict_seconds")]
                lines.append(f"| {label} | {short} | {K} | {statistics.median(r['train_seconds'] for r in runs):.1f} | "
                             f"{statistics.median(speed):.0f} | {statistics.median(r['peak_rss_mb'] for r in runs):.0f} |")
    return lines


def setfit_ratio(cells: dict) -> list[str]:
    lines = ["| backbone | K | splits | accuracy: setfit − lib (points, mean) | train time lib ÷ setfit (median) |",
             "|---|---|---|---|---|"]
    for b, short in BACKBONES:
        for K in (8, 32):
            diffs, ratios = [], []
            for name in SETS:
                ours = {r["seed"]: r for r in cells.get((name, K, "setfit", b), [])}
                for lib in cells.get((name, K, "setfit-lib", b), []):
                    if lib["seed"] in ours:
                        diffs.append(ours[lib["seed"]]["accuracy"] - lib["accuracy"])
                        ratios.append(lib["train_seconds"] / ours[lib["seed"]]["train_seconds"])
            if diffs:
                lines.append(f"| {short} | {K} | {len(diffs)} | {100 * statistics.fmean(diffs):+.1f} | "
                             f"{statistics.median(ratios):.1f}× |")
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "benchmarks" / "results" / "me5_small.jsonl"
    cells = load(path)
    out = []
    for K in (8, 32):
        if not any(k[1] == K for k in cells):
            continue
        out += [f"### K = {K}: accuracy %", "", *table(cells, K, "accuracy"), ""]
        out += [f"Averaged over the 2-class sentiment sets ({', '.join(SENTIMENT_2CLASS)}), K = {K}:", "",
                *averages(cells, K, SENTIMENT_2CLASS), ""]
        out += [f"### K = {K}: macro-F1 %", "", *table(cells, K, "macro_f1"), ""]
        out += [f"### K = {K}: ECE (15 bins, lower is better)", "", *table(cells, K, "ece", 1.0, 3), ""]
    out += ["### Time and memory (2 cores)", "", *timing(cells), ""]
    out += ["### fewtune's setfit against the SetFit library, same split and backbone", "", *setfit_ratio(cells), ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
