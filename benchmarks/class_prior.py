"""A known class mix at prediction time (`class_prior`): does Bayes' rule for label shift fix what the
balanced shots get wrong?

K-shot training sets are balanced; tweets' test split is 43 % negative, 39 % neutral, 18 % positive,
and at K=8 that label shift is why no temperature brings its ECE under 5 (calibration section of
benchmarks/README.md). A user often knows the mix of the texts to come (last month's labels, the
pool the shots were drawn from). This scores setfit on MiniLM, MAP and temperature-scaled, without
a prior, with the training pool's class mix (what a user could know: no test label is read) and with
the test subset's own mix (the oracle, the most the rule can give). bbc (mildly unbalanced) and
tweets, K=8, the `fewtune bench` draws and 500-text test subsets, seeds 0-4. One model per seed:
every variant re-weights the same probabilities (`set_class_prior`).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/class_prior.py      # ~15 min here; resumable
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = {"bbc": 64, "tweets": 128}  # max_tokens, as in the calibration benchmark


def mix(labels, classes) -> dict[str, float]:
    counts = Counter(labels)
    return {str(c): counts[c] / len(labels) for c in classes}


def run(out: Path, shots: int, seeds: list[int]) -> None:
    from fewtune import FewShotClassifier
    from fewtune.bench.plan import data_source, parse_variant, plan_runs
    from fewtune.metrics import calibration_report

    done = {(r["dataset"], r["seed"]) for r in map(json.loads, out.open())} if out.exists() else set()
    for name, length in DATA.items():
        source = data_source(name)
        pool, test = source.load()
        for task in plan_runs([source], [shots], seeds, [parse_variant("setfit")], max_test=500,
                              max_tokens=length):
            if (name, task["seed"]) in done:
                continue
            train, held = pool.subset(task["train_idx"]), test.subset(task["test_idx"])
            clf = FewShotClassifier(params={"max_tokens": length}, seed=task["seed"], calibrate="temperature",
                                    device="cpu").fit(train.texts, train.labels)
            classes = list(clf.classes_)
            priors = {"none": None, "pool mix": mix(pool.labels, classes), "test mix (oracle)": mix(held.labels, classes)}
            fitted_t = clf.temperature_
            rows = []
            for scaling, t in (("MAP", 1.0), ("temperature", fitted_t)):
                clf.temperature_ = t
                for prior_name, prior in priors.items():
                    proba = clf.set_class_prior(prior).predict_proba(held.texts)
                    cal = calibration_report(held.labels, proba, classes)
                    acc = float(np.mean(np.array(classes, dtype=object)[proba.argmax(1)] == np.array(held.labels)))
                    rows.append({"dataset": name, "shots": shots, "seed": task["seed"], "scaling": scaling,
                                 "prior": prior_name, "class_prior": prior, "accuracy": acc, "ece": cal["ece"],
                                 "nll": cal["nll"], "temperature": t})
            with out.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            print(name, task["seed"], " ".join(f"{r['scaling']}/{r['prior']}: {r['accuracy']:.3f} {r['ece']:.3f}"
                                               for r in rows), flush=True)


def summarize(out: Path, table: Path) -> None:
    import fewtune

    rows = [json.loads(line) for line in out.open()]
    lines = ["# class_prior: Bayes' rule for a known class mix (benchmarks/class_prior.py)", "",
             f"Written {datetime.now(timezone.utc).isoformat(timespec='seconds')}; fewtune {fewtune.__version__}, "
             f"{platform.processor() or platform.machine()}. setfit on minilm, K={rows[0]['shots']}, "
             "500 test texts; mean ± std over seeds, in %.", "",
             "| data | scaling | class prior | seeds | accuracy | ECE | NLL |", "|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["dataset"], r["scaling"], r["prior"]) for r in rows)
    for key in keys:
        group = [r for r in rows if (r["dataset"], r["scaling"], r["prior"]) == key]

        def cell(field, scale=100):
            v = scale * np.array([r[field] for r in group])
            return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f}" if scale == 100 else f"{v.mean():.3f}"

        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(group)} | {cell('accuracy')} | {cell('ece')} | "
                     f"{cell('nll', 1)} |")
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "class_prior.jsonl")
    args = p.parse_args(argv)
    run(args.out, args.shots, [int(s) for s in args.seeds.split(",")])
    summarize(args.out, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
