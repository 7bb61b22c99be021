"""Peak memory of setfit's default (head_c=0: the kept body and four fold bodies), with and without freeing each
fold body as soon as its embeddings are taken (`fewtune.training.memory.fold_models`).

A trained body sits in reference cycles (weights, prior, optimiser state), so without a collection it lives on
while the next fold body trains. Each setting runs in a fresh process (its peak is its own): setfit with its
defaults on K shots per class of a built-in used as a user's file (texts and labels only), texts cut at 128
tokens. Writes one JSON line per (data set, setting).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/head_c_memory.py [--data mr,bbc] [--k 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes
from fewtune.bench.worker import rss_mb

SETTINGS = ("collected (the default)", "not collected (before)")


def one(data: str, k: int, setting: str) -> dict:
    from fewtune import FewShotClassifier
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.backbones import loading
    from fewtune.methods import setfit

    after_fold_bodies = []
    collected = setfit.fold_models if setting == SETTINGS[0] else (lambda: contextlib.nullcontext(lambda: None))
    if setting == SETTINGS[1]:  # before: nor did the model card hold its model weakly (loop_memory.py)
        loading.weak_card_link = lambda model: model

    @contextlib.contextmanager
    def watched():  # the memory once each fold body is done with (and freed, where it is)
        with collected() as finished:
            def done():
                finished()
                after_fold_bodies.append(rss_mb("VmRSS"))
            yield done

    setfit.fold_models = watched
    pool, _ = load_builtin(data)
    idx = sample_k_shot(pool.labels, k, 0)
    started = time.perf_counter()
    clf = FewShotClassifier(params={"max_tokens": 128}, seed=0)
    clf.fit([pool.texts[i] for i in idx], [pool.labels[i] for i in idx])
    return {"n_shots": len(idx), "fit_seconds": round(time.perf_counter() - started, 1),
            "head_c": clf.train_info_["head_c"]["chosen"], "rss_mb_after_each_fold_body": after_fold_bodies,
            "peak_rss_mb": rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mr,bbc")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "head_c_memory.jsonl"))
    args = parse_or_run_one(parser, lambda data, k, setting: one(data, int(k), setting), 3)
    if args is None:
        return 0
    cases = [({"data": f"{data}-as-file", "k": args.k, "fold_bodies": setting}, [data, str(args.k), setting])
             for data in args.data.split(",") for setting in SETTINGS]
    run_in_fresh_processes(__file__, cases, args.out, "torch", "transformers", "fewtune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
