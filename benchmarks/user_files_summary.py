"""Tables for benchmarks/user_files.sh: accuracy and ECE per data set and method, time per model, and
what method="auto" chose on each draw (its candidates' out-of-fold NLL on the shots).

    .venv/bin/python benchmarks/user_files_summary.py benchmarks/results/user_files.jsonl > benchmarks/results/user_files.md
"""

from __future__ import annotations

import collections
import json
import sys

import numpy as np

ORDER = ["mr", "tweets", "bbc", "rt-subj", "imdb", "thucnews"]


def variant(r: dict) -> str:
    params = {k: v for k, v in r["params"].items() if k != "time_budget"}
    budget = r["params"].get("time_budget")
    name = r["method"] + ("" if not params else ":" + ",".join(f"{k}={v}" for k, v in params.items()))
    return name + (f" (budget {budget:g} s)" if budget else "")


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    groups = collections.defaultdict(list)
    for r in rows:
        groups[(r["dataset"], variant(r))].append(r)
    datasets = sorted({r["dataset"] for r in rows}, key=lambda d: ORDER.index(d.removesuffix("-as-file")))
    methods = list(dict.fromkeys(variant(r) for r in rows))
    first = rows[0]
    print("# Built-in data sets as a user's file (texts and labels only)\n")
    print(f"Machine: {first['machine']['cpu_count']} CPUs, {first['machine']['platform']}, Python "
          f"{first['machine']['python']}; torch threads {first['torch_threads']}. Versions: "
          + ", ".join(f"{k} {v}" for k, v in first["versions"].items()) + ".")
    seeds = sorted({r["seed"] for r in rows})
    print(f"K = {sorted({r['K'] for r in rows})}, seeds {seeds}, test texts {first['n_test']} (a fixed subset), "
          f"texts cut to {first.get('max_tokens') or first.get('max_seq_length')} tokens.\n")  # the older records' name
    print("## Accuracy % (ECE %), mean over seeds\n")
    print("| method | " + " | ".join(datasets) + " | mean |")
    print("|---|" + "---|" * (len(datasets) + 1))
    for m in methods:
        cells, means = [], []
        for d in datasets:
            rs = groups.get((d, m), [])
            if not rs:
                cells.append("–")
                continue
            acc = [x["accuracy"] * 100 for x in rs]
            means.append(np.mean(acc))
            spread = f" ± {np.std(acc, ddof=1):.1f}" if len(acc) > 1 else ""
            cells.append(f"{np.mean(acc):.1f}{spread} ({np.mean([x['ece'] * 100 for x in rs]):.1f})")
        mean = f"{np.mean(means):.1f}" if len(means) == len(datasets) else ""
        print(f"| {m} | " + " | ".join(cells) + f" | {mean} |")
    print("\n## Seconds per model: training + predicting the test texts\n")
    print("| method | " + " | ".join(datasets) + " |")
    print("|---|" + "---|" * len(datasets))
    for m in methods:
        cells = []
        for d in datasets:
            rs = groups.get((d, m), [])
            cells.append(f"{np.mean([x['train_seconds'] for x in rs]):.0f} + {np.mean([x['predict_seconds'] for x in rs]):.0f}"
                         if rs else "–")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\n## What auto chose (out-of-fold NLL on the shots; lower is better)\n")
    print("| data | seed | chosen | test accuracy % | search s | candidates | skipped |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["method"] != "auto":
            continue
        a = r["train_info"]["auto"]
        chosen = a["chosen"] if a["chosen"] != "stack" else "stack: " + ", ".join(
            f"{m} {w:.2f}" for m, w in zip(a["members"], a["weights"]))
        cands = ", ".join(f"{k} {v['cv_nll']:.3f}" for k, v in a["candidates"].items())
        if "stack" in a:
            cands += f", stack {a['stack']['cv_nll']:.3f}"
        print(f"| {r['dataset']} | {r['seed']} | {chosen} | {r['accuracy'] * 100:.1f} | {a['search_seconds']:.0f} | "
              f"{cands} | {', '.join(a['skipped']) or '–'} |")


if __name__ == "__main__":
    main(sys.argv[1])
