"""How long a cached backbone takes to load, imports excluded (issue 26: the README's load-time claim).

    .venv/bin/python benchmarks/backbone_load.py [--repeats 3]

Each load runs in a fresh process: torch, transformers and fewtune are imported first (timed apart),
then the clock runs over resolve_backbone + load_causal_lm / load_encoder on the CPU, the way every
command loads it, and over a second load in the same process. GGUF backbones load their converted
safetensors folder. The first load includes transformers importing the model's and tokenizer's code
on first use; the second is the loading alone. Medians of the repeats go to results/backbone_load.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r"""
import json, sys, time
started = time.perf_counter()
import torch, transformers
from fewtune.backbones import CAUSAL_LM, load_causal_lm, load_encoder, resolve_backbone
imported = time.perf_counter()
def load():
    resolved = resolve_backbone(sys.argv[1])
    if resolved.kind == CAUSAL_LM:
        load_causal_lm(resolved, device="cpu")
    else:
        load_encoder(resolved, device="cpu")
load()
done = time.perf_counter()
load()  # the same again: the libraries' own code for this model is imported by now
again = time.perf_counter()
print(json.dumps({"import_seconds": imported - started, "load_seconds": done - imported, "again_seconds": again - done}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "backbone_load.jsonl")
    args = parser.parse_args()
    from fewtune.backbones import list_backbones

    rows = []
    for backbone in list_backbones():
        if not backbone["installed"]:
            continue
        runs = []
        for _ in range(args.repeats):
            proc = subprocess.run([sys.executable, "-c", CHILD, backbone["name"]], capture_output=True, text=True,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        row = {"backbone": backbone["name"], "kind": backbone["kind"],
               "load_seconds": [round(r["load_seconds"], 3) for r in runs],
               "load_seconds_median": round(statistics.median(r["load_seconds"] for r in runs), 3),
               "import_seconds_median": round(statistics.median(r["import_seconds"] for r in runs), 3),
               "second_load_seconds_median": round(statistics.median(r["again_seconds"] for r in runs), 3),
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
               "versions": {m: metadata.version(m) for m in ("torch", "transformers", "fewtune")}}
        rows.append(row)
        print(f"{row['backbone']:14s} first load {row['load_seconds_median']:.2f} s (runs {row['load_seconds']}), "
              f"a second load {row['second_load_seconds_median']:.2f} s, imports before {row['import_seconds_median']:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
