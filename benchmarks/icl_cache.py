"""How much the cached demonstration prefix speeds up `icl`: the same model, split and queries, with
cache_prefix on and off, timed in one process (so the ratio is measured under one load).

    .venv/bin/python benchmarks/icl_cache.py --dataset mr --shots 8 --seed 0 --n 100

Prints and appends one JSON line to benchmarks/results/icl_cache.jsonl; also checks that both
settings give the same probabilities (they must: the cache changes the cost, not the answer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mr")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=100, help="test texts to predict")
    p.add_argument("--out", default=str(HERE / "results" / "icl_cache.jsonl"))
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from fewtune import FewShotClassifier
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.data.builtin import get_dataset

    pool, test = load_builtin(args.dataset)
    idx = sample_k_shot(pool.labels, args.shots, args.seed)
    texts, labels = [pool.texts[i] for i in idx], [pool.labels[i] for i in idx]
    queries = [test.texts[i] for i in np.sort(np.random.default_rng(0).choice(len(test), args.n, replace=False))]
    params = get_dataset(args.dataset).prompt_params()
    clf = FewShotClassifier(backbone="smollm2-135m", method="icl", params=params, seed=args.seed,
                            show_progress=False).fit(texts, labels)
    timings, probas = {}, {}
    for cached in (True, False, True):  # cached twice: the first pass also builds the cache
        clf.model_.params.cache_prefix = cached
        clf.model_._cache = None
        started = time.perf_counter()
        probas[cached] = clf.predict_proba(queries)
        timings.setdefault(cached, []).append(time.perf_counter() - started)
    record = {
        "dataset": args.dataset, "K": args.shots, "seed": args.seed, "n": args.n,
        "context_tokens": clf.train_info_.get("context_tokens"), "demonstrations": clf.train_info_.get("demonstrations"),
        "seconds_cached": [round(t, 2) for t in timings[True]], "seconds_uncached": round(timings[False][0], 2),
        "speedup": round(timings[False][0] / min(timings[True]), 2),
        "max_probability_difference": float(np.abs(probas[True] - probas[False]).max()),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
