"""The README's abstention example, run as a user runs it: train, then `predict --abstain-below`.

    .venv/bin/python benchmarks/abstain_example.py [--dataset bbc] [--shots 8] [--threshold 0.8] [--work DIR]
        [-- EXTRA TRAIN OPTIONS]

Trains `fewtune train --dataset D --shots K --seed 0 -o WORK/model [EXTRA]` (the default method and backbone
unless EXTRA says otherwise), writes the texts of the data set's test split to WORK/test.csv, runs
`fewtune predict WORK/model WORK/test.csv --abstain-below T -o WORK/pred.csv`, and counts what was kept
and how often it was right. One line goes to results/abstain_example.jsonl with the machine and versions.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fewtune.bench.context import run_context

RESULTS = Path(__file__).resolve().parent / "results" / "abstain_example.jsonl"


def fewtune(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fewtune.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        raise SystemExit(f"fewtune {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="bbc")
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fewtune-abstain"))
    parser.add_argument("extra", nargs="*", help="more train options, after --")
    args = parser.parse_args()

    from fewtune.data import load_builtin

    args.work.mkdir(parents=True, exist_ok=True)
    model, test_csv, pred_csv = args.work / "model", args.work / "test.csv", args.work / "pred.csv"
    test = load_builtin(args.dataset)[1]
    with test_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in test.texts)
    started = time.perf_counter()
    trained = json.loads(fewtune("train", "--dataset", args.dataset, "--shots", str(args.shots), "--seed", "0",
                                 "-o", str(model), "--overwrite", "--json", "-q", *args.extra).stdout)
    train_seconds = round(time.perf_counter() - started, 1)
    fewtune("predict", str(model), str(test_csv), "--abstain-below", str(args.threshold), "-o", str(pred_csv),
            "--overwrite", "-q")
    with pred_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # One output row per input row, in order; an abstention is written as the label "unknown".
    kept = [(r["label"], truth) for r, truth in zip(rows, test.labels, strict=True) if r["label"] != "unknown"]
    right = sum(label == str(truth) for label, truth in kept)
    evaluation = trained.get("evaluation", {})
    row = {"date": datetime.date.today().isoformat(), "dataset": args.dataset, "shots": args.shots,
           "threshold": args.threshold, "extra": args.extra, "train_seconds": train_seconds,
           "heldout_accuracy": evaluation.get("accuracy"), "heldout_ece": evaluation.get("ece"),
           "texts": len(rows), "abstained": len(rows) - len(kept),
           "accuracy_on_the_rest": round(right / len(kept), 4) if kept else None,
           **run_context("torch", "transformers", "fewtune")}
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
