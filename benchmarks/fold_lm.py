"""A calibration's fold models of a method that never trains its causal LM (zero-shot, icl, hybrid's label words): one
LM and its label-word scores shared by the fold loop, against an LM loaded, and the shots scored, per fold model.

Each row runs in a fresh process: `calibrate="temperature"` (4 fold models, then the kept one) on K shots per class
of a built-in used as a user's file (no template, no label words: the template is searched on the shots), SmolLM2,
64 tokens; the fit timed, the LM loads counted, and the kept model's probabilities of 50 test texts kept so the
settings can be compared. `auto` (in --methods) runs without a calibration: its own folds over the candidates
zero-shot, linear-probe and hybrid, no time budget (so both settings do the same work); its "before" also loads an
encoder per fold model for linear-probe and hybrid, as before the encoders were shared ("fold_collection").

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fold_lm.py [--data mr] [--k 8] [--methods zero-shot,icl,hybrid]
        [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes

SETTINGS = ("one LM and its scores per fold loop (the default)", "an LM per fold model (before)")
AUTO_CANDIDATES = "zero-shot,linear-probe,hybrid"


def one(data: str, k: int, method: str, setting: str) -> dict:
    from fewtune import FewShotClassifier
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.training import encoder_method, label_word_method

    if setting == SETTINGS[1]:
        label_word_method.LabelWordMethod.frozen_lm = False
        if method == "auto":
            from fewtune.methods import hybrid
            from fewtune.methods.linear_probe import LinearProbe
            from fewtune.training.encoder_method import pretrained_body

            LinearProbe.frozen_body = False
            hybrid.pretrained_body = lambda *a, frozen: pretrained_body(*a, frozen=False)
    loads, load = [], label_word_method.load_causal_lm
    label_word_method.load_causal_lm = lambda *a, **kw: loads.append(1) or load(*a, **kw)
    encoder_loads, load_encoder = [], encoder_method.load_encoder
    encoder_method.load_encoder = lambda *a, **kw: encoder_loads.append(1) or load_encoder(*a, **kw)
    pool, test = load_builtin(data)
    idx = sample_k_shot(pool.labels, k, 0)
    texts, labels = [pool.texts[i] for i in idx], [pool.labels[i] for i in idx]
    for warm in ("zero-shot", "linear-probe"):  # imports, and SmolLM2's conversion on a fresh machine
        FewShotClassifier(method=warm, params={"max_tokens": 64}).fit(texts[:2] + texts[-2:], labels[:2] + labels[-2:])
    loads.clear()
    encoder_loads.clear()
    started = time.perf_counter()
    clf = (FewShotClassifier(method="auto", params={"max_tokens": 64, "candidates": AUTO_CANDIDATES}, seed=0)
           if method == "auto" else
           FewShotClassifier(method=method, params={"max_tokens": 64}, calibrate="temperature", seed=0))
    clf.fit(texts, labels)
    seconds = time.perf_counter() - started
    return {"n_shots": len(idx), "fit_seconds": round(seconds, 2), "lm_loads": len(loads),
            "encoder_loads": len(encoder_loads),
            "calibration": clf.train_info_.get("calibration"), "auto": clf.train_info_.get("auto"),
            "proba": np.round(clf.predict_proba(test.texts[:50]), 7).tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mr")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--methods", default="zero-shot,icl,hybrid")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fold_lm.jsonl"))
    args = parse_or_run_one(parser, lambda data, k, method, setting: one(data, int(k), method, setting), 4)
    if args is None:
        return 0
    # Alternating settings, so that a change in the machine's load falls on both alike.
    cases = [({"data": f"{args.data}-as-file", "k": args.k, "method": method, "repeat": r, "lm": setting},
              [args.data, str(args.k), method, setting])
             for method in args.methods.split(",") for r in range(args.repeats) for setting in SETTINGS]
    rows = run_in_fresh_processes(__file__, cases, args.out, "torch", "transformers", "fewtune")
    for method in args.methods.split(","):
        by = {s: [row for row in rows if row["method"] == method and row["lm"] == s] for s in SETTINGS}
        gap = max(float(np.abs(np.array(a["proba"]) - np.array(b["proba"])).max()) for a in by[SETTINGS[0]]
                  for b in by[SETTINGS[1]])
        shared, own = ([r["fit_seconds"] for r in by[s]] for s in SETTINGS)
        loads = [by[s][0]["lm_loads"] for s in SETTINGS]
        print(f"{method}: fit {np.mean(own):.1f} s -> {np.mean(shared):.1f} s, LM loads {loads[1]} -> {loads[0]}, "
              f"largest probability gap {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
