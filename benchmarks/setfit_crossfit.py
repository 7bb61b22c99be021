"""Can the shots choose setfit's head honestly? Bodies trained without the shots they embed.

    .venv/bin/python benchmarks/setfit_crossfit.py [--seeds 2] [--first-seed 0] [--k 8] [--data mr,bbc] [--folds 4]
        [--fold-steps fold] --save DIR

The built-ins as a user's file (texts and labels only), K per class, 500 fixed test texts, texts cut at
128 tokens (the same splits as setfit_head_c.py). Per split: setfit with its defaults but a fixed head (head_c=1:
the heads are the analysis's; the body is the default's) on all the shots
(the model a user gets; its embeddings of the shots and of the test texts), and one setfit body per
stratified fold (--folds, 4) trained without that fold's shots, each embedding every shot; and the full
model's embeddings of 500 rows of the user's file that are not shots (setfit_crossfit_heldout.py). Saved as
DIR/<data>_K<k>_s<seed>.npz for the analysis in setfit_crossfit_analysis.py, which fits heads and
calibrations from what the shots alone show (the fold bodies' embeddings of shots they never saw) and
scores them on the test texts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setfit_head_c import DATASETS, split  # noqa: E402  the same splits
from setfit_crossfit_heldout import heldout  # noqa: E402


def run(name: str, seed: int, backbone: str, k: int, n_folds: int, fold_steps: str, out: Path) -> float:
    from fewtune import FewShotClassifier
    from fewtune.data.sampling import cv_folds

    X, y, X_test, y_test = split(name, seed, k)
    started = time.perf_counter()

    def fit(texts, labels, **params):
        # head_c=1: only the bodies are kept (the analysis fits every head); C=1 trains no fold bodies of its own
        return FewShotClassifier(backbone, "setfit", params={"max_tokens": 128, "head_c": 1, **params}, seed=seed,
                                 show_progress=False).fit(texts, labels)

    full = fit(X, y)
    # "full": each fold body takes as many contrastive steps as the full body (setfit's steps grow with the
    # texts, so a fold body trained on fewer is also trained less); "fold": its own texts' number.
    steps = {"steps": full.train_info_["body_steps"]} if fold_steps == "full" else {}
    classes = list(full.classes_)
    labels = np.array([classes.index(v) for v in y])
    emb, emb_test = full.features(X), full.features(X_test)
    folds = cv_folds(labels, n_folds, seed)
    fold_emb = np.zeros((len(folds), *emb.shape), dtype=np.float32)
    fold_of = np.zeros(len(labels), dtype=np.int64)
    for f, (train_idx, val_idx) in enumerate(folds):
        fold_emb[f] = fit([X[i] for i in train_idx], [y[i] for i in train_idx], **steps).features(X)
        fold_of[val_idx] = f
    X_heldout, y_heldout = heldout(name, seed, k)
    np.savez_compressed(out / f"{name}_K{k}_s{seed}.npz", emb=emb, emb_test=emb_test, labels=labels,
                        y_test=np.array([classes.index(v) for v in y_test]), fold_emb=fold_emb, fold_of=fold_of,
                        emb_heldout=full.features(X_heldout).astype(np.float32),
                        y_heldout=np.array([classes.index(v) for v in y_heldout]))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--data", default=",".join(DATASETS))
    parser.add_argument("--backbone", default="me5-small")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--fold-steps", choices=("fold", "full"), default="fold",
                        help="contrastive steps of a fold body: from its own texts, or the full body's")
    parser.add_argument("--save", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.save.mkdir(parents=True, exist_ok=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.data.split(","):
            if (args.save / f"{name}_K{args.k}_s{seed}.npz").exists():
                continue
            seconds = run(name, seed, args.backbone, args.k, args.folds, args.fold_steps, args.save)
            print(f"{name} K={args.k} seed {seed}: {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
