"""The worker side of a benchmark: `python -m fewtune.bench.worker` runs the tasks it is sent.

The runner writes one task per line (JSON) on the worker's stdin; the worker answers each with one
line on its protocol channel (the original stdout; everything the libraries print goes to stderr):
the run's record, or the error. A worker serves many runs so that importing torch and
sentence-transformers (about 10 s on 2 cores) is paid once per worker, not once per run; each
run's peak memory is still its own, because the kernel's high-water mark is reset before it
(/proc/self/clear_refs). Heavy libraries are imported before the clock starts, so train_seconds
is loading the backbone plus training, which is what a user waits for.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .. import experiment
from ..backbones import resolve_backbone
from ..backbones.catalog import DEFAULT_ENCODER
from ..backbones.prefix import text_prefix, with_prefix
from ..data.builtin import BUILTIN_DATASETS
from ..metrics import calibration_report, classification_report, risk_coverage
from .context import versions
from .plan import ANCHORS, CLASSIFIER_OPTIONS, DataSource, digest


def rss_mb(field: str = "VmHWM") -> float | None:
    """This process's peak (VmHWM) or current (VmRSS) resident memory, from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    if field == "VmHWM":  # elsewhere: the process's peak so far, which never goes down
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1), 1)
    return None


def reset_peak_rss() -> None:
    # "5" resets the high-water mark to the current RSS: the next peak is this run's alone.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def train_fewtune(task: dict, train, test) -> tuple[np.ndarray, tuple[float, float], float, dict]:
    """A fewtune run through the same door as `fewtune train` (fewtune.experiment), on the plan's draw."""
    from ..methods.base import get_method  # why: torch; recommend.runner imports this module at its top

    run = experiment.run  # opens the package's training module (torch) now, before the clock starts
    params = {k: v for k, v in task["params"].items() if k not in CLASSIFIER_OPTIONS}
    options = {k: v for k, v in task["params"].items() if k in CLASSIFIER_OPTIONS}
    for length_param in get_method(task["method"]).length_params:  # methods that read no text (majority) have none
        if task.get("max_tokens"):
            params[length_param] = task["max_tokens"]
    source = DataSource.from_dict(task["source"])
    builtin = source.name in BUILTIN_DATASETS  # label-word methods take its template and words, as `train --dataset`
    spec = experiment.RunSpec(dataset=source.name if builtin else None, as_user_file=builtin and source.withholds_prompt,
                              method=task["method"], params=params, backbone=task.get("backbone"), seed=task["seed"],
                              device="cpu", quiet=True, **options)
    started, cpu_started = time.perf_counter(), time.process_time()
    clf = run(spec, experiment.Prepared(train, source=source.name)).model
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    proba = clf.predict_proba(test.texts)
    predict_seconds = time.perf_counter() - started
    # Columns in sorted class order, the order run_one scores in.
    names = list(map(str, clf.classes_))
    proba = np.asarray(proba)[:, [names.index(c) for c in sorted(names)]]
    info = {k: v for k, v in clf.train_info_.items() if k not in ("class_counts", "data")}
    info["params_resolved"] = clf.model_.params.to_dict()
    info["backbone_folder"] = clf.backbone_.path
    return proba, (train_seconds, train_cpu), predict_seconds, info


