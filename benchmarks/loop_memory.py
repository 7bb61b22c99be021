"""A user's loop of fits in one process: memory after each, with the model card holding its model weakly or not.

sentence-transformers' model and its model card hold each other, so a dropped model's weights waited for Python's
full collection (`fewtune.backbones.card_link`). Each setting runs in a fresh process: N linear-probe fits on
me5-small (16 shots of mr used as a user's file, 128 tokens), each model dropped before the next is made, the
automatic collector left as it is; the resident memory after each fit and the peak.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/loop_memory.py [--fits 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes
from fewtune.bench.worker import rss_mb

SETTINGS = ("card holds its model weakly (the default)", "card holds its model (before)")


def one(fits: int, setting: str) -> dict:
    from fewtune import FewShotClassifier
    from fewtune.backbones import loading
    from fewtune.data import load_builtin, sample_k_shot

    if setting == SETTINGS[1]:
        loading.weak_card_link = lambda model: model
    pool, _ = load_builtin("mr")
    idx = sample_k_shot(pool.labels, 8, 0)
    texts, labels = [pool.texts[i] for i in idx], [pool.labels[i] for i in idx]
    after, started = [], time.perf_counter()
    for _ in range(fits):
        clf = FewShotClassifier(method="linear-probe", params={"max_tokens": 128}, seed=0).fit(texts, labels)
        del clf
        after.append(rss_mb("VmRSS"))
    return {"fits": fits, "rss_mb_after_each_fit": after, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loop_memory.jsonl"))
    args = parse_or_run_one(parser, lambda fits, setting: one(int(fits), setting), 2)
    if args is None:
        return 0
    cases = [({"data": "mr-as-file", "k": 8, "card": setting}, [str(args.fits), setting]) for setting in SETTINGS]
    run_in_fresh_processes(__file__, cases, args.out, "torch", "transformers", "sentence-transformers", "fewtune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
