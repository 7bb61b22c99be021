"""Temperature scaling on a few dozen out-of-fold predictions: maximum likelihood vs a prior on log T.

For setfit at K=8 on bbc, mr and tweets (5 seeds, the benchmark draws and test subsets) this
collects the out-of-fold probabilities of the shots (4 folds, as `calibrate="temperature"` fits
them) and the final model's test probabilities, then scores several ways of choosing T on the
out-of-fold ones by the test ECE, beside the temperature fitted on the test set itself (the
floor a single T can reach). Exploration behind fewtune.bayes.temperature.PRIOR_SD; the
committed output, from the wise=1.0 encoder, is results/temperature_prior.txt.

    python benchmarks/temperature_prior.py [--probs /tmp/oof.jsonl] [--param wise=1.0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DATA = [("bbc", 64), ("mr", 128), ("tweets", 128)]


def collect(path: Path, params: dict) -> None:
    from fewtune import FewShotClassifier
    from fewtune.bench.plan import data_source, parse_variant, plan_runs
    from fewtune.data.sampling import cv_folds

    with path.open("a") as out:
        for name, length in DATA:
            source = data_source(name)
            pool, test = source.load()
            for task in plan_runs([source], [8], [0, 1, 2, 3, 4], [parse_variant("setfit")], max_test=500,
                                  max_tokens=length):
                train, held = pool.subset(task["train_idx"]), test.subset(task["test_idx"])
                p = {"max_tokens": length, **params}
                classes = sorted(set(train.labels))
                y = np.array([classes.index(c) for c in train.labels])
                final = FewShotClassifier(params=p, seed=task["seed"], device="cpu").fit(train.texts, train.labels)
                oof = np.zeros((len(y), len(classes)))
                for a, b in cv_folds(y, 4, task["seed"]):
                    fold = FewShotClassifier(params=p, seed=task["seed"], device="cpu")
                    fold.fit([train.texts[i] for i in a], [train.labels[i] for i in a])
                    oof[b] = fold.predict_proba([train.texts[i] for i in b])
                out.write(json.dumps({"dataset": name, "seed": task["seed"], "y": y.tolist(), "oof": oof.tolist(),
                                      "test_y": [classes.index(c) for c in held.labels],
                                      "test_p": final.predict_proba(held.texts).tolist()}) + "\n")
                out.flush()
                print(name, task["seed"], flush=True)


def analyse(path: Path) -> None:
    from fewtune.bayes.temperature import apply_temperature, fit_temperature
    from fewtune.metrics import calibration_report

    def ece(p, y):
        return 100 * calibration_report([str(t) for t in y], p, [str(i) for i in range(p.shape[1])])["ece"]

    rows = [json.loads(line) for line in path.open()]
    for r in rows:
        for k in ("oof", "y", "test_p", "test_y"):
            r[k] = np.asarray(r[k])
    ways = {"T = 1 (none)": lambda p, y: 1.0,
            "maximum likelihood": lambda p, y: fit_temperature(p, y, prior_sd=None),
            "MAP, log T ~ N(0, 1)": lambda p, y: fit_temperature(p, y, prior_sd=1.0),
            "MAP, log T ~ N(0, 0.5²)": lambda p, y: fit_temperature(p, y, prior_sd=0.5),
            "ML within [0.25, 4]": lambda p, y: fit_temperature(p, y, bounds=(0.25, 4.0), prior_sd=None)}
    print("| data | T chosen by | test ECE % (mean ± sd, 5 seeds) | T per seed |")
    print("|---|---|---|---|")
    for name, _ in DATA:
        rs = [r for r in rows if r["dataset"] == name]
        for way, fit in ways.items():
            ts = [fit(r["oof"], r["y"]) for r in rs]
            es = [ece(apply_temperature(r["test_p"], t), r["test_y"]) for r, t in zip(rs, ts)]
            print(f"| {name} | {way} | {np.mean(es):.1f} ± {np.std(es, ddof=1):.1f} | "
                  f"{', '.join(f'{t:.2f}' for t in ts)} |")
        ts = [fit_temperature(r["test_p"], r["test_y"], prior_sd=None) for r in rs]
        es = [ece(apply_temperature(r["test_p"], t), r["test_y"]) for r, t in zip(rs, ts)]
        print(f"| {name} | the test set itself (floor) | {np.mean(es):.1f} ± {np.std(es, ddof=1):.1f} | "
              f"{', '.join(f'{t:.2f}' for t in ts)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probs", type=Path, default=Path("/tmp/temperature_prior.jsonl"),
                        help="probabilities file: collected here when missing, then analysed")
    parser.add_argument("--param", action="append", default=[], help="setfit parameter KEY=VALUE (repeatable)")
    args = parser.parse_args()
    if not args.probs.exists():
        params = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
        collect(args.probs, params)
    analyse(args.probs)


if __name__ == "__main__":
    main()
