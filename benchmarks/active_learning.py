"""Active learning: accuracy against the number of labels, texts picked by BALD vs picked at random.

Each seed starts from the same K=2-per-class draw for both strategies, then runs rounds: train
setfit with the Laplace posterior over its head (`posterior="laplace"`) on the labels so far, score
it on a fixed test subset, and add `--per-round` texts from an unlabeled pool (a fixed random
subset of the training split, whose labels are revealed only when picked): by BALD under the
posterior (`fewtune.bayes.acquisition`) or uniformly at random. One JSON line per (data set, seed,
strategy, round) goes to --out; finished rounds are skipped when the script is started again.

    .venv/bin/python benchmarks/active_learning.py                        # mr and bbc, 3 seeds
    .venv/bin/python benchmarks/active_learning.py --datasets mr --seeds 0 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mr,bbc")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--strategies", default="bald,random")
    p.add_argument("--start", type=int, default=2, help="labeled examples per class to start from")
    p.add_argument("--per-round", type=int, default=8, help="texts labeled per round")
    p.add_argument("--rounds", type=int, default=4, help="trainings per run (the last one picks nothing)")
    p.add_argument("--pool", type=int, default=600, help="unlabeled pool size (a fixed subset of the training split)")
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--max-tokens", "--max-seq-length", dest="max_tokens", type=int, default=128)  # the old name too
    p.add_argument("--out", default=str(HERE / "results" / "active_learning.jsonl"))
    return p.parse_args(argv)


def run(dataset: str, seed: int, strategy: str, args, done: set[str], out: Path) -> None:
    from fewtune import FewShotClassifier
    from fewtune.bayes.acquisition import suggest
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.metrics import calibration_report

    train, test = load_builtin(dataset)
    fixed = np.random.default_rng(0)
    pool_idx = sorted(int(i) for i in fixed.choice(len(train), size=min(args.pool, len(train)), replace=False))
    test = test.subset(sorted(int(i) for i in fixed.choice(len(test), size=min(args.max_test, len(test)), replace=False)))
    pool = train.subset(pool_idx)
    labeled = [int(i) for i in sample_k_shot(pool.labels, args.start, seed)]
    rng = np.random.default_rng(1000 + seed)
    for round_ in range(args.rounds):
        key = f"{dataset}|seed={seed}|{strategy}|round={round_}|start={args.start}|per_round={args.per_round}|pool={args.pool}"
        unlabeled = [i for i in range(len(pool)) if i not in set(labeled)]
        clf = FewShotClassifier(method="setfit", params={"max_tokens": args.max_tokens}, seed=seed,
                                posterior="laplace")
        started = time.perf_counter()
        clf.fit([pool.texts[i] for i in labeled], [pool.labels[i] for i in labeled])
        train_seconds = time.perf_counter() - started
        proba = clf.predict_proba(test.texts)
        classes = [str(c) for c in clf.classes_]
        cal = calibration_report([str(y) for y in test.labels], proba, classes)
        accuracy = float(np.mean([classes[i] == str(y) for i, y in zip(proba.argmax(1), test.labels)]))
        picked = []
        pick_seconds = 0.0
        if round_ < args.rounds - 1:
            started = time.perf_counter()
            if strategy == "bald":
                picked = [unlabeled[i] for i, _ in suggest(clf, [pool.texts[i] for i in unlabeled], args.per_round, "bald")]
            else:
                picked = [int(i) for i in rng.choice(unlabeled, size=args.per_round, replace=False)]
            pick_seconds = time.perf_counter() - started
        if key not in done:
            record = {"key": key, "dataset": dataset, "seed": seed, "strategy": strategy, "round": round_,
                      "n_labels": len(labeled), "accuracy": round(accuracy, 5), "ece": round(cal["ece"], 5),
                      "nll": round(cal["nll"], 5), "tau": clf.train_info_["posterior"]["tau"],
                      "picked_classes": [str(pool.labels[i]) for i in picked],
                      "train_seconds": round(train_seconds, 2), "pick_seconds": round(pick_seconds, 2), "n_test": len(test)}
            with open(out, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{dataset} seed={seed} {strategy} labels={len(labeled)}: acc {accuracy:.3f} ece {cal['ece']:.3f}",
                  flush=True)
        labeled += picked


def summarize(out: Path) -> str:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["n_labels"], r["strategy"])].append(r)
    lines = ["| data | labels | strategy | seeds | accuracy % | ECE % |", "|---|---|---|---|---|---|"]
    for (d, n, s), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        acc = [100 * r["accuracy"] for r in rs]
        ece = [100 * r["ece"] for r in rs]
        sd = (lambda v: f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
        lines.append(f"| {d} | {n} | {s} | {len(rs)} | {statistics.mean(acc):.1f}{sd(acc)} | {statistics.mean(ece):.1f}{sd(ece)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["key"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for strategy in args.strategies.split(","):
                keys = [f"{dataset}|seed={seed}|{strategy}|round={r}|start={args.start}|per_round={args.per_round}|pool={args.pool}"
                        for r in range(args.rounds)]
                if all(k in done for k in keys):
                    continue
                run(dataset, seed, strategy, args, done, out)
    table = summarize(out)
    out.with_suffix(".md").write_text("# Active learning: BALD vs random picks (setfit + Laplace head)\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
