"""Label noise in the few shots: does `fewtune check-data` catch flipped labels, and does removing
what it flags beat training on the noisy shots?

For each data set and seed, the K=8-per-class draw of `fewtune train --shots 8 --seed S` has 1 or 2
labels per class flipped to another class (chosen by a generator seeded 1000 + seed). The audit
(`fewtune.data.audit_backbone.run_audit`, MiniLM embeddings, out-of-fold logistic regression) then ranks
the examples; recorded per draw:

- recall@flipped: of the flipped examples, the share among the |flipped| least self-confident
  (the top of the ranking; equal to the precision there);
- flagged: how many the audit flags as suspect-label, and their recall and precision.

Then setfit on MiniLM is trained four ways and scored on a fixed test subset (rng 0): on the clean
draw (the ceiling), on the noisy draw, on the noisy draw minus everything flagged ("cleaned", the
automatic use), and on the noisy draw after a person looked at the flagged examples only and put
back the true label where it had been flipped ("reviewed", the intended use: flagged examples
whose label was right are kept as they are).
One JSON line per (data set, seed, flips, variant) goes to --out; lines already there are skipped,
so a stopped run resumes. The markdown table is rewritten from the JSON lines at the end.

    .venv/bin/python benchmarks/label_noise.py                             # mr and bbc, 3 seeds, 1 and 2 flips
    .venv/bin/python benchmarks/label_noise.py --datasets bbc --seeds 0 --flips 1 --max-test 100 --out /tmp/ln.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from fewtune.bench.context import versions

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mr,bbc")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--flips", default="1,2", help="labels flipped per class")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--max-test", type=int, default=500)
    p.add_argument("--max-tokens", "--max-seq-length", dest="max_tokens", type=int, default=128,  # the old name too
                   help="tokens per text, for the audit and setfit")
    p.add_argument("--out", default=str(HERE / "results" / "label_noise.jsonl"))
    return p.parse_args(argv)


def flip_labels(labels: list[str], per_class: int, seed: int) -> tuple[list[str], list[int]]:
    """`per_class` labels of every class changed to another class at random; (new labels, flipped indices)."""
    rng = np.random.default_rng(1000 + seed)
    classes = sorted(set(labels))
    noisy, flipped = list(labels), []
    for c in classes:
        members = [i for i, label in enumerate(labels) if label == c]
        for i in rng.choice(members, size=per_class, replace=False):
            noisy[int(i)] = str(rng.choice([k for k in classes if k != c]))
            flipped.append(int(i))
    return noisy, sorted(flipped)


def detection(report, flipped: list[int], rows: list[str]) -> dict:
    order = np.argsort(report.self_confidence, kind="stable")
    top = {int(i) for i in order[: len(flipped)]}
    flagged = {rows.index(f.rows[0]) for f in report.of_kind("suspect-label")}
    hits = flagged & set(flipped)
    return {"n_flipped": len(flipped), "recall_at_flipped": len(top & set(flipped)) / len(flipped),
            "n_flagged": len(flagged), "flagged_recall": len(hits) / len(flipped),
            "flagged_precision": len(hits) / len(flagged) if flagged else None,
            "flipped": flipped, "flagged": sorted(flagged)}


def train_and_score(texts, labels, test, seed: int, max_tokens: int) -> dict:
    from fewtune import FewShotClassifier

    started = time.perf_counter()
    clf = FewShotClassifier(method="setfit", params={"max_tokens": max_tokens}, seed=seed).fit(texts, labels)
    return {"accuracy": round(float(clf.score(test.texts, test.labels)), 5), "n_train": len(texts),
            "seconds": round(time.perf_counter() - started, 1)}


def run(args) -> None:
    from fewtune.data.audit_backbone import run_audit
    from fewtune.data import load_builtin, sample_k_shot

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["key"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()

    def write(record: dict) -> None:
        with out.open("a") as f:  # one whole line per record: a killed run leaves no half line
            f.write(json.dumps({**record, "versions": versions()}) + "\n")
        done.add(record["key"])
        print(json.dumps({k: v for k, v in record.items() if k not in ("flipped", "flagged")}), flush=True)

    for dataset in args.datasets.split(","):
        pool, test = load_builtin(dataset)
        test = test.subset(sorted(int(i) for i in np.random.default_rng(0).choice(
            len(test), size=min(args.max_test, len(test)), replace=False)))
        for seed in map(int, args.seeds.split(",")):
            draw = pool.subset(sample_k_shot(pool.labels, args.shots, seed))
            base = {"dataset": dataset, "K": args.shots, "seed": seed, "max_test": len(test),
                    "max_tokens": args.max_tokens}
            prefix = f"{dataset}|K={args.shots}|seed={seed}|test={len(test)}|len={args.max_tokens}"
            if f"{prefix}|clean" not in done:
                write({"key": f"{prefix}|clean", **base, "flips": 0, "variant": "clean",
                       **train_and_score(draw.texts, draw.labels, test, seed, args.max_tokens)})
            for flips in map(int, args.flips.split(",")):
                keys = {v: f"{prefix}|flips={flips}|{v}" for v in ("detect", "noisy", "cleaned", "reviewed")}
                if all(k in done for k in keys.values()):
                    continue
                labels, flipped = flip_labels(draw.labels, flips, seed)
                noisy = draw.subset(range(len(draw)))
                noisy.labels = labels
                started = time.perf_counter()
                report = run_audit(noisy, backbone="minilm", max_tokens=args.max_tokens, seed=seed)
                found = detection(report, flipped, noisy.rows)
                common = {**base, "flips": flips}
                if keys["detect"] not in done:
                    write({"key": keys["detect"], **common, "variant": "detect", **found,
                           "seconds": round(time.perf_counter() - started, 1)})
                if keys["noisy"] not in done:
                    write({"key": keys["noisy"], **common, "variant": "noisy",
                           **train_and_score(noisy.texts, labels, test, seed, args.max_tokens)})
                if keys["cleaned"] not in done:
                    kept = [i for i in range(len(noisy)) if i not in set(found["flagged"])]
                    write({"key": keys["cleaned"], **common, "variant": "cleaned", "removed": len(noisy) - len(kept),
                           **train_and_score([noisy.texts[i] for i in kept], [labels[i] for i in kept], test, seed,
                                             args.max_tokens)})
                if keys["reviewed"] not in done:
                    fixed = [draw.labels[i] if i in set(found["flagged"]) else labels[i] for i in range(len(noisy))]
                    write({"key": keys["reviewed"], **common, "variant": "reviewed",
                           "corrected": sum(a != b for a, b in zip(fixed, labels)),
                           **train_and_score(noisy.texts, fixed, test, seed, args.max_tokens)})


def summarize(path: Path) -> str:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    acc = defaultdict(list)
    det = defaultdict(list)
    for r in records:
        if r["variant"] == "detect":
            det[(r["dataset"], r["flips"])].append(r)
        else:
            acc[(r["dataset"], r["flips"], r["variant"])].append(r["accuracy"])

    def pm(values, scale=100):
        values = [v * scale for v in values if v is not None]
        if not values:
            return "-"
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"

    lines = ["# Label noise in the few shots: caught by `check-data`? better removed?", "",
             "K = 8 per class, 1 or 2 labels per class flipped; audit on MiniLM embeddings; setfit on MiniLM; "
             "mean ± std over seeds (%). recall@flipped: flipped examples among the |flipped| least "
             "self-confident; flagged: suspect-label findings. Trained on: clean = the draw before flipping; "
             "noisy = with the flips; cleaned = noisy minus every flagged example; reviewed = noisy with the "
             "flagged examples' true labels put back (a person checking the flagged list).", "",
             "| data | flips/class | seeds | recall@flipped | flagged (n) | flagged recall | flagged precision "
             "| acc clean | acc noisy | acc cleaned | acc reviewed |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, flips), rows in sorted(det.items()):
        lines.append(
            f"| {dataset} | {flips} | {len(rows)} | {pm([r['recall_at_flipped'] for r in rows])} "
            f"| {statistics.mean(r['n_flagged'] for r in rows):.1f} | {pm([r['flagged_recall'] for r in rows])} "
            f"| {pm([r['flagged_precision'] for r in rows])} | {pm(acc[(dataset, 0, 'clean')])} "
            f"| {pm(acc[(dataset, flips, 'noisy')])} | {pm(acc[(dataset, flips, 'cleaned')])} "
            f"| {pm(acc[(dataset, flips, 'reviewed')])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    run(args)
    out = Path(args.out)
    out.with_suffix(".md").write_text(summarize(out))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
