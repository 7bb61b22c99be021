"""Where a cold `fewtune predict` of 10 texts spends its time (issue 35: "cold starts").

    .venv/bin/python benchmarks/cold_start.py [--repeats 3] [--work DIR]

Builds once in --work (kept between runs): a setfit model on MiniLM (mr as a user's file, 8 shots a
class), its ONNX int8 export and a static student distilled from it. Then, each in a fresh process
as a user's shell would run it, medians of --repeats:
  - `fewtune --help`;
  - `fewtune predict MODEL ten.csv -o out.csv --overwrite -q` for the PyTorch model, the ONNX export and the static
    student (wall seconds, the process's start to its exit);
  - the PyTorch predict again under `python -X importtime`, its import time summed by top-level package
    (self times; importtime's own overhead inflates them a little), and the remainder of the wall time
    (loading, encoding, writing) apart.
One JSON line per run goes to results/cold_start.jsonl, with the machine, the versions, the CPU seconds
(user + system) of each command beside its wall seconds, and the load average before and after: on a
machine shared with other work the wall time grows with the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEWTUNE = [sys.executable, "-m", "fewtune.cli"]
TEN = ["A fine film.", "Dull and slow.", "loved it", "hated it", "ok I guess", "superb acting", "what a waste",
       "brilliant", "boring", "great fun"]


CPU: dict[str, list[float]] = collections.defaultdict(list)  # CPU seconds of each timed command, by label


def run(args: list[str], env: dict, label: str | None = None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    if label:
        CPU[label].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return seconds


def write_texts(path: Path, texts: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)


def build(work: Path, env: dict) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    model, onnx, static = work / "setfit-minilm", work / "setfit-minilm-onnx-int8", work / "static-student"
    if not model.exists():
        run([*FEWTUNE, "train", "--dataset", "mr", "--as-user-file", "--shots", "8", "--backbone", "minilm",
             "--max-test", "50", "-o", str(model), "-q"], env)
    if not onnx.exists():
        run([*FEWTUNE, "export", str(model), "--int8", "-o", str(onnx)], env)
    pool = work / "pool.csv"
    if not static.exists():
        from fewtune.data import load_builtin

        texts = load_builtin("mr")[0].texts[::20][:400]  # every 20th: both classes
        write_texts(pool, texts)
        run([*FEWTUNE, "distill", str(model), "--unlabeled", str(pool), "--student", "static", "-o", str(static),
             "-q"], env)
    ten = work / "ten.csv"
    write_texts(ten, TEN)
    return {"pytorch": model, "onnx-int8": onnx, "static": static, "ten": ten}


def import_breakdown(model: Path, ten: Path, out: Path, env: dict) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fewtune.cli", "predict", str(model), str(ten),
                           "-o", str(out), "--overwrite", "-q"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    by_package: collections.Counter = collections.Counter()
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            by_package[m.group(2).split(".")[0]] += int(m.group(1)) / 1e6
    return wall, dict(by_package)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fewtune-cold-start"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cold_start.jsonl")
    parser.add_argument("--note", help="what this run measured (say, the code it ran), kept in its line")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    built = build(args.work, env)
    out = args.work / "out.csv"
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    imports: list[tuple[float, dict]] = []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        seconds["--help"].append(run([*FEWTUNE, "--help"], env, "--help"))
        for kind in ("pytorch", "onnx-int8", "static"):
            label = f"predict 10 texts, {kind}"
            seconds[label].append(run([*FEWTUNE, "predict", str(built[kind]), str(built["ten"]), "-o", str(out),
                                       "--overwrite", "-q"], env, label))
        imports.append(import_breakdown(built["pytorch"], built["ten"], out, env))
    wall, packages = sorted(imports, key=lambda x: x[0])[len(imports) // 2]  # the median run's breakdown
    imported = sum(packages.values())
    top = dict(sorted(((k, round(v, 3)) for k, v in packages.items()), key=lambda kv: -kv[1])[:12])
    row = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seconds": {k: round(statistics.median(v), 2) for k, v in seconds.items()},
        "cpu_seconds": {k: round(statistics.median(v), 2) for k, v in CPU.items()},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "pytorch_predict_under_importtime": {"wall": round(wall, 2), "imports": round(imported, 2),
                                             "rest": round(wall - imported, 2), "imports_by_package": top},
        **({"note": args.note} if args.note else {}),
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "sentence-transformers",
                                                       "scikit-learn", "onnxruntime", "fewtune")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
