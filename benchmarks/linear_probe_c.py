"""linear-probe's head strength: fixed C values against C chosen on the shots (the default, choose_c).

For each built-in data set, K and seed: K shots per class embedded once by MiniLM, a logistic head
fitted at every C of the grid and at the C with the lowest 4-fold out-of-fold log-loss on the shots
(`LinearProbe._choose_c`'s rule, `cross_validated_nll`), scored on a fixed 500 test texts: accuracy,
ECE, log-loss, the mean top probability and the share of texts at or above 0.8. The data sets are
read as a user's file would be: texts and labels only.

    .venv/bin/python benchmarks/linear_probe_c.py            # results/linear_probe_c.jsonl
    .venv/bin/python benchmarks/linear_probe_c.py --summary  # the table in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path(__file__).parent / "results" / "linear_probe_c.jsonl"
GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    conf, right = p.max(1), p.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def run(datasets: list[str], shots: list[int], seeds: int) -> None:
    from sklearn.metrics import log_loss

    from fewtune.backbones import load_encoder, resolve_backbone
    from fewtune.bench.context import versions
    from fewtune.data.builtin import load_builtin
    from fewtune.data.sampling import fixed_subset_indices, sample_k_shot
    from fewtune.methods.linear_probe import C_GRID
    from fewtune.data.sampling import cv_folds
    from fewtune.training.embed_texts import encode
    from fewtune.training.heads import LinearHead, cross_validated_nll

    encoder = load_encoder(resolve_backbone("minilm"), device="cpu")
    cache: dict[str, np.ndarray] = {}

    def embed(texts):
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            cache.update(zip(new, encode(encoder, new, batch_size=64)))
        return np.stack([cache[t] for t in texts]).astype(np.float64)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as out:
        for ds in datasets:
            train, test = load_builtin(ds)
            classes = sorted(set(train.labels))
            index = {c: i for i, c in enumerate(classes)}
            keep = fixed_subset_indices(len(test.texts), 500) if len(test.texts) > 500 else np.arange(len(test.texts))
            xt = embed([test.texts[i] for i in keep])
            yt = np.array([index[test.labels[i]] for i in keep])
            for k in shots:
                for seed in range(seeds):
                    shot = sample_k_shot(train.labels, k, seed)
                    x = embed([train.texts[i] for i in shot])
                    y = np.array([index[train.labels[i]] for i in shot])
                    cv = cross_validated_nll(x, y, len(classes), C_GRID, cv_folds(y, 4, seed), seed=seed)
                    chosen = min(cv, key=cv.get)
                    for c in GRID:
                        p = LinearHead.fit_logistic(x, y, len(classes), c=c, seed=seed).predict_proba(xt)
                        out.write(json.dumps({
                            "dataset": ds, "K": k, "seed": seed, "head_c": c, "chosen": c == chosen,
                            "accuracy": float((p.argmax(1) == yt).mean()), "ece": ece(p, yt),
                            "log_loss": float(log_loss(yt, p, labels=np.arange(len(classes)))),
                            "mean_top_p": float(p.max(1).mean()), "share_at_0.8": float((p.max(1) >= 0.8).mean()),
                            "n_test": len(yt), "versions": versions()}) + "\n")
                        out.flush()


def summary() -> None:
    rows = [json.loads(line) for line in OUT.read_text(encoding="utf-8").splitlines()]
    groups = defaultdict(list)
    for r in rows:
        if r["head_c"] == 1.0:
            groups[(r["dataset"], r["K"], "C=1 (old default)")].append(r)
        if r["chosen"]:
            groups[(r["dataset"], r["K"], "chosen on the shots")].append(r)
    print("| data | K | head | accuracy | ECE | log-loss | mean top p | top p ≥ 0.8 | C chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (ds, k, head), rs in sorted(groups.items()):
        m = {f: np.mean([r[f] for r in rs]) for f in ("accuracy", "ece", "log_loss", "mean_top_p", "share_at_0.8")}
        chosen = ", ".join(f"{r['head_c']:g}" for r in rs) if head.startswith("chosen") else ""
        print(f"| {ds} | {k} | {head} | {m['accuracy']:.3f} | {m['ece']:.3f} | {m['log_loss']:.3f} | "
              f"{m['mean_top_p']:.2f} | {m['share_at_0.8']:.0%} | {chosen} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mr,bbc,tweets,rt-subj")
    parser.add_argument("--shots", default="8,32")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if not args.summary:
        run(args.datasets.split(","), [int(k) for k in args.shots.split(",")], args.seeds)
    summary()
