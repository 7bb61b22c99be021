"""Few-shot recommendation on MovieLens (issue 7): popularity, item-kNN, matrix factorisation and the
Bayesian encoder method, on the same cold-start draws, K = 4, 8, 16 known ratings, over seeds.

One JSON line per (method, K, seed) goes to --out as soon as it is done; lines already there are
skipped, so an interrupted run resumes. The work is `fewtune recommend bench`'s
(fewtune.recommend.protocol); this script keeps the experiment's defaults in one place:

    .venv/bin/python benchmarks/recommend.py                       # ml-100k, 3 seeds
    .venv/bin/python benchmarks/recommend.py --dataset ml-1m --seeds 3 --out benchmarks/results/recommend_ml1m.jsonl
    .venv/bin/python benchmarks/recommend.py --seeds 1 --shots 4 --max-users 30 --out /tmp/smoke.jsonl   # smoke

The item embeddings are computed once per backbone and catalogue and cached (fewtune_home()).

tallrec (TALLRec: a LoRA-tuned causal LM asked "will the user like X? Yes/No") is available but not
in the default methods: it costs one LM forward per scored item, hours for every held-out item of
every test user on a CPU. Run it with fewer users and items, which every listed method then shares:

    .venv/bin/python benchmarks/recommend.py --methods popularity,item-knn,mf,bayes,tallrec:samples=64 \
        --shots 8 --seeds 1 --max-users 50 --max-items 20 --out benchmarks/results/recommend_tallrec.jsonl
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fewtune.bench.api import seed_list  # noqa: E402
from fewtune.progress import progress_bar  # noqa: E402
from fewtune.recommend.protocol import SUMMARY_HEADER, Protocol, format_summary, run_bench  # noqa: E402
from fewtune.recommend.runner import parse_methods  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    p.add_argument("--methods", default="popularity,item-knn,mf,bayes", help="METHOD or METHOD:KEY=VALUE,..., comma-separated")
    p.add_argument("--shots", default="4,8,16", help="K known ratings per test user")
    p.add_argument("--seeds", default="3", help="a count, a range 0-4 or a list 0,3,7")
    p.add_argument("--unrated", type=int, default=0, help="random unrated items added to each user's ranking candidates")
    p.add_argument("--balanced", action="store_true", help="known ratings half likes, half dislikes")
    p.add_argument("--max-users", type=int, default=0, help="score at most this many test users (0 = all)")
    p.add_argument("--max-items", type=int, default=0,
                   help="score at most this many held-out items per test user (0 = all), the same for every method")
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--out", default=None, help="default: benchmarks/results/recommend_<dataset>.jsonl")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"recommend_{args.dataset}.jsonl"
    protocol = Protocol(dataset=args.dataset, balanced=args.balanced, n_unrated=args.unrated,
                        max_users=args.max_users, backbone=args.backbone,
                        max_items=args.max_items)
    shots = [int(k) for k in args.shots.split(",")]
    with progress_bar(True) as progress:
        result = run_bench(protocol, parse_methods(args.methods), shots, seed_list(args.seeds), out, progress=progress,
                           on_record=lambda r: progress.log(f"{r['method']} K={r['K']} seed={r['seed']}: AUC "
                                                            + ("—" if r["auc"] is None else f"{r['auc']:.3f}")))
    rows = format_summary(result["summary"])
    widths = [max(len(x) for x in col) for col in zip(SUMMARY_HEADER, *rows)]
    for row in [SUMMARY_HEADER, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    print(f"{result['done']} runs done, {result['skipped']} already in {out}")


if __name__ == "__main__":
    main()