def train_setfit_lib(task: dict, train, test) -> tuple[np.ndarray, tuple[float, float], float, dict]:
    """The SetFit library with its own defaults; only where it writes and logs is changed."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers import set_seed

    folder = resolve_backbone(task.get("backbone") or DEFAULT_ENCODER).path  # the folder fewtune's runs load
    classes = sorted(map(str, set(train.labels)))
    index = {c: i for i, c in enumerate(classes)}
    set_seed(task["seed"])
    started, cpu_started = time.perf_counter(), time.process_time()
    model = SetFitModel.from_pretrained(folder)
    # The backbone's text prefix (e5: "query: ") goes before every text in training and prediction
    # alike, as fewtune's methods have it; sentence-transformers' own default prompt would reach only
    # the encode() calls, not the contrastive pairs.
    prefix = text_prefix(model.model_body)
    model.model_body.default_prompt_name = None
    data = Dataset.from_dict({"text": with_prefix(train.texts, prefix),
                              "label": [index[str(c)] for c in train.labels]})
    if task.get("max_tokens"):
        model.model_body.max_seq_length = task["max_tokens"]
    # Not training settings: no checkpoint written to disk, no logging integrations, no bars.
    args = TrainingArguments(output_dir=str(Path(task["workdir"]) / "checkpoints"), report_to="none",
                             save_strategy="no", show_progress_bar=False, seed=task["seed"], **task["params"])
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    proba = model.predict_proba(with_prefix(test.texts, prefix), as_numpy=True,
                                show_progress_bar=False)  # columns: classes' order
    predict_seconds = time.perf_counter() - started
    resolved = args.to_dict()
    st_trainer = getattr(trainer, "st_trainer", None)
    info = {
        "params_resolved": {k: resolved.get(k) for k in ("batch_size", "num_epochs", "num_iterations", "sampling_strategy",
                                                          "max_steps", "body_learning_rate", "head_learning_rate",
                                                          "warmup_proportion", "max_length", "end_to_end", "loss")},
        "body_steps": getattr(getattr(st_trainer, "state", None), "global_step", None),
        "train_pairs": len(st_trainer.train_dataset) if getattr(st_trainer, "train_dataset", None) is not None else None,
        "backbone_folder": folder,
        "text_prefix": prefix,
    }
    info["params_resolved"]["loss"] = getattr(resolved.get("loss"), "__name__", str(resolved.get("loss")))
    return np.asarray(proba), (train_seconds, train_cpu), predict_seconds, info


@functools.lru_cache(maxsize=4)
def load_source(source_json: str):
    return DataSource.from_dict(json.loads(source_json)).load()


def run_one(task: dict) -> dict:
    pool, test_all = load_source(json.dumps(task["source"], sort_keys=True))
    train = pool.subset(task["train_idx"])
    test = test_all.subset(task["test_idx"])
    import torch

    warm_up(task)
    gc.collect()
    reset_peak_rss()
    rss_before = rss_mb("VmRSS")
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    fit = train_setfit_lib if task["method"] == "setfit-lib" else train_fewtune
    proba, (train_seconds, train_cpu), predict_seconds, info = fit(task, train, test)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    classes = sorted(map(str, set(train.labels)))
    truth = [str(y) for y in test.labels]
    predicted = [classes[i] for i in proba.argmax(1)]
    report = classification_report(truth, predicted, classes)
    calibration = calibration_report(truth, proba, classes)
    return {
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
        "reliability": [{k: round(v, 5) if isinstance(v, float) else v for k, v in b.items()}
                        for b in calibration["reliability"]],
        "selective": [{k: round(v, 5) for k, v in point.items()} for point in risk_coverage(truth, proba, classes)],
        "n_train": len(train),
        "n_test": len(test),
        "max_tokens": task.get("max_tokens") or None,  # max_seq_length in records written before the rename
        "backbone": task.get("backbone"),
        "train_seconds": round(train_seconds, 3),
        "train_cpu_seconds": round(train_cpu, 2),  # all threads of the process, while training
        "predict_seconds": round(predict_seconds, 3),
        "rss_mb_before_training": rss_before,
        "peak_rss_mb": rss_mb("VmHWM"),  # the whole worker process, libraries included
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime, 2),
        "process_seconds": round(time.perf_counter() - started, 2),
        # Equal across methods = the same split; equal across repeats = the same predictions.
        "split_sha": task["split_sha"],
        "texts_sha": digest(train.texts, [str(y) for y in train.labels], test.texts),
        "predictions_sha": digest(predicted),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "train_info": info,
    }


def warm_up(task: dict) -> None:
    """Import what runs need before any clock starts (a no-op after the first run of a worker)."""
    import importlib

    import torch

    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    for module in ("sentence_transformers", "peft", "sklearn.linear_model", "fewtune.methods"):
        importlib.import_module(module)
    if task["kind"] == "anchor":
        importlib.import_module(ANCHORS[task["method"]])


def serve(tasks, answer) -> None:
    for line in tasks:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            reply = {"ok": True, "record": run_one(task)}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()


def main() -> int:
    # The protocol channel is the original stdout; libraries that print land on stderr instead.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
