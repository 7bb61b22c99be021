"""How much can int8 speed up MiniLM's matrix products on this CPU at all?

    .venv/bin/python benchmarks/int8_ceiling.py     # under a minute
    # with the operator profile of a real export (serving.py's model):
    fewtune train --dataset bbc --shots 8 -p max_tokens=128 -o /tmp/m && fewtune export /tmp/m --format onnx
    .venv/bin/python benchmarks/int8_ceiling.py --exported /tmp/m.onnx

serving.py measures ONNX int8 at 1.44x the reference at batch 64 (issue 9's target is 2.5x). At batch 64
and 128 tokens the encoder's time is almost all in its matrix products (attention scores are ~5% of the
FLOPs at 128 tokens), and the fp32 products already run near the cores' FMA peak. So the end-to-end
ceiling of int8 is the ceiling of ONNX Runtime's int8 GEMM over its fp32 GEMM on this instruction set.

This builds one-node ONNX graphs with MiniLM-L6's three product shapes (a batch of 64 x 128 tokens:
M = 8192 rows; 384->384 as in Q/K/V/output, 384->1536 and 1536->384 as in the feed-forward), quantises
them with the same `quantize_dynamic` call as `fewtune export --int8` (QInt8 weights, per channel, the
activations quantised at run time by DynamicQuantizeLinear), and times fp32 against int8 in one process,
interleaved repeat by repeat. The products are weighted by how often each runs in a layer (4, 1, 1) to
give the ceiling for the whole encoder.

Appends one JSON line to benchmarks/results/int8_ceiling.jsonl with the CPU's vector extensions:
int8 GEMM gains most with VNNI (AVX512-VNNI / AVX-VNNI: one instruction per 4-way int8 dot product),
which this project's 2-core AMD EPYC does not have (AVX2 only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = {"qkvo 384->384": (384, 384, 4), "ffn up 384->1536": (384, 1536, 1), "ffn down 1536->384": (1536, 384, 1)}
EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile")


def _graph(path: Path, k: int, n: int, rng: np.random.Generator) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array((rng.standard_normal((k, n)) * 0.05).astype(np.float32), "W")
    node = helper.make_node("MatMul", ["X", "W"], ["Y"], name="matmul")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["m", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["m", n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _cpu_extensions() -> dict:
    flags = set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {name: name in flags for name in EXTENSIONS}


# Operators whose work is matrix products: counting all of Attention (its softmax too) as products makes
# the bound below an upper bound.
PRODUCT_OPS = {"MatMul", "Gemm", "Attention", "FusedMatMul"}


def _graph_bound(folder: Path, tokens: int, threads: int, product_speedup: float) -> dict:
    """Per-operator time of an exported fp32 graph (ONNX Runtime's profiler, batch 64 x tokens), and the
    best whole-graph speedup if every product ran `product_speedup` times faster and nothing else did."""
    import onnxruntime as ort

    manifest = json.loads((folder / "fewtune-onnx.json").read_text())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(folder / manifest["model"]), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {"input_ids": rng.integers(1000, 20000, (64, tokens)), "attention_mask": np.ones((64, tokens)),
                "token_type_ids": np.zeros((64, tokens))}
        feed = {i.name: feed[i.name].astype(np.int64) for i in session.get_inputs()}
        for _ in range(3):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] = per_op.get(e["args"]["op_name"], 0.0) + e["dur"]
    total = sum(per_op.values())
    share = sum(v for k, v in per_op.items() if k in PRODUCT_OPS) / total
    return {"folder": str(folder), "tokens": tokens, "operator_share": {k: round(v / total, 4) for k, v in
                                                                         sorted(per_op.items(), key=lambda kv: -kv[1])
                                                                         if v / total >= 0.001},
            "product_share": round(share, 4),
            "int8_speedup_bound": round(1 / (share / product_speedup + (1 - share)), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=64 * 128, help="rows of the activation (batch x tokens)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--exported", type=Path, help="an fp32 `fewtune export` folder: profile its operators at batch "
                   "64 x --tokens and bound the whole graph's int8 speedup (Amdahl) by the products' ceiling")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--out", type=Path, default=HERE / "results" / "int8_ceiling.jsonl")
    args = p.parse_args(argv)

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    shapes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (k, n, per_layer) in SHAPES.items():
            fp32, int8 = Path(tmp) / f"{k}x{n}.onnx", Path(tmp) / f"{k}x{n}.int8.onnx"
            _graph(fp32, k, n, rng)
            logging.disable(logging.WARNING)  # "consider pre-processing": that is for static quantisation
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
            logging.disable(logging.NOTSET)
            x = rng.standard_normal((args.rows, k)).astype(np.float32)
            sessions = {"fp32": _session(fp32, args.threads), "int8": _session(int8, args.threads)}
            times = {variant: [] for variant in sessions}
            for s in sessions.values():
                s.run(None, {"X": x})  # warm-up: first-run allocations and weight packing
            for _ in range(args.repeats):
                for variant, s in sessions.items():
                    start = time.perf_counter()
                    s.run(None, {"X": x})
                    times[variant].append(time.perf_counter() - start)
            best = {v: min(t) for v, t in times.items()}
            shapes[name] = {"k": k, "n": n, "per_layer": per_layer,
                            "fp32_ms": round(1000 * best["fp32"], 2), "int8_ms": round(1000 * best["int8"], 2),
                            "fp32_ms_median": round(1000 * statistics.median(times["fp32"]), 2),
                            "int8_ms_median": round(1000 * statistics.median(times["int8"]), 2),
                            "fp32_gflops": round(2 * args.rows * k * n / best["fp32"] / 1e9, 1),
                            "speedup": round(best["fp32"] / best["int8"], 3)}
            print(f"{name:20s} fp32 {shapes[name]['fp32_ms']:8.2f} ms ({shapes[name]['fp32_gflops']} GFLOP/s)"
                  f"   int8 {shapes[name]['int8_ms']:8.2f} ms   x{shapes[name]['speedup']}")
    fp32_layer = sum(s["fp32_ms"] * s["per_layer"] for s in shapes.values())
    int8_layer = sum(s["int8_ms"] * s["per_layer"] for s in shapes.values())
    record = {"kind": "int8_gemm_ceiling", "rows": args.rows, "threads": args.threads, "repeats": args.repeats,
              "shapes": shapes, "layer_products_speedup": round(fp32_layer / int8_layer, 3),
              "cpu_extensions": _cpu_extensions(), "onnxruntime": ort.__version__, "numpy": np.__version__,
              "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), platform.processor()),
              "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if args.exported:
        record["graph"] = _graph_bound(args.exported, args.tokens, args.threads, record["layer_products_speedup"])
        print(f"{args.exported}: matrix products {100 * record['graph']['product_share']:.1f}% of the fp32 time; "
              f"int8 can reach at most x{record['graph']['int8_speedup_bound']} on this graph")
    print(f"all of a layer's products: int8 x{record['layer_products_speedup']} over fp32; "
          f"extensions {', '.join(k for k, v in record['cpu_extensions'].items() if v)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
