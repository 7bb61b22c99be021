"""What a fold loop's models cost beyond their fits (`fewtune.training.memory`): a full garbage collection per fold
model against one that skips the objects made before the loop, and a frozen body loaded per fold model against
one body shared by the loop.

A full collection walks every object torch, transformers and sentence-transformers made at import, whether or
not a fold model is among the garbage; a me5-small body takes about 0.75 s to load (its 17 MB tokenizer) and
0.2 s to free. Each row runs in a fresh process: linear-probe's `--select cv` (4 values of C x 4 folds: 16 fold
models, each a cheap fit) on K shots per class of a built-in used as a user's file, 128 tokens; the time spent
in the per-model collections is summed, and the whole fit timed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fold_collection.py [--data mr] [--k 8] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes

SETTINGS = ("one shared body, frozen walk (the default)", "a body per model, frozen walk",
            "a body per model, full collection per model (before)")


def one(data: str, k: int, setting: str) -> dict:
    from fewtune import FewShotClassifier, selection
    from fewtune.backbones import loading
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.methods.linear_probe import LinearProbe
    from fewtune.training import encoder_method, memory

    spent = []

    def timed(collect):
        def finished():
            started = time.perf_counter()
            collect()
            spent.append(time.perf_counter() - started)
        return finished

    if setting == SETTINGS[2]:
        loading.weak_card_link = lambda model: model  # nor did the model card hold its model weakly (loop_memory.py)

        @contextmanager
        def collections():  # what fold_models was before: no freeze, a full collection per model
            yield timed(gc.collect)
    else:
        @contextmanager
        def collections():
            with memory.fold_models() as finished:
                yield timed(finished)
    if setting != SETTINGS[0]:
        LinearProbe.frozen_body = False
    selection.fold_models = collections
    loads, load = [], encoder_method.load_encoder
    encoder_method.load_encoder = lambda *a, **kw: loads.append(1) or load(*a, **kw)

    pool, _ = load_builtin(data)
    idx = sample_k_shot(pool.labels, k, 0)
    texts, labels = [pool.texts[i] for i in idx], [pool.labels[i] for i in idx]
    FewShotClassifier(method="linear-probe", params={"max_tokens": 128}, seed=0).fit(texts, labels)  # warm
    loads.clear()
    started = time.perf_counter()
    clf = FewShotClassifier(method="linear-probe", params={"max_tokens": 128}, select="cv", seed=0).fit(texts, labels)
    return {"n_shots": len(idx), "fold_models": len(spent), "fit_seconds": round(time.perf_counter() - started, 2),
            "body_loads": len(loads),
            "collect_seconds_total": round(sum(spent), 3), "collect_seconds_each": [round(s, 3) for s in spent],
            "chosen": clf.train_info_["selection"]["chosen"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mr")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fold_collection.jsonl"))
    args = parse_or_run_one(parser, lambda data, k, setting: one(data, int(k), setting), 3)
    if args is None:
        return 0
    # Alternating settings, so that a change in the machine's load falls on both alike.
    cases = [({"data": f"{data}-as-file", "k": args.k, "repeat": r, "collection": setting},
              [data, str(args.k), setting])
             for data in args.data.split(",") for r in range(args.repeats) for setting in SETTINGS]
    run_in_fresh_processes(__file__, cases, args.out, "torch", "transformers", "fewtune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
