"""How long the page's "train" takes: POST /train on the default TeachConfig, polled until the job is done.

    .venv/bin/python benchmarks/teach_time.py [--per-class 8] [--data mr]

K texts per class of a built-in set (texts and labels only), each method the page offers, in one server
process (the backbone's first load falls to the first method), timed from the POST to the job's "done".
One line per method goes to results/teach_time.jsonl with the machine and versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from fewtune.bench.context import run_context

RESULTS = Path(__file__).resolve().parent / "results" / "teach_time.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--data", default="mr")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from fewtune.data import load_builtin
    from fewtune.serve import create_app
    from fewtune.serve.teach import TeachConfig

    data = load_builtin(args.data)[0]
    texts, labels = [], []
    for label in data.classes:
        picked = [t for t, y in zip(data.texts, data.labels) if y == label][:args.per_class]
        texts += picked
        labels += [label] * len(picked)
    config = TeachConfig()
    rows = []
    with TestClient(create_app({}, teach=config)) as client:
        for method in config.methods:
            started = time.perf_counter()
            job = client.post("/train", json={"texts": texts, "labels": labels, "method": method}).json()["job"]
            while (state := client.get(f"/train/{job}").json())["status"] not in ("done", "failed"):
                time.sleep(0.25)
            seconds = round(time.perf_counter() - started, 1)
            rows.append({"date": datetime.date.today().isoformat(), "method": method, "backbone": config.backbone,
                         "params": config.methods[method], "data": args.data, "examples": len(texts),
                         "status": state["status"], "seconds": seconds,
                         **run_context("torch", "transformers", "fewtune")})
            print(f"{method}: {len(texts)} examples, {state['status']} in {seconds} s", flush=True)
    with RESULTS.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
