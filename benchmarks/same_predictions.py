"""Does a refactor change any prediction? Rerun one committed benchmark cell per method family.

    .venv/bin/python benchmarks/same_predictions.py                  # rerun, compare with the committed records
                                                                     # and with the last committed rerun
    .venv/bin/python benchmarks/same_predictions.py --against F.jsonl   # ... or with another earlier rerun (F)

Every `fewtune bench` record carries `predictions_sha` (the sha256 of the predicted labels of its test
texts). This script reruns, through the same `fewtune bench` command, one cell of each method family
(encoder heads, fine-tuning, a baseline, label-word LMs, in-context learning, the hybrid, and each
posterior/calibration strategy) into a scratch file, then prints, per cell, whether the hash equals the
committed record's. A cell whose committed record predates the hash (or was never committed, like icl
on a user's file) is compared only with the earlier rerun: results/same_predictions.jsonl as committed
(the reference), or `--against F`. Since me5-small became the default encoder (2026-12) the encoder
cells run on it and their keys name it, so they no longer meet the committed MiniLM records: the
committed rerun made then is their reference. `auto` is left out: its search stops on a wall-clock
budget, so its choice depends on the machine's load, not on the code.

Writes the reruns to results/same_predictions.jsonl (overwritten) unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FEWTUNE = [str(Path(sys.executable).parent / "fewtune")]  # the console script of this interpreter

# (committed results file or None, fewtune bench arguments); each group is one bench call.
GROUPS = [
    ("user_files.jsonl", ["--as-user-file", "--dataset", "mr", "--shots", "8", "--seeds", "0-0", "--max-test", "200",
                          "--max-tokens", "128", "--methods", "setfit,zero-shot:template_search=best,prompt,hybrid,icl",
                          "--baselines", "majority"]),
    ("calibration.jsonl", ["--dataset", "mr", "--shots", "8", "--seeds", "0-0", "--max-test", "500",
                           "--max-tokens", "128", "--methods", "linear-probe", "--baselines", "",
                           "--variant", "linear-probe:posterior=laplace", "--variant", "setfit:posterior=laplace-cv",
                           "--variant", "setfit:calibrate=temperature", "--variant", "setfit:posterior=ensemble",
                           "--variant", "setfit:posterior=mc-dropout,posterior_samples=10"]),
    ("protocol.jsonl", ["--dataset", "mr", "--shots", "8", "--seeds", "0-0", "--max-test", "500",
                        "--max-tokens", "128", "--methods", "finetune", "--baselines", ""]),
]


def records(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines()) if "predictions_sha" in r}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "same_predictions.jsonl")
    parser.add_argument("--against", type=Path, help="an earlier rerun (this script's --out) to compare with")
    args = parser.parse_args()
    # The last rerun, as committed, is the reference by default: read it before it is overwritten.
    earlier = records(args.against or args.out)
    args.out.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    committed: dict[str, dict] = {}
    for results, options in GROUPS:
        committed.update(records(RESULTS / results))
        subprocess.run([*FEWTUNE, "bench", *options, "--no-report", "--quiet", "-o", str(args.out)], check=True, env=env)
    changed = 0
    for key, record in records(args.out).items():
        verdicts = []
        for name, reference in (("committed", committed), ("earlier", earlier)):
            if key in reference:
                same = reference[key]["predictions_sha"] == record["predictions_sha"]
                changed += not same
                verdicts.append(f"{name} {'same' if same else 'DIFFERENT'}")
        print(f"{key:90s} {record['predictions_sha'][:12]}  {', '.join(verdicts) or 'no reference'}")
    print("no prediction changed" if not changed else f"{changed} comparison(s) differ")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
