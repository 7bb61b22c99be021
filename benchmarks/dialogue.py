"""Dialogue fine-tuning on a few real chats: held-out perplexity of SmolLM2 before and after.

For each seed, --shots conversations are drawn from chitchat's training pool and the model is
fine-tuned on the assistant turns (LoRA, fewtune's defaults unless --param says otherwise);
perplexity of the assistant turns is measured on the same fixed --max-test held-out conversations
before and after. One JSON line per run goes to --out (resumable: finished runs are skipped).

    .venv/bin/python benchmarks/dialogue.py --shots 64 --seeds 0,1,2 --max-test 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="smollm2-135m")
    p.add_argument("--shots", type=int, default=64, help="training conversations per run")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-test", type=int, default=100, help="held-out conversations (a fixed subset)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="generation parameter")
    p.add_argument("--out", default=str(HERE / "results" / "dialogue.jsonl"))
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from fewtune.generation import FewShotGenerator, load_dialogues

    params = dict(item.split("=", 1) for item in args.param)
    pool, test = load_dialogues("chitchat")
    keep = np.sort(np.random.default_rng(0).choice(len(test), min(args.max_test, len(test)), replace=False))
    held_out = [test[i] for i in keep]
    out = Path(args.out)
    done = {json.loads(line)["key"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    for seed in (int(s) for s in args.seeds.split(",")):
        key = f"chitchat|{args.backbone}|shots={args.shots}|seed={seed}|{json.dumps(params, sort_keys=True)}|test={len(held_out)}"
        if key in done:
            print(f"skip (done): {key}", file=sys.stderr)
            continue
        chosen = np.random.default_rng(seed).choice(len(pool), args.shots, replace=False)
        train = [pool[i] for i in sorted(chosen)]
        load_before = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        gen = FewShotGenerator(args.backbone, params=params, seed=seed, device="cpu", show_progress=False)
        gen.fit(train, eval_examples=held_out)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        sample = gen.generate(held_out[0][0]["content"], max_new_tokens=32) if held_out[0][0]["role"] == "user" else None
        record = {
            "key": key, "dataset": "chitchat", "backbone": args.backbone, "shots": args.shots, "seed": seed,
            "params": gen.params.to_dict(), "n_test": len(held_out), **gen.evaluation_,
            "total_seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "train_info": gen.train_info_, "sample": {"prompt": held_out[0][0]["content"], "reply": sample},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
            "fewtune_git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                          text=True).stdout.strip(),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"seed {seed}: perplexity {record['perplexity_before']:.2f} -> {record['perplexity_after']:.2f} "
              f"({record['total_seconds']:.0f} s, peak {record['peak_rss_mb']} MB)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
