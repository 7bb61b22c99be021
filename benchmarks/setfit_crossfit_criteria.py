"""head_c=0 chooses C by the out-of-fold likelihood of the shots; would another score of the same fold heads do better?

On the splits `setfit_crossfit.py --save DIR` wrote (the kept body's and the fold bodies' embeddings), each rule picks C
from the fold heads' out-of-fold probabilities of the shots, scales it by the fold share as head_c=0 does, and the
user's model (the kept body, a head at that C) is scored on the test split:

- ll: head_c=0 itself (the posterior mean of log C under the out-of-fold likelihood);
- brier: the C of the grid with the lowest out-of-fold Brier score;
- match: the C at which the fold heads' mean top probability equals their out-of-fold accuracy (calibration in
  the large, which is most of what the ECE measures), interpolated in log C;
- geo(ll,match): the geometric mean of the two;
- C=1: the SetFit library's head, for scale.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/setfit_crossfit_criteria.py DIR [DIR ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from setfit_crossfit_analysis import ece, saved_split  # the analysis' ECE (10 bins) and its reading of a split

from fewtune.bayes.temperature import nll
from fewtune.methods.setfit import HEAD_C_GRID as CS, posterior_mean_c


def matched_c(oof: dict, y: np.ndarray) -> float:
    """The C where the out-of-fold confidence meets the out-of-fold accuracy (confidence grows with C)."""
    gap = np.array([oof[c].max(1).mean() - (oof[c].argmax(1) == y).mean() for c in CS])
    if gap[0] >= 0 or gap[-1] < 0:
        return CS[0] if gap[0] >= 0 else CS[-1]
    i = int(np.argmax(gap >= 0))
    share = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(np.exp(np.log(CS[i - 1]) + share * (np.log(CS[i]) - np.log(CS[i - 1]))))


def score(path: Path) -> dict:
    _, (emb, emb_test, y, y_test, fold_emb, fold_of), head, oof = saved_split(path)
    n = oof[CS[0]].shape[1]
    share = float(np.mean([(fold_of != f).sum() for f in range(fold_emb.shape[0])]) / len(y))
    ll = posterior_mean_c(-len(y) * np.array([nll(oof[c], y) for c in CS]))
    brier = {c: float(((oof[c] - np.eye(n)[y]) ** 2).sum(1).mean()) for c in CS}
    match = matched_c(oof, y)
    rules = {"ll": ll * share, "brier": min(brier, key=brier.get) * share, "match": match * share,
             "geo(ll,match)": float(np.sqrt(ll * match)) * share, "C=1": 1.0}
    return {"file": path.stem, **{name: round(ece(np.asarray(head(emb, y, c).predict_proba(emb_test)), y_test), 4)
                                  for name, c in rules.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "setfit_crossfit_criteria.jsonl")
    args = parser.parse_args()
    rows = [score(path) for folder in args.dirs for path in sorted(folder.glob("*.npz"))]
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    names = [k for k in rows[0] if k != "file"]
    print("K    splits  " + "  ".join(f"{name:>13}" for name in names))
    for k in sorted({row["file"].split("_K")[1].split("_")[0] for row in rows}, key=int):
        chosen = [row for row in rows if f"_K{k}_" in row["file"]]
        means = [np.mean([row[name] for row in chosen]) for name in names]
        print(f"{k:<4} {len(chosen):>6}  " + "  ".join(f"{mean:>13.4f}" for mean in means))
    print(f"all  {len(rows):>6}  " + "  ".join(f"{np.mean([r[name] for r in rows]):>13.4f}" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
