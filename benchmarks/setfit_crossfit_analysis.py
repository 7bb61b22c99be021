"""Heads and calibrations for setfit chosen from the shots alone, scored on the test texts.

    .venv/bin/python benchmarks/setfit_crossfit_analysis.py DIR [DIR ...] [--on heldout] [--out FILE.jsonl]

Each DIR holds setfit_crossfit.py's embeddings. Each rule sees only the shots: the full body's embeddings of
them (leaked: that body was trained on them) and each fold body's embeddings (honest for the fold's
held-out shots). What it decides is applied to the user's model (the full body, its test embeddings).
--on heldout scores on the rows of the user's file that were not drawn as shots instead of the data set's
test split (setfit_crossfit_heldout.py adds them).

- default: the C = 1 logistic head (setfit's default until 2026-12-07; `-p head_c=1` now).
- temperature: T fitted (MAP, log T ~ N(0, 1)) on the out-of-fold probabilities of C = 1 heads, each
  fitted on a fold body's embeddings of its training shots and predicting its held-out shots; what
  calibrate="temperature" does.
- oof-c: the C whose fold pipelines (fold body, head at C) give the lowest out-of-fold log-loss.
- oof-c-bma: the heads of every C averaged, weighted by their out-of-fold likelihood (a posterior over C
  under a flat prior on the grid).
- oof-c+t: oof-c, then T as in "temperature" on that C's out-of-fold probabilities.
- oof-c-mean: one head, at the C whose log is the mean of log C under those weights (a plain setfit
  model with another head_c): what head_c=0, setfit's default since 2026-12-07, did until the change below.
- oof-c-mean-n: oof-c-mean's C × (the fold heads' shots / all shots): scikit-learn's C weighs the sum of
  the losses, so a fold head fitted on 3/4 of the shots at C is regularised as the full head at 3/4·C.
  What head_c=0 does since the fourth session of 2026-12-07.
- fresh-n, fresh-4n (test split only): not a rule a user can run but the information limit of one. C is
  chosen as oof-c-mean chooses it, but by the user's model itself (the full body and its heads) on n (4n)
  labeled rows of the user's file that were not drawn as shots, n the number of shots: what as many (four
  times as many) *new* labeled texts, drawn as the file falls, would tell this choice. Mean over 30 draws
  of those rows. A choice fitted on the shots has less to go on than fresh-n: the shots themselves trained
  the model, so only fold bodies can score them.

Each split also gets `ece_floor`: the ECE that oof-c-mean-n's own probabilities would show on these
test texts if they were exactly right (labels drawn from them, mean of 200 draws). It is what the
finite test split adds to any model's ECE, calibrated or not: about 0.02-0.04 on 500 texts.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

from fewtune.methods.setfit import HEAD_C_GRID as CS, posterior_mean_c  # the grid head_c=0 chooses on, and how


def ece(proba, y):
    from fewtune.metrics import calibration_report

    return calibration_report(list(y), proba, list(range(proba.shape[1])))["ece"]


def saved_split(path: Path, on: str = "test"):
    """One split as setfit_crossfit.py saved it: its arrays (the kept body's embeddings of the shots and of the
    scored texts, their labels, the fold bodies' embeddings and each shot's fold), a head fitted at C, and the fold
    heads' out-of-fold probabilities of the shots at every C of the grid."""
    from fewtune.training.heads import LinearHead

    d = np.load(path)
    emb, emb_test, y, y_test, fold_emb, fold_of = (d[k] for k in ("emb", f"emb_{on}", "labels", f"y_{on}",
                                                                  "fold_emb", "fold_of"))
    n = int(max(y.max(), y_test.max()) + 1)

    def head(x, labels, c):
        return LinearHead.fit_logistic(x, labels, n, c=c, seed=0)

    oof = {}
    for c in CS:
        p = np.zeros((len(y), n))
        for f in range(fold_emb.shape[0]):
            train, val = fold_of != f, fold_of == f
            p[val] = head(fold_emb[f][train], y[train], c).predict_proba(fold_emb[f][val])
        oof[c] = p
    return d, (emb, emb_test, y, y_test, fold_emb, fold_of), head, oof


