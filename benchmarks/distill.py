"""Issue 23: a slow few-shot teacher distilled into a MiniLM student and a static-embedding student.

    .venv/bin/python benchmarks/distill.py                 # accuracy: mr, tweets, bbc x seeds 0-4 (resumable)
    .venv/bin/python benchmarks/distill.py --throughput    # speed, size and load time of seed 0's models
    .venv/bin/python benchmarks/distill.py --summary       # the tables of benchmarks/README.md

Each data set runs as a user's file: the teacher is `prompt` on SmolLM2 (LoRA prompt fine-tuning on
the label words) with nothing but the K=8 shots per class, their class names as label words, no
template (it picks one on the shots). The unlabeled pool is the training split minus the shots, a
random `--pool` texts of it (labeling thousands with a causal LM on 2 cores takes longer than this
benchmark's budget); the test texts are a fixed random subset of the test split, the same for every
seed. `fewtune.distill.distill` then trains, from the same teacher labels (cached after the first):
- the encoder student: `finetune` on MiniLM, soft labels + the shots, exported to ONNX int8;
- the static student: MiniLM distilled by model2vec into a static table, a softmax head on it.
Accuracy, ECE and agreement with the teacher on the test texts; one JSON line per (data set, seed).

--throughput times seed 0's teacher, the MiniLM reference (the encoder student in PyTorch:
sentence-transformers encode + the head), the student in ONNX int8 and the static student in one
process, one after another, at batch 1 and 64 on the same test texts; with folder sizes and load times
(the second load in the process: imports are paid once). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "distill.jsonl"
THROUGHPUT = HERE / "results" / "distill_throughput.jsonl"
LENGTH = {"bbc": 64}  # tokens per text for teacher and student; 128 elsewhere (bbc articles are long)
MODELS = ("teacher", "student", "student_int8", "static")


def main(argv=None) -> int:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mr,tweets,bbc")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--pool", type=int, default=500, help="unlabeled texts the teacher labels")
    p.add_argument("--max-test", type=int, default=200)
    p.add_argument("--teacher", default="prompt")
    p.add_argument("--teacher-backbone", default="smollm2-135m")
    p.add_argument("--work", type=Path, default=Path("/tmp/fewtune-distill-bench"))
    p.add_argument("--throughput", action="store_true")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="accuracy records (JSONL; default results/distill.jsonl)")
    args = p.parse_args(argv)
    RESULTS = args.out or RESULTS
    datasets = args.datasets.split(",")
    if args.summary:
        summary()
        return 0
    if args.throughput:
        for name in datasets:
            append(THROUGHPUT, throughput(name, args))
        summary()
        return 0
    done = {(r["dataset"], r["seed"]) for r in read(RESULTS)}
    for seed in [int(s) for s in args.seeds.split(",")]:  # seeds outermost: an interrupted run covers every set
        for name in datasets:
            if (name, seed) in done:
                continue
            record = cell(name, seed, args)
            append(RESULTS, record)
            print(json.dumps({k: record[k] for k in ("dataset", "seed")} |
                             {m: record[m]["accuracy"] for m in MODELS}), flush=True)
    summary()
    return 0


def cell(name: str, seed: int, args) -> dict:
    from fewtune import FewShotClassifier
    from fewtune.data import sample_k_shot
    from fewtune.distill import distill
    from fewtune.export import export_onnx
    from fewtune.saved_models import load_classifier

    train, test = split(name, args.max_test)
    folder = args.work / name / str(seed)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = sample_k_shot(train.labels, args.shots, seed)
    shots = train.subset(chosen)
    rest = np.setdiff1d(np.arange(len(train)), chosen)
    pool = np.sort(np.random.default_rng(seed).choice(rest, min(args.pool, len(rest)), replace=False))
    write_texts(folder / "pool.csv", [train.texts[i] for i in pool])
    length = LENGTH.get(name, 128)

    started = time.perf_counter()
    teacher = FewShotClassifier(args.teacher_backbone, args.teacher, params={"max_tokens": length}, seed=seed)
    teacher.fit(shots.texts, shots.labels)
    teacher_seconds = time.perf_counter() - started
    teacher.save(folder / "teacher", overwrite=True)
    del teacher
    record = {"dataset": name, "seed": seed, "K": args.shots, "n_pool": len(pool), "n_test": len(test),
              "max_tokens": length, "teacher": {"method": args.teacher, "backbone": args.teacher_backbone},
              "teacher_train_seconds": round(teacher_seconds, 2)}
    runs = {}
    for kind in ("encoder", "static"):
        runs[kind] = distill(folder / "teacher", folder / "pool.csv", folder / kind, student=kind, shots=shots,
                             seed=seed, params={"max_tokens": length} if kind == "encoder" else None,
                             overwrite=True)
    export_onnx(folder / "encoder", folder / "encoder-int8", int8=True, overwrite=True)
    paths = {"teacher": folder / "teacher", "student": folder / "encoder", "student_int8": folder / "encoder-int8",
             "static": folder / "static"}
    proba = {}
    for model, path in paths.items():
        clf = load_classifier(path)
        started = time.perf_counter()
        proba[model] = clf.predict_proba(test.texts)
        record[model] = scores(test.labels, proba[model], clf.classes_, time.perf_counter() - started)
        del clf
    for model in MODELS[1:]:
        record[model]["agreement_with_teacher"] = round(float(np.mean(
            proba[model].argmax(1) == proba["teacher"].argmax(1))), 4)
    record["distill"] = {kind: {"heldout": r["heldout"], "seconds": r["seconds"]} for kind, r in runs.items()}
    record.update(machine=machine(), versions=versions(), at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if seed != 0:  # seed 0's folders stay for --throughput
        shutil.rmtree(folder, ignore_errors=True)
    return record


def throughput(name: str, args) -> dict:
    from fewtune.saved_models import load_classifier

    folder = args.work / name / "0"
    paths = {"teacher": folder / "teacher", "reference": folder / "encoder", "student_int8": folder / "encoder-int8",
             "static": folder / "static"}
    _, test = split(name, args.max_test)
    texts = list(test.texts)
    record = {"dataset": name, "kind": "throughput", "n_texts": len(texts)}
    for model, path in paths.items():
        load_classifier(path)  # the first load pays the imports
        started = time.perf_counter()
        clf = load_classifier(path)
        load = time.perf_counter() - started
        slow = model == "teacher"
        one = texts[:16 if slow else 200]
        many = (texts * 20)[:128 if slow else 2048]
        clf.predict_proba(one[:2])  # warm-up
        repeats = 1 if slow else 3  # the fast ones take well under a second a pass: the median of three
        record[model] = {"load_seconds": round(load, 3), "folder_mb": round(size_mb(path), 2),
                         "batch1_texts_per_s": round(statistics.median(rate(clf, one, 1) for _ in range(repeats)), 2),
                         "batch64_texts_per_s": round(statistics.median(rate(clf, many, 64) for _ in range(repeats)), 2)}
        if model == "teacher":
            from fewtune.backbones import resolve_backbone

            record[model]["backbone_mb"] = round(size_mb(Path(resolve_backbone(args.teacher_backbone).path)), 1)
        print(model, record[model], flush=True)
        del clf
    ref, teacher = record["reference"], record["teacher"]
    for batch in ("batch1", "batch64"):
        key = f"{batch}_texts_per_s"
        record[f"int8_student_vs_teacher_{batch}"] = round(record["student_int8"][key] / teacher[key], 1)
        record[f"static_vs_reference_{batch}"] = round(record["static"][key] / ref[key], 1)
        record[f"static_vs_teacher_{batch}"] = round(record["static"][key] / teacher[key], 1)
    record.update(machine=machine(), versions=versions(), at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


def rate(clf, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        clf.predict_proba(texts[start:start + batch])
    return len(texts) / (time.perf_counter() - started)


def split(name: str, max_test: int):
    from fewtune.data import load_builtin

    train, test = load_builtin(name)
    if max_test and len(test) > max_test:
        test = test.subset(np.sort(np.random.default_rng(0).choice(len(test), max_test, replace=False)))
    return train, test


def scores(labels, proba: np.ndarray, classes, seconds: float) -> dict:
    from fewtune.metrics import calibration_report

    predicted = np.asarray(classes, dtype=object)[proba.argmax(1)]
    cal = calibration_report(labels, proba, classes)
    return {"accuracy": round(float(np.mean(predicted == np.asarray(labels, dtype=object))), 4),
            "ece": round(cal["ece"], 4), "nll": round(cal["nll"], 4), "predict_seconds": round(seconds, 2)}


def summary() -> None:
    records = read(RESULTS)
    if records:
        print("| data | seeds | teacher | MiniLM student | student int8 | static student | agree (student / static) |")
        print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == name]

        def cellof(model: str) -> str:
            acc = [100 * r[model]["accuracy"] for r in rows]
            ece = statistics.mean(100 * r[model]["ece"] for r in rows)
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            return f"{statistics.mean(acc):.1f} ± {sd:.1f} ({ece:.1f})"

        agree = [statistics.mean(100 * r[m]["agreement_with_teacher"] for r in rows) for m in ("student", "static")]
        beat = sum(r["student"]["accuracy"] > r["teacher"]["accuracy"] for r in rows)
        print(f"| {name} | {len(rows)} | {cellof('teacher')} | {cellof('student')} | {cellof('student_int8')} | "
              f"{cellof('static')} | {agree[0]:.1f} / {agree[1]:.1f} (student beat teacher on {beat}) |")
    for r in read(THROUGHPUT):
        print(f"\n{r['dataset']} throughput (texts/s at batch 1 / 64; load s; MB):")
        for m in ("teacher", "reference", "student_int8", "static"):
            x = r[m]
            extra = f" + backbone {x['backbone_mb']} MB" if "backbone_mb" in x else ""
            print(f"  {m:13s} {x['batch1_texts_per_s']:>9} / {x['batch64_texts_per_s']:>9}   load "
                  f"{x['load_seconds']} s   {x['folder_mb']} MB{extra}")
        print(f"  int8 student / teacher: {r['int8_student_vs_teacher_batch1']}x / {r['int8_student_vs_teacher_batch64']}x;"
              f" static / reference: {r['static_vs_reference_batch1']}x / {r['static_vs_reference_batch64']}x")


def write_texts(path: Path, texts: list[str]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), None) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_1min": round(os.getloadavg()[0], 2)}


def versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("fewtune", "torch", "transformers", "sentence-transformers", "model2vec", "onnxruntime", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    raise SystemExit(main())
