"""Is setfit's default head too timid? The same trained setfit body, heads of different L2 strength.

    .venv/bin/python benchmarks/setfit_head_c.py [--seeds 3] [--first-seed 0] [--k 8] [--data mr,bbc]

The built-ins as a user's file (texts and labels only), K = 8 per class, 500 fixed test texts, texts cut
at 128 tokens. setfit is trained once per split with its defaults but head_c = 1 (the default until 2026-12-07); then logistic heads
with C in (1, 10, 100) and the C that 4-fold cross-validated log-loss on the shots' embeddings chooses
(as linear-probe chooses its own) are fitted on the same embeddings and scored on the test texts:
accuracy, ECE (10 bins), NLL. One JSON line a split to results/setfit_head_c.jsonl.

It asks whether the default's ECE (0.14-0.38 at K = 8 on me5-small, benchmarks/README.md "me5_small")
comes from the head's strength, and whether the shots alone can choose a better one: the body was
trained on every shot, so the folds' held-out shots are not unseen, and the cross-validated choice is
expected to be overconfident.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATASETS = ("mr", "imdb", "tweets", "rt-subj", "bbc", "thucnews")
CS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)


def split(name: str, seed: int, k: int, n_test: int = 500):
    from fewtune.data import load_builtin, sample_k_shot

    pool, test = load_builtin(name)
    idx = sample_k_shot(pool.labels, k, seed)
    keep = np.sort(np.random.default_rng(0).choice(len(test), min(n_test, len(test)), replace=False))
    return ([pool.texts[i] for i in idx], [pool.labels[i] for i in idx],
            [test.texts[i] for i in keep], [test.labels[i] for i in keep])


def run(name: str, seed: int, backbone: str, k: int) -> dict:
    from fewtune import FewShotClassifier
    from fewtune.methods.linear_probe import C_GRID
    from fewtune.metrics import calibration_report
    from fewtune.data.sampling import cv_folds
    from fewtune.training.heads import LinearHead, cross_validated_nll

    X, y, X_test, y_test = split(name, seed, k)
    started = time.perf_counter()
    clf = FewShotClassifier(backbone, "setfit", params={"max_tokens": 128, "head_c": 1}, seed=seed,
                            show_progress=False).fit(X, y)
    classes = list(clf.classes_)
    labels = np.array([classes.index(v) for v in y])
    emb, emb_test = clf.features(X), clf.features(X_test)
    scores = cross_validated_nll(emb, labels, len(classes), C_GRID, cv_folds(labels, 4, seed), seed=seed)
    chosen = min(scores, key=scores.get)
    row = {"data": f"{name}-as-file", "K": k, "seed": seed, "backbone": backbone,
           "cv_nll": {f"{c:g}": round(v, 4) for c, v in scores.items()}, "cv_chosen": chosen, "heads": {}}
    for c in sorted({*CS, chosen}):
        head = LinearHead.fit_logistic(emb, labels, len(classes), c=c, seed=seed)
        proba = head.predict_proba(emb_test)
        report = calibration_report(y_test, proba, classes)
        accuracy = float(np.mean(np.array(classes)[proba.argmax(1)] == np.array(y_test)))
        row["heads"][f"{c:g}"] = {"accuracy": round(accuracy, 4), "ece": round(report["ece"], 4),
                                  "nll": round(report["nll"], 4),
                                  # what the shots can see: the head's mean top probability on them
                                  "shots_confidence": round(float(head.predict_proba(emb).max(1).mean()), 4),
                                  "test_confidence": round(float(proba.max(1).mean()), 4)}
    default = clf.predict_proba(X_test[:50])  # the classifier itself is the C = 1 head: a check of the set-up
    row["check_default_head_matches"] = bool(np.allclose(
        default, LinearHead.fit_logistic(emb, labels, len(classes), c=1.0, seed=seed).predict_proba(emb_test[:50]),
        atol=1e-4))
    row["seconds"] = round(time.perf_counter() - started, 1)
    if os.environ.get("SAVE_EMBEDDINGS"):  # for analyses of other heads without retraining the body
        np.savez_compressed(Path(os.environ["SAVE_EMBEDDINGS"]) / f"{name}_K{k}_s{seed}.npz", emb=emb,
                            emb_test=emb_test, labels=labels, y_test=np.array([classes.index(v) for v in y_test]))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--data", default=",".join(DATASETS))
    parser.add_argument("--backbone", default="me5-small")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "setfit_head_c.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    done = set()
    if args.out.exists():
        done = {(r["data"], r["seed"], r["backbone"], r["K"]) for r in map(json.loads, args.out.open())}
    with open(args.out, "a", encoding="utf-8") as f:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.data.split(","):
                if (f"{name}-as-file", seed, args.backbone, args.k) in done:
                    continue
                row = run(name, seed, args.backbone, args.k)
                f.write(json.dumps(row) + "\n")
                f.flush()
                heads = "  ".join(f"C={c}: {h['accuracy']:.3f}/{h['ece']:.3f}" for c, h in row["heads"].items())
                print(f"{name} K={args.k} seed {seed} (cv chose {row['cv_chosen']:g})  accuracy/ECE  {heads}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
