"""Fast CPU inference: PyTorch vs ONNX Runtime vs ONNX int8, and the server's latency under load.

    .venv/bin/python benchmarks/serving.py           # the full run: about 10 min on an idle 2-core machine
    .venv/bin/python benchmarks/serving.py --smoke   # 1-3 min: checks the script, not the numbers

One setfit model (MiniLM, bbc, K=8, seed 0, texts cut at 128 tokens) is trained, exported to ONNX in
fp32 and int8, and timed in one process, the variants interleaved repeat by repeat so that a change in
the machine's load hits all of them alike:

- reference: sentence-transformers `SentenceTransformer.encode` on the trained encoder + the same
  linear head (numpy), the way one would serve a SetFit model without fewtune;
- pytorch: `FewShotClassifier.predict_proba`; onnx, onnx-int8: `OnnxClassifier.predict_proba`;

at batch 1 (one call per text) and 64, with `--threads` intra-op threads everywhere (2: the machine's
cores). Accuracy of each on the test texts. Then `fewtune serve` runs in a subprocess on a free
loopback port and `--clients` threads send `--requests` one-text /predict requests in all (bounded
in count and by --max-seconds): p50/p99 latency, requests/s, failed requests.

Appends JSON lines to benchmarks/results/serving.jsonl (kind: throughput, server, summary), each with
the machine, load average and library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = {"int8_speedup_vs_reference_batch64": 2.5, "max_accuracy_loss_points": 0.5}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="bbc")
    p.add_argument("--shots", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", "--max-seq-length", dest="max_tokens", type=int, default=128)  # the old name too
    p.add_argument("--model", help="a trained setfit/linear-probe/finetune folder to use instead of training one")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for PyTorch and ONNX Runtime")
    p.add_argument("--max-test", type=int, default=0, help="test texts (0 = the whole test split)")
    p.add_argument("--batch1-texts", type=int, default=64, help="texts timed one call each at batch 1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clients", type=int, default=8, help="concurrent clients against the server")
    p.add_argument("--requests", type=int, default=400, help="requests in all, per served model")
    p.add_argument("--max-seconds", type=float, default=300, help="stop sending to a model after this long")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, results to a temporary file (unless --out)")
    p.add_argument("--out", default=None, help="JSON lines file (default: benchmarks/results/serving.jsonl)")
    args = p.parse_args(argv)
    if args.smoke:
        args.max_test, args.batch1_texts, args.repeats = args.max_test or 64, 8, 1
        args.clients, args.requests = min(args.clients, 4), min(args.requests, 40)
    out = Path(args.out or (Path(tempfile.gettempdir()) / "serving-smoke.jsonl" if args.smoke
                            else HERE / "results" / "serving.jsonl"))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from fewtune import FewShotClassifier
    from fewtune.data import load_builtin, sample_k_shot
    from fewtune.export import OnnxClassifier, export_onnx

    work = Path(tempfile.mkdtemp(prefix="fewtune-serving-"))
    pool, test = load_builtin(args.dataset)
    if args.max_test and args.max_test < len(test):
        test = test.subset(np.sort(np.random.default_rng(0).choice(len(test), args.max_test, replace=False)))
    setup = {"dataset": args.dataset, "n_test": len(test), "threads": args.threads, "smoke": args.smoke}
    if args.model:
        folder = Path(args.model)
        setup["model"] = str(folder)
    else:
        folder = work / "model"
        shots = pool.subset(sample_k_shot(pool.labels, args.shots, args.seed))
        started = time.perf_counter()
        FewShotClassifier(params={"max_tokens": args.max_tokens}, seed=args.seed).fit(
            shots.texts, shots.labels).save(folder)
        setup.update(method="setfit", backbone="minilm", K=args.shots, seed=args.seed,
                     max_tokens=args.max_tokens, train_seconds=round(time.perf_counter() - started, 1))
    exports = {}
    for name, int8 in (("onnx", False), ("onnx-int8", True)):
        started = time.perf_counter()
        manifest = export_onnx(folder, work / name, int8=int8)
        exports[name] = {"seconds": round(time.perf_counter() - started, 1), "fused": manifest["fused"],
                         "probe_max_abs_diff": manifest["check"]["max_abs_probability_diff"],
                         "mb": round(sum(f.stat().st_size for f in (work / name).rglob("*") if f.is_file()) / 1e6, 1)}
    setup["exports"] = exports
    print(f"model and exports ready in {work}", file=sys.stderr)

    runners = _runners(folder, work, args.threads, FewShotClassifier, OnnxClassifier)
    texts, labels = test.texts, np.array(test.labels, dtype=object)
    records = _throughput(runners, texts, labels, args, np)
    records += _server(folder, work, test.texts, args)
    records.append(_summary(records))
    context = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "setup": setup,
               "machine": _machine(), "versions": _versions(), "fewtune_git": _git()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps({**record, **context}) + "\n")
    _print(records)
    print(f"appended {len(records)} records to {out}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)  # the trained model and its exports: ~250 MB
    return 0


def _runners(folder: Path, work: Path, threads: int, FewShotClassifier, OnnxClassifier) -> dict:
    """name -> predict_proba(texts, batch_size) for the four variants."""
    import numpy as np
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    clf = FewShotClassifier.load(folder, device="cpu")
    # The reference: the saved encoder loaded by sentence-transformers itself, and the head's tensors.
    from fewtune.backbones.quiet_loading import quiet_libraries

    with quiet_libraries():  # no "Loading weights" bar in the benchmark's log
        body = SentenceTransformer(str(folder / "body"), device="cpu")
    head = load_file(str(folder / "head.safetensors"))
    weight, bias = head["head.weight"].double().numpy(), head["head.bias"].double().numpy()

    def reference(texts, batch_size):
        z = body.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False) @ weight.T + bias
        z -= z.max(axis=1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    def pytorch(texts, batch_size):
        clf.model_.params.encode_batch_size = batch_size
        return clf.predict_proba(texts)

    onnx = OnnxClassifier.load(work / "onnx", threads=threads)
    int8 = OnnxClassifier.load(work / "onnx-int8", threads=threads)
    runners = {"reference": reference, "pytorch": pytorch,
               "onnx": lambda t, b: onnx.predict_proba(t, batch_size=b),
               "onnx-int8": lambda t, b: int8.predict_proba(t, batch_size=b)}
    return {name: (run, clf.classes_) for name, run in runners.items()}


def _throughput(runners: dict, texts: list[str], labels, args, np) -> list[dict]:
    records = []
    for run, _ in runners.values():
        run(texts[:8], 8)  # warm-up: first-call allocations, lazy initialisation
    for batch_size in (1, 64):
        subset = texts[:args.batch1_texts] if batch_size == 1 else texts
        seconds = {name: [] for name in runners}
        accuracy = {}
        for repeat in range(args.repeats):
            for name, (run, classes) in runners.items():
                started = time.perf_counter()
                if batch_size == 1:
                    proba = np.vstack([run([t], 1) for t in subset])
                else:
                    proba = run(subset, batch_size)
                seconds[name].append(time.perf_counter() - started)
                if repeat == 0:
                    accuracy[name] = float(np.mean(classes[proba.argmax(1)] == labels[:len(subset)]))
            print(f"batch {batch_size}, repeat {repeat + 1}/{args.repeats}: "
                  + ", ".join(f"{n} {len(subset) / s[-1]:.1f}/s" for n, s in seconds.items()), file=sys.stderr)
        reference = statistics.median(seconds["reference"])
        for name, times in seconds.items():
            records.append({
                "kind": "throughput", "variant": name, "batch_size": batch_size, "n": len(subset),
                "seconds": [round(t, 3) for t in times],
                "sentences_per_s": round(len(subset) / statistics.median(times), 2),
                "sentences_per_s_best": round(len(subset) / min(times), 2),
                "speedup_vs_reference": round(reference / statistics.median(times), 3),
                "accuracy": round(accuracy[name], 4), "load_avg_1min": round(os.getloadavg()[0], 2),
            })
    return records


def _server(folder: Path, work: Path, texts: list[str], args) -> list[dict]:
    """`fewtune serve` in a subprocess on a free loopback port; bounded concurrent one-text requests."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    models = {"pytorch": folder, "onnx-int8": work / "onnx-int8"}
    command = [sys.executable, "-m", "fewtune.cli", "serve", *(f"{k}={v}" for k, v in models.items()),
               "--host", "127.0.0.1", "--port", str(port), "--no-teach", "--threads", str(args.threads)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    records = []
    try:
        _wait_for(base, server, httpx)
        for name in models:
            records.append(_load(base, name, texts, args, httpx))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return records


def _wait_for(base: str, server, httpx, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"fewtune serve exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError("fewtune serve did not answer /health in time")


def _load(base: str, model: str, texts: list[str], args, httpx) -> dict:
    # A client sends what the server accepts: a few BBC articles exceed `fewtune serve`'s default
    # 10,000 characters per text (answered 413, as they should be). The model reads the first
    # max_tokens tokens anyway, so cutting them changes no prediction.
    texts = [t[:10_000] for t in texts]
    lock = threading.Lock()
    state = {"next": 0, "latencies": [], "failed": 0, "errors": []}
    deadline = time.monotonic() + args.max_seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            http.get("/health")  # connect before timing
            while time.monotonic() < deadline:
                with lock:
                    if state["next"] >= args.requests:
                        return
                    n = state["next"]
                    state["next"] += 1
                started = time.perf_counter()
                try:
                    response = http.post("/predict", json={"model": model, "texts": [texts[n % len(texts)]]})
                    ok = response.status_code == 200
                    why = None if ok else f"{response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as e:
                    ok, why = False, f"{type(e).__name__}: {e}"
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        state["latencies"].append(elapsed)
                    else:
                        state["failed"] += 1
                        state["errors"] = (state["errors"] + [why])[:5]

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = sorted(state["latencies"])

    def pct(q: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"kind": "server", "model": model, "clients": args.clients, "requests": len(lat) + state["failed"],
            "failed": state["failed"], "errors": state["errors"], "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": round(1000 * lat[-1], 1) if lat else None,
            "requests_per_s": round(len(lat) / wall, 2), "wall_s": round(wall, 1),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def _summary(records: list[dict]) -> dict:
    by = {(r["variant"], r["batch_size"]): r for r in records if r["kind"] == "throughput"}
    int8, pt = by[("onnx-int8", 64)], by[("pytorch", 64)]
    loss = round(100 * (pt["accuracy"] - int8["accuracy"]), 2)
    servers = [r for r in records if r["kind"] == "server"]
    return {"kind": "summary", "target": TARGET,
            "int8_speedup_vs_reference_batch64": int8["speedup_vs_reference"],
            "int8_accuracy_loss_points": loss,
            "met": int8["speedup_vs_reference"] >= TARGET["int8_speedup_vs_reference_batch64"]
                   and loss <= TARGET["max_accuracy_loss_points"],
            "server_failed_requests": sum(r["failed"] for r in servers)}


def _print(records: list[dict]) -> None:
    print(f"{'variant':10s} {'batch':>5s} {'sent/s':>8s} {'best':>8s} {'vs ref':>7s} {'accuracy':>8s}")
    for r in records:
        if r["kind"] == "throughput":
            print(f"{r['variant']:10s} {r['batch_size']:5d} {r['sentences_per_s']:8.1f} "
                  f"{r['sentences_per_s_best']:8.1f} {r['speedup_vs_reference']:6.2f}x {r['accuracy']:8.4f}")
    for r in records:
        if r["kind"] == "server":
            print(f"server {r['model']}: {r['requests']} requests from {r['clients']} clients, {r['failed']} failed, "
                  f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['requests_per_s']} req/s")
    s = records[-1]
    print(f"int8 at batch 64: {s['int8_speedup_vs_reference_batch64']}x the reference, accuracy loss "
          f"{s['int8_accuracy_loss_points']} points; target met: {s['met']}")


def _machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else None
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": model, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
            "int8_instructions": [f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2") if f" {f}" in flags]}


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("fewtune", "torch", "onnxruntime", "onnx", "sentence-transformers", "transformers", "tokenizers",
                 "fastapi", "uvicorn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
