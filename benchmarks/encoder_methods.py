"""fewtune's encoder methods against the SetFit library, on the same k-shot splits, in one run.

The runner is `fewtune bench`'s (fewtune.bench): for every data set, K and seed the split is drawn
once and handed to every method as indices, so each method and the SetFit library see the very
same examples; every method is scored on the same fixed subset of the test split. One JSON line per
finished run goes to --out; runs already there are skipped, so an interrupted benchmark resumes
where it stopped. This script keeps issue 3's defaults and options (L2-SP on/off pairs, the
SetFit library as the anchor) and runs every run in a fresh process, as the committed results were.

    .venv-anchors/bin/python benchmarks/encoder_methods.py --datasets mr --shots 8 --seeds 0,1 \
        --methods setfit,linear-probe --anchor setfit-lib --max-test 300

Runs use .venv-anchors (scripts/anchors-venv.sh: setfit 1.2.0 beside fewtune, with the same
torch / transformers / sentence-transformers as .venv); --fewtune-python can send fewtune's
methods to another interpreter. Each line records the versions its worker actually imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewtune.bench.api import parse_overrides, split_list
from fewtune.bench.plan import ANCHORS, Variant, data_source, plan_runs
from fewtune.bench.records import done_keys
from fewtune.bench.runner import probe, run_all
from fewtune.errors import FewtuneError

ROOT = Path(__file__).resolve().parents[1]
ANCHORS_PYTHON = ROOT / ".venv-anchors" / "bin" / "python"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mr,bbc,tweets", help="built-in data sets, comma-separated")
    p.add_argument("--shots", default="8,16", help="K examples per class, comma-separated")
    p.add_argument("--seeds", default="0,1,2,3,4", help="split and training seeds, comma-separated")
    p.add_argument("--methods", default="setfit,finetune,linear-probe",
                   help="fewtune methods (fewtune.methods.METHODS); unregistered ones are skipped with a note")
    p.add_argument("--l2sp", choices=("off", "on", "both"), default="off",
                   help="for methods with an l2sp parameter: run without it, with it, or both")
    p.add_argument("--l2sp-strength", type=float, default=1.0, help="λ used when L2-SP is on")
    p.add_argument("--anchor", default="setfit-lib", help="anchor libraries to run too (setfit-lib or none)")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="override one parameter of one method (repeatable), e.g. setfit.steps=20 or "
                        "setfit-lib.num_iterations=20; VALUE is read as JSON when it parses")
    p.add_argument("--max-tokens", "--max-seq-length", dest="max_tokens", type=int, default=0,  # the old name too
                   help="truncate every method's texts to this many tokens, the SetFit library's too (0 = MiniLM's 256)")
    p.add_argument("--max-test", type=int, default=500, help="score on this many test examples (the same ones for every run)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoder_methods.jsonl"))
    p.add_argument("--python", default=str(ANCHORS_PYTHON if ANCHORS_PYTHON.exists() else sys.executable),
                   help="interpreter for every run (default: .venv-anchors, which has setfit and fewtune)")
    p.add_argument("--fewtune-python", default=None, help="interpreter for fewtune's methods (default: --python)")
    p.add_argument("--run-timeout", type=float, default=6 * 3600, help="seconds before one run is killed and recorded as failed")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would be done, do nothing")
    return p.parse_args(argv)


def variants(method: str, param_names: list[str], args, overrides: dict) -> list[Variant]:
    """The parameter sets to run a method with: L2-SP off and/or on, plus --param overrides."""
    base = dict(overrides.get(method, {}))
    if "l2sp" not in param_names or "l2sp" in base:
        return [Variant(method, base)]
    on = {**base, "l2sp": args.l2sp_strength}
    return [Variant(method, p) for p in {"off": [base], "on": [on], "both": [base, on]}[args.l2sp]]


def main(argv=None) -> int:
    args = parse_args(argv)
    fewtune_python = args.fewtune_python or args.python
    registry, _, probe_error = probe(fewtune_python)
    _, anchors_here, _ = probe(args.python)
    try:
        overrides = parse_overrides(args.param)
    except FewtuneError as e:
        sys.exit(f"error: {e}")
    notes, ours = [], []
    for m in split_list(args.methods):
        if m in registry:
            ours += variants(m, registry[m], args, overrides)
        else:
            notes.append(f"skipped {m}: " + (f"fewtune's methods did not import ({probe_error})" if probe_error else
                                             f"not registered in fewtune.methods.METHODS (have: {', '.join(sorted(registry))})"))
    anchors = []
    for a in (a for a in split_list(args.anchor) if a != "none"):
        if a not in ANCHORS:
            sys.exit(f"--anchor {a!r}: known anchors are {', '.join(ANCHORS)} (or none)")
        if a not in anchors_here:
            sys.exit(f"--anchor {a}: {args.python} cannot import {ANCHORS[a]} (run scripts/anchors-venv.sh)")
        anchors.append(Variant(a, dict(overrides.get(a, {}))))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sources = [data_source(d) for d in split_list(args.datasets)]
    shots, seeds = [int(s) for s in split_list(args.shots)], [int(s) for s in split_list(args.seeds)]
    plan = [(python, plan_runs(sources, shots, seeds, chosen, max_test=args.max_test, max_tokens=args.max_tokens))
            for python, chosen in ((fewtune_python, ours), (args.python, anchors)) if chosen]
    out = Path(args.out)
    done = done_keys(out)
    todo = [r for _, runs in plan for r in runs if r["key"] not in done]
    print(f"{sum(len(runs) for _, runs in plan)} runs planned, {len(todo)} to do", file=sys.stderr)
    if args.dry_run:
        print("\n".join(r["key"] for r in todo))
        return 0

    def show(kind, run, record, why):
        name = f"{run['dataset']} K={run['K']} seed={run['seed']} {run['method']} {run['params'] or ''}"
        if kind == "failed":
            print(f"{name}: FAILED {why}", file=sys.stderr)
        elif kind == "done":
            print(f"{name}: acc {record['accuracy']:.3f}  train {record['train_seconds']:.1f}s  "
                  f"peak {record['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)

    failed = 0
    for python, runs in plan:
        counts = run_all(runs, out, python=python, timeout=args.run_timeout, fresh_process=True, notes=notes, on_event=show)
        failed += counts["failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
