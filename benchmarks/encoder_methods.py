"""fewtune's encoder methods against the SetFit library, on the same k-shot splits, in one run.

For every data set, K and seed the split is drawn once here (fewtune.data.sample_k_shot on the
built-in training pool) and handed to every method as indices, so each method and the SetFit
library see the very same examples; every method is scored on the same fixed subset of the test
split. Each run is a fresh subprocess: its peak memory is its own (os.wait4's ru_maxrss), and a
crash loses one run, not the rest. One JSON line per finished run goes to --out; runs already
there are skipped, so an interrupted benchmark resumes where it stopped.

    .venv-anchors/bin/python benchmarks/encoder_methods.py --datasets mr --shots 8 --seeds 0,1 \
        --methods setfit,linear-probe --anchor setfit-lib --max-test 300

Runs use .venv-anchors (scripts/anchors-venv.sh: setfit 1.2.0 beside fewtune, with the same
torch / transformers / sentence-transformers as .venv); --fewtune-python can send fewtune's
methods to another interpreter. Each line records the versions its worker actually imported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS_PYTHON = ROOT / ".venv-anchors" / "bin" / "python"
ANCHORS = ("setfit-lib",)  # libraries run as themselves, not through fewtune
VERSIONED = ("torch", "transformers", "sentence-transformers", "setfit", "datasets", "scikit-learn", "numpy", "fewtune")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
}


# --- planning (the orchestrating process imports only fewtune.data and numpy) --------------------


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
    p.add_argument("--max-seq-length", type=int, default=0,
                   help="truncate every method's texts to this many tokens, the SetFit library's too (0 = MiniLM's 256)")
    p.add_argument("--max-test", type=int, default=500, help="score on this many test examples (the same ones for every run)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoder_methods.jsonl"))
    p.add_argument("--python", default=str(ANCHORS_PYTHON if ANCHORS_PYTHON.exists() else sys.executable),
                   help="interpreter for every run (default: .venv-anchors, which has setfit and fewtune)")
    p.add_argument("--fewtune-python", default=None, help="interpreter for fewtune's methods (default: --python)")
    p.add_argument("--run-timeout", type=float, default=6 * 3600, help="seconds before one run is killed and recorded as failed")
    p.add_argument("--dry-run", action="store_true", help="list the runs that would be done, do nothing")
    p.add_argument("--run-one", metavar="TASK_JSON", help=argparse.SUPPRESS)  # the worker side
    p.add_argument("--result", metavar="RESULT_JSON", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_overrides(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items:
        name, sep, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not sep or not dot or not key:
            sys.exit(f"--param {item!r}: expected METHOD.KEY=VALUE")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method, {})[key] = parsed
    return out


def probe_methods(python: str) -> tuple[dict[str, list[str]], str | None]:
    """{method: its parameter names} as the fewtune interpreter registers them, or an error text."""
    code = (
        "import dataclasses, json\n"
        "from fewtune.methods import METHODS\n"
        "print(json.dumps({n: [f.name for f in dataclasses.fields(c.params_class)] for n, c in METHODS.items()}))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=worker_env())
    if proc.returncode != 0:
        return {}, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    return env


def run_key(dataset: str, k: int, seed: int, method: str, params: dict, max_test: int, max_seq_length: int = 0) -> str:
    key = f"{dataset}|K={k}|seed={seed}|{method}|{json.dumps(params, sort_keys=True)}|test={max_test}"
    return key + (f"|max_seq_length={max_seq_length}" if max_seq_length else "")


def variants(method: str, param_names: list[str] | None, args, overrides: dict) -> list[dict]:
    """The parameter sets to run a method with: L2-SP off and/or on, plus --param overrides."""
    base = dict(overrides.get(method, {}))
    if param_names is None or "l2sp" not in param_names or "l2sp" in base:
        return [base]
    on = {**base, "l2sp": args.l2sp_strength}
    return {"off": [base], "on": [on], "both": [base, on]}[args.l2sp]


def plan(args, registry: dict[str, list[str]], probe_error: str | None) -> tuple[list[dict], list[str]]:
    import numpy as np

    from fewtune.data import load_builtin, sample_k_shot

    notes = []
    overrides = parse_overrides(args.param)
    methods = []
    for m in split_list(args.methods):
        if m in registry:
            methods.append(m)
        elif probe_error:
            notes.append(f"skipped {m}: fewtune's methods did not import ({probe_error})")
        else:
            notes.append(f"skipped {m}: not registered in fewtune.methods.METHODS (have: {', '.join(sorted(registry))})")
    anchors = [a for a in split_list(args.anchor) if a != "none"]
    for a in anchors:
        if a not in ANCHORS:
            sys.exit(f"--anchor {a!r}: known anchors are {', '.join(ANCHORS)} (or none)")
    runs = []
    for dataset in split_list(args.datasets):
        train, test = load_builtin(dataset)
        n_test = min(args.max_test, len(test))
        # The same test examples for every seed and method: a fixed generator, not the run's seed.
        test_idx = sorted(int(i) for i in np.random.default_rng(0).choice(len(test), size=n_test, replace=False))
        for k in (int(s) for s in split_list(args.shots)):
            for seed in (int(s) for s in split_list(args.seeds)):
                train_idx = [int(i) for i in sample_k_shot(train.labels, k, seed)]
                split = {"dataset": dataset, "K": k, "seed": seed, "train_idx": train_idx, "test_idx": test_idx,
                         "split_sha": digest(train_idx, test_idx)}
                for m in methods:
                    for params in variants(m, registry[m], args, overrides):
                        runs.append({**split, "method": m, "kind": "fewtune", "params": params,
                                     "max_seq_length": args.max_seq_length,
                                     "key": run_key(dataset, k, seed, m, params, args.max_test, args.max_seq_length)})
                for a in anchors:
                    params = dict(overrides.get(a, {}))
                    runs.append({**split, "method": a, "kind": "anchor", "params": params,
                                 "max_seq_length": args.max_seq_length,
                                 "key": run_key(dataset, k, seed, a, params, args.max_test, args.max_seq_length)})
    return runs, notes


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def done_keys(out: Path) -> set[str]:
    if not out.exists():
        return set()
    keys = set()
    for line in out.read_text().splitlines():
        if line.strip():
            try:
                keys.add(json.loads(line)["key"])
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut short by a crash: that run is simply done again
    return keys


def fewtune_git() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "pyproject.toml"], cwd=ROOT,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def execute(run: dict, python: str, timeout: float, workdir: Path) -> tuple[dict | None, str]:
    """Run one task in a fresh interpreter; (record, "") or (None, why it failed)."""
    task_file = workdir / "task.json"
    result_file = workdir / "result.json"
    log_file = workdir / "log.txt"
    result_file.unlink(missing_ok=True)
    task_file.write_text(json.dumps({**run, "workdir": str(workdir)}))
    load_before = os.getloadavg()
    started = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--run-one", str(task_file),
                                 "--result", str(result_file)], stdout=log, stderr=subprocess.STDOUT,
                                env=worker_env(), cwd=workdir, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        # wait4 gives this child's own resource use: its peak RSS, not the largest of all runs so far.
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_file.exists():
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        why = "killed after --run-timeout" if proc.returncode == -signal.SIGKILL else f"exit {proc.returncode}"
        return None, why + "\n" + "\n".join(tail)
    record = json.loads(result_file.read_text())
    record.update(
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
        process_seconds=round(wall, 2),
        load_avg_1min=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )
    return record, ""


def orchestrate(args) -> int:
    out = Path(args.out)
    fewtune_python = args.fewtune_python or args.python
    registry, probe_error = probe_methods(fewtune_python)
    runs, notes = plan(args, registry, probe_error)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    done = done_keys(out)
    todo = [r for r in runs if r["key"] not in done]
    print(f"{len(runs)} runs planned, {len(runs) - len(todo)} already in {out}, {len(todo)} to do", file=sys.stderr)
    if args.dry_run:
        for r in todo:
            print(r["key"])
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    failed_file = out.with_suffix(".failed.jsonl")
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
               "python": platform.python_version()}
    context = {"machine": machine, "fewtune_git": fewtune_git(), "notes": notes}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="encoder-methods-") as tmp:
        for n, run in enumerate(todo, 1):
            python = fewtune_python if run["kind"] == "fewtune" else args.python
            label = f"[{n}/{len(todo)}] {run['dataset']} K={run['K']} seed={run['seed']} {run['method']} {json.dumps(run['params'])}"
            print(label, file=sys.stderr, flush=True)
            workdir = Path(tmp) / f"run{n}"
            workdir.mkdir()
            record, why = execute(run, python, args.run_timeout, workdir)
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if record is None:
                failures += 1
                print(f"    FAILED: {why}", file=sys.stderr)
                with open(failed_file, "a") as f:
                    f.write(json.dumps({"key": run["key"], "finished": stamp, "error": why}) + "\n")
                continue
            record = {**record, **context, "python_exe": python, "finished": stamp}
            with open(out, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"    acc {record['accuracy']:.3f}  macro-F1 {record['macro_f1']:.3f}  train {record['train_seconds']:.1f}s"
                  f"  predict {record['predict_seconds']:.1f}s  peak {record['peak_rss_mb']:.0f} MB", file=sys.stderr)
    if failures:
        print(f"{failures} run(s) failed; see {failed_file}", file=sys.stderr)
    return 1 if failures else 0


# --- one run (a fresh interpreter per run) -------------------------------------------------------


def max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def train_fewtune(task, train, test) -> tuple[list, tuple[float, float], float, dict]:
    from fewtune import FewShotClassifier
    from fewtune.backbones import CAUSAL_LM, DEFAULT_CAUSAL_LM, DEFAULT_ENCODER
    from fewtune.data.builtin import get_dataset
    from fewtune.methods import get_method

    method = get_method(task["method"])
    params = dict(task["params"])
    if "template" in method.params_class.help():
        # Label-word methods take the data set's own template and words, as `fewtune train --dataset` does.
        params = {**get_dataset(task["dataset"]).prompt_params(), **params}
    if task.get("max_seq_length"):
        params["max_text_tokens" if "max_text_tokens" in method.params_class.help() else "max_seq_length"] = \
            task["max_seq_length"]
    backbone = DEFAULT_CAUSAL_LM if method.backbone_kinds[0] == CAUSAL_LM else DEFAULT_ENCODER
    clf = FewShotClassifier(backbone=backbone, method=task["method"], params=params, seed=task["seed"], device="cpu")
    started, cpu_started = time.perf_counter(), time.process_time()
    clf.fit(train.texts, train.labels)
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    proba = clf.predict_proba(test.texts)
    predict_seconds = time.perf_counter() - started
    # Columns in sorted class order, the order run_one scores in.
    order = [list(map(str, clf.classes_)).index(c) for c in sorted(map(str, clf.classes_))]
    proba = proba[:, order]
    info = {k: v for k, v in clf.train_info_.items() if k not in ("class_counts",)}
    info["params_resolved"] = clf.model_.params.to_dict()
    info["backbone_folder"] = clf.backbone_.path
    return proba, (train_seconds, train_cpu), predict_seconds, info


def train_setfit_lib(task, train, test) -> tuple[list, tuple[float, float], float, dict]:
    """The SetFit library with its own defaults; only where it writes and logs is changed."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers import set_seed

    from fewtune.backbones import resolve_backbone

    folder = resolve_backbone("minilm").path  # the same MiniLM folder fewtune's "minilm" loads
    classes = sorted(set(train.labels))
    index = {c: i for i, c in enumerate(classes)}
    data = Dataset.from_dict({"text": train.texts, "label": [index[c] for c in train.labels]})
    set_seed(task["seed"])
    started, cpu_started = time.perf_counter(), time.process_time()
    model = SetFitModel.from_pretrained(folder)
    if task.get("max_seq_length"):
        model.model_body.max_seq_length = task["max_seq_length"]
    # Not training settings: no checkpoint written to disk, no logging integrations, no bars.
    args = TrainingArguments(output_dir=str(Path(task["workdir"]) / "checkpoints"), report_to="none",
                             save_strategy="no", show_progress_bar=False, seed=task["seed"], **task["params"])
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    proba = model.predict_proba(test.texts, as_numpy=True, show_progress_bar=False)  # columns: classes' order
    predict_seconds = time.perf_counter() - started
    resolved = args.to_dict()
    info = {
        "params_resolved": {k: resolved.get(k) for k in ("batch_size", "num_epochs", "num_iterations", "sampling_strategy",
                                                          "max_steps", "body_learning_rate", "head_learning_rate",
                                                          "warmup_proportion", "max_length", "end_to_end", "loss")},
        "body_steps": getattr(getattr(getattr(trainer, "st_trainer", None), "state", None), "global_step", None),
        "train_pairs": getattr(getattr(trainer, "st_trainer", None), "train_dataset", None) and len(trainer.st_trainer.train_dataset),
        "backbone_folder": folder,
    }
    info["params_resolved"]["loss"] = getattr(resolved.get("loss"), "__name__", str(resolved.get("loss")))
    return proba, (train_seconds, train_cpu), predict_seconds, info


