"""Score setfit_crossfit's rules on the rest of the user's file, not on the data set's own test split.

    .venv/bin/python benchmarks/setfit_crossfit_heldout.py DIR [DIR ...]

A user who runs `fewtune train --data FILE --shots K` is scored on the rows of FILE not drawn as shots:
texts from the same distribution as the shots. The official test splits of the built-ins need not be
(imdb's test reviews are of other films, tweet_eval's test tweets are from another period). For each
DIR/<data>_K<k>_s<seed>.npz this retrains the split's full setfit (same seed: the same body, checked on
the shots' embeddings) and adds its embeddings of 500 pool rows that are not shots (a fixed draw, the
file's own class mix) as emb_heldout / y_heldout. setfit_crossfit_analysis.py --on heldout then scores
every rule on them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def heldout(name: str, seed: int, k: int, n_heldout: int = 500) -> tuple[list, list]:
    """500 rows of the data set's pool (the user's file) that the split did not draw as shots."""
    from fewtune.data import load_builtin, sample_k_shot

    pool, _ = load_builtin(name)
    rest = np.setdiff1d(np.arange(len(pool.labels)), sample_k_shot(pool.labels, k, seed))
    keep = np.sort(np.random.default_rng(0).choice(rest, min(n_heldout, len(rest)), replace=False))
    return [pool.texts[i] for i in keep], [pool.labels[i] for i in keep]


def add_heldout(path: Path, backbone: str) -> str:
    from fewtune import FewShotClassifier
    from setfit_head_c import split

    saved = dict(np.load(path))
    if "emb_heldout" in saved:
        return "done before"
    stem = path.stem  # <data>_K<k>_s<seed>
    name, k, seed = stem.rsplit("_K", 1)[0], int(stem.rsplit("_K", 1)[1].split("_s")[0]), int(stem.rsplit("_s", 1)[1])
    X, y, _, _ = split(name, seed, k)
    clf = FewShotClassifier(backbone, "setfit", params={"max_tokens": 128, "head_c": 1}, seed=seed, show_progress=False).fit(X, y)
    drift = float(np.abs(clf.features(X) - saved["emb"]).max())
    if drift > 1e-4:
        raise SystemExit(f"{path}: the retrained body embeds the shots differently (max |diff| {drift:.2g})")
    classes = list(clf.classes_)
    X_heldout, y_heldout = heldout(name, seed, k)
    saved["emb_heldout"] = clf.features(X_heldout).astype(np.float32)
    saved["y_heldout"] = np.array([classes.index(v) for v in y_heldout])
    np.savez_compressed(path, **saved)
    return f"{len(X_heldout)} held-out rows (shots' embeddings reproduced to {drift:.1g})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--backbone", default="me5-small")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for folder in args.dirs:
        for path in sorted(folder.glob("*.npz")):
            print(f"{path.name}: {add_heldout(path, args.backbone)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
