"""Every recommendation method on TALLRec's own protocol, beside TALLRec's published row.

    .venv/bin/python benchmarks/recommend_tallrec.py                    # the cheap methods, 3 seeds
    .venv/bin/python benchmarks/recommend_tallrec.py --lm-features      # bayes on SmolLM2 / Gemma 3 item features
    .venv/bin/python benchmarks/recommend_tallrec.py --tallrec --seeds 0 --samples 16,64   # the LoRA-tuned LM
    .venv/bin/python benchmarks/recommend_tallrec.py --summary          # the markdown table

All runs go to results/recommend_tallrec_ml-100k.jsonl (resumable: a run already there is skipped).
The protocol is `fewtune.recommend.tallrec_protocol`'s: ML-100k, each user's ratings in time order,
a rating above 3 a like, 10 ratings of history before each target; the users split once, 1,000
fixed test samples from the test users; each seed draws the N training samples.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path(__file__).parent / "results" / "recommend_tallrec_ml-100k.jsonl"
# Bao et al. 2023 (MovieLens, AUC ×100), as ../shared/docs/ANCHORS.md quotes them.
PUBLISHED = [("TALLRec, LLaMA-7B (published)", ("67.2", "67.5", "72.0")),
             ("classic sequential baselines (published: GRU4Rec, Caser, SASRec, ...)", ("49–54",) * 3)]


def main() -> None:
    from fewtune.bench.api import seed_list
    from fewtune.recommend.runner import parse_methods
    from fewtune.recommend.tallrec_protocol import TallRecProtocol, run_tallrec_bench, summarize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="3")
    p.add_argument("--samples", default="16,64,256")
    p.add_argument("--lm-features", action="store_true", help="bayes with causal-LM item embeddings")
    p.add_argument("--tallrec", action="store_true", help="the LoRA-tuned LM (slow: minutes per run on a CPU)")
    p.add_argument("--summary", action="store_true")
    args = p.parse_args()
    sizes, seeds = [int(n) for n in args.samples.split(",")], seed_list(args.seeds)
    if not args.summary:
        if args.lm_features:
            runs = [(backbone, "bayes,bayes:components=0") for backbone in ("smollm2-135m", "gemma3-270m")]
        elif args.tallrec:
            runs = [("minilm", "tallrec")]
        else:
            runs = [("minilm", "popularity,user-rate,item-knn,mf,bayes,bayes:components=0")]
        for backbone, methods in runs:
            run_tallrec_bench(TallRecProtocol(backbone=backbone), parse_methods(methods), sizes, seeds, OUT,
                              on_record=lambda r: print(f"{r['method']} [{r['protocol']['backbone']}] N={r['samples']} "
                                                        f"seed={r['seed']}: AUC {r['auc']:.3f}", flush=True))
    rows = summarize(OUT, TallRecProtocol())
    by_method: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], {})[r["samples"]] = r
    print("| method | 16 samples | 64 samples | 256 samples | train s (16 / 64 / 256) |")
    print("|---|---|---|---|---|")
    for name, values in PUBLISHED:
        print(f"| {name} | " + " | ".join(values) + " | — |")
    for name, cells in by_method.items():
        def cell(n):
            r = cells.get(n)
            if r is None:
                return "not run"
            lo, hi = r["auc_ci95"]
            return f"{100 * r['auc']:.1f} ± {100 * r['auc_std']:.1f} [{100 * lo:.1f}–{100 * hi:.1f}] ({r['seeds']} seed{'s' * (r['seeds'] > 1)})"

        times = " / ".join(f"{cells[n]['train_seconds']:.1f}" if n in cells else "—" for n in (16, 64, 256))
        print(f"| {name} | {cell(16)} | {cell(64)} | {cell(256)} | {times} |")


if __name__ == "__main__":
    main()