def run_one(task_file: str, result_file: str) -> None:
    task = json.loads(Path(task_file).read_text())
    from fewtune.data import load_builtin
    import numpy as np

    from fewtune.evaluation.metrics import calibration_report, classification_report

    train_pool, test_all = load_builtin(task["dataset"])
    train = train_pool.subset(task["train_idx"])
    test = test_all.subset(task["test_idx"])
    # Heavy imports before the clock starts: train_seconds is loading the model plus training.
    import sentence_transformers  # noqa: F401
    import torch

    if task["kind"] == "anchor":
        import setfit  # noqa: F401
    rss_before = max_rss_mb()
    fit = train_setfit_lib if task["method"] == "setfit-lib" else train_fewtune
    proba, (train_seconds, train_cpu), predict_seconds, info = fit(task, train, test)
    classes = sorted(set(train.labels))
    proba = np.asarray(proba, dtype=float)
    report = classification_report(test.labels, [classes[i] for i in proba.argmax(1)], classes)
    calibration = calibration_report(test.labels, proba, classes)
    record = {
        "key": task["key"],
        "dataset": task["dataset"],
        "K": task["K"],
        "seed": task["seed"],
        "method": task["method"],
        "params": task["params"],
        "accuracy": round(report["accuracy"], 5),
        "macro_f1": round(report["macro_f1"], 5),
        "ece": round(calibration["ece"], 5),
        "nll": round(calibration["nll"], 5),
        "brier": round(calibration["brier"], 5),
        "n_train": len(train),
        "n_test": len(test),
        "max_seq_length": task.get("max_seq_length") or None,
        "train_seconds": round(train_seconds, 3),
        "train_cpu_seconds": round(train_cpu, 2),  # all threads of the process, while training
        "predict_seconds": round(predict_seconds, 3),
        "peak_rss_mb_before_training": rss_before,
        "worker_peak_rss_mb": max_rss_mb(),
        # Hash of the texts the worker actually trained and tested on: equal across methods = same split.
        "split_sha": task["split_sha"],
        "texts_sha": digest(train.texts, train.labels, test.texts),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "train_info": info,
    }
    Path(result_file).write_text(json.dumps(record))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run_one:
        run_one(args.run_one, args.result)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