def analyse(path: Path, on: str = "test") -> dict:
    from fewtune.bayes.temperature import apply_temperature, fit_temperature, nll

    d, (emb, emb_test, y, y_test, fold_emb, fold_of), head, oof = saved_split(path, on)
    oof_nll = {c: nll(p, y) for c, p in oof.items()}
    heads = {c: head(emb, y, c) for c in CS}  # the user's model at each C of the grid
    test = {c: np.asarray(h.predict_proba(emb_test)) for c, h in heads.items()}
    best = min(oof_nll, key=oof_nll.get)
    weights = np.array([np.exp(-len(y) * (oof_nll[c] - oof_nll[best])) for c in CS])
    weights /= weights.sum()
    mean_c = posterior_mean_c(-len(y) * np.array([oof_nll[c] for c in CS]))  # one head at the posterior mean of log C
    t1 = fit_temperature(oof[1.0], y)
    tb = fit_temperature(oof[best], y)
    fold_share = float(np.mean([(fold_of != f).sum() for f in range(fold_emb.shape[0])]) / len(y))
    rules = {
        "default": test[1.0],
        "temperature": apply_temperature(test[1.0], t1),
        "oof-c": test[best],
        "oof-c-bma": sum(w * test[c] for w, c in zip(weights, CS)),
        "oof-c+t": apply_temperature(test[best], tb),
        "oof-c-mean": np.asarray(head(emb, y, mean_c).predict_proba(emb_test)),
        "oof-c-mean-n": np.asarray(head(emb, y, mean_c * fold_share).predict_proba(emb_test)),
    }
    oracle = min(CS, key=lambda c: ece(test[c], y_test))
    row = {"file": path.stem, "on": on, "oof_c": best, "mean_c": round(mean_c, 3), "temperature": round(t1, 4), "oracle_c": oracle,
           "oracle_ece": round(ece(test[oracle], y_test), 4),
           # what no rule fitted on the shots can see: how much easier the shots are than the scored texts
           "oof_accuracy_gap": round(float((oof[1.0].argmax(1) == y).mean() - (test[1.0].argmax(1) == y_test).mean()), 4),
           "rules": {}}
    for name, p in rules.items():
        row["rules"][name] = {"accuracy": round(float((p.argmax(1) == y_test).mean()), 4),
                              "ece": round(ece(p, y_test), 4), "confidence": round(float(p.max(1).mean()), 4)}
    row["ece_floor"] = round(ece_floor(rules["oof-c-mean-n"]), 4)
    if on == "test" and "emb_heldout" in d:
        row["rules"].update(fresh_rows(d, head, heads))
    return row


def ece_floor(proba: np.ndarray, draws: int = 200) -> float:
    """The mean ECE of these probabilities against labels drawn from themselves: a calibrated model's ECE
    on this many texts (the plug-in ECE is biased upward by the texts' finite number)."""
    rng = np.random.default_rng(0)
    cumulative = proba.cumsum(1)
    drawn = [(rng.random(len(proba))[:, None] > cumulative).sum(1) for _ in range(draws)]
    return float(np.mean([ece(proba, np.minimum(y, proba.shape[1] - 1)) for y in drawn]))


def fresh_rows(d, head, heads: dict, draws: int = 30) -> dict:
    """fresh-n and fresh-4n: C chosen by the user's model (`heads`, one per C of the grid) on labeled rows of
    the file that are not shots."""
    emb, y, emb_test, y_test = d["emb"], d["labels"], d["emb_test"], d["y_test"]
    rows_proba = {c: np.asarray(h.predict_proba(d["emb_heldout"])) for c, h in heads.items()}
    y_rows = d["y_heldout"]
    rng = np.random.default_rng(0)
    out = {}
    for times in (1, 4):
        scores = []
        for _ in range(draws):
            idx = rng.choice(len(y_rows), min(times * len(y), len(y_rows)), replace=False)
            logp = np.array([np.log(np.clip(rows_proba[c][idx, y_rows[idx]], 1e-12, None)).sum() for c in CS])
            c = posterior_mean_c(logp)
            p = np.asarray(head(emb, y, c).predict_proba(emb_test))
            scores.append(((p.argmax(1) == y_test).mean(), ece(p, y_test), p.max(1).mean()))
        accuracy, calibration, confidence = np.mean(scores, axis=0)
        out["fresh-n" if times == 1 else f"fresh-{times}n"] = {
            "accuracy": round(float(accuracy), 4), "ece": round(float(calibration), 4),
            "confidence": round(float(confidence), 4)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--on", choices=("test", "heldout"), default="test",
                        help="score on the data set's test split or on the file's rows not drawn as shots")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [analyse(p, args.on) for folder in args.dirs for p in sorted(folder.glob("*.npz"))]
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by = collections.defaultdict(list)
    for r in rows:
        by[r["file"].rsplit("_s", 1)[0]].append(r)
    names = list(rows[0]["rules"]) if rows else []
    print("data (splits) | " + " | ".join(names) + " | oracle C's ECE   (accuracy % / ECE, mean)")
    for key, rs in by.items():
        cells = [f"{100 * np.mean([r['rules'][m]['accuracy'] for r in rs]):.1f} / "
                 f"{np.mean([r['rules'][m]['ece'] for r in rs]):.3f}" for m in names]
        print(f"{key} ({len(rs)}) | " + " | ".join(cells) + f" | {np.mean([r['oracle_ece'] for r in rs]):.3f}"
              f"   oof-test accuracy gap {np.mean([r['oof_accuracy_gap'] for r in rs]):+.3f}"
              f" (|gap| {np.mean([abs(r['oof_accuracy_gap']) for r in rs]):.3f})"
              f"   ECE floor {np.mean([r['ece_floor'] for r in rs]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
