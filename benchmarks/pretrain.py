"""Issue 8 §5: few-shot accuracy on mr from our own pretrained model, before and after domain adaptation,
beside SmolLM2; and pretraining throughput for 1 and 2 processes.

Five backbones, each then few-shot trained with the `prompt` method (LM-BFF-style, LoRA) on the same
K-shot draws of mr (K = 8, 16; seeds 0-2; the fixed 300-example test subset), through `fewtune bench`'s
runner:

    tiny-random       the tiny preset, untrained (steps=0), with tiny-pretrained's tokenizer
    tiny-pretrained   the tiny preset pretrained from scratch on general text (BBC news + chitchat dialogue)
    tiny-adapted      tiny-pretrained after continued pretraining on IMDB review texts (labels unused)
    smollm2-135m      SmolLM2-135M-Instruct as packaged
    smollm2-adapted   SmolLM2 after continued pretraining on the same IMDB texts

mr is Rotten Tomatoes sentences, so IMDB reviews are in-domain (movie reviews) but disjoint from its
test split; the exact-match overlap of every corpus with mr's test split is counted and reported.
Built-in corpora never train on their own test split (IMDB's held-out perplexity is scored on it).

    .venv/bin/python benchmarks/pretrain.py              # the experiment; resumable, skips what is done
    .venv/bin/python benchmarks/pretrain.py --smoke      # a few minutes: the smallest sizes, results in models/

Models go to models/pretrain-bench/ (git-ignored); results to benchmarks/results/pretrain_models.jsonl
(each pretrain/adapt run's facts), pretrain_throughput.jsonl, pretrain_fewshot.jsonl (one line per
few-shot run, `fewtune bench`'s format) and pretrain.md (the tables). Stopped at any point, it
continues where it stopped: finished models and runs are skipped, and an interrupted pretraining
resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CPU_DDP = ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain-corpus", default="bbc,chitchat", help="general text for pretraining from scratch")
    p.add_argument("--adapt-corpus", default="imdb", help="in-domain text for continued pretraining")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--pretrain-steps", type=int, default=1000, help="tiny preset: 16 × 256 tokens a step")
    p.add_argument("--adapt-steps", type=int, default=300, help="tiny-adapted: 16 × 256 tokens a step")
    p.add_argument("--smollm-adapt-steps", type=int, default=60, help="smollm2-adapted: 8 × 128 tokens a step")
    p.add_argument("--shots", default="8,16")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="prompt", help="few-shot methods on every backbone (causal-LM methods)")
    p.add_argument("--max-test", type=int, default=300)
    p.add_argument("--throughput-steps", type=int, default=30, help="steps timed for 1 and for 2 processes")
    p.add_argument("--skip-smollm", action="store_true", help="leave SmolLM2 out (it needs `fewtune models install`)")
    p.add_argument("--smoke", action="store_true", help="the smallest sizes, to check that everything runs")
    p.add_argument("--models-dir", type=Path, default=None, help="default: models/pretrain-bench (smoke: .../smoke)")
    p.add_argument("--results-dir", type=Path, default=None, help="default: benchmarks/results (smoke: MODELS/results)")
    return p.parse_args(argv)


class Plan:
    """Sizes and folders for the full experiment or the smoke run."""

    def __init__(self, args):
        self.args = args
        self.models = args.models_dir or ROOT / "models" / "pretrain-bench" / ("smoke" if args.smoke else "")
        self.results = args.results_dir or (self.models / "results" if args.smoke else ROOT / "benchmarks" / "results")
        self.models.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        self.pretrain_corpora = args.pretrain_corpus.split(",")
        self.adapt_corpora = args.adapt_corpus.split(",")
        if args.smoke:
            # The same code path on a few hundred texts of each corpus, a 2-layer model and a few steps.
            self.pretrain_corpora = [subset(c, self.models / "corpora", 300) for c in self.pretrain_corpora]
            self.adapt_corpora = [subset(c, self.models / "corpora", 300) for c in self.adapt_corpora]
            small = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 512,
                     "tokenizer_texts": 400, "heldout": 0.1, "eval_tokens": 1024, "batch_size": 4, "block_size": 64}
            self.pretrain = {**small, "steps": 10}
            self.adapt = {"steps": 5, "batch_size": 4, "block_size": 64, "learning_rate": 5e-4, "heldout": 0.1,
                          "eval_tokens": 1024}
            self.smollm_adapt = {"steps": 2, "batch_size": 1, "block_size": 32, "heldout": 0.1, "eval_tokens": 128}
            self.throughput = {**small, "steps": 5}
            self.shots, self.seeds, self.max_test = [8], [0], 20
            self.method_params = {"epochs": 1}
        else:
            self.pretrain = {"steps": args.pretrain_steps, "eval_every": max(1, args.pretrain_steps // 10)}
            # From a model pretrained at 2e-3: a tenth of that, so adaptation moves it without undoing it.
            self.adapt = {"steps": args.adapt_steps, "batch_size": 16, "learning_rate": 2e-4}
            # SmolLM2 sees the same IMDB stream; the usual continued-pretraining rate for a model this size.
            # (about 40 tokens/s for full fine-tuning of 135M parameters on 2 cores: 60 steps take ~25 min).
            self.smollm_adapt = {"steps": args.smollm_adapt_steps, "batch_size": 8, "block_size": 128,
                                 "learning_rate": 5e-5, "eval_tokens": 8192, "save_every": 10}
            self.throughput = {"steps": args.throughput_steps, "save_every": 0}
            self.shots = [int(k) for k in args.shots.split(",")]
            self.seeds = [int(s) for s in args.seeds.split(",")]
            self.max_test = args.max_test
            self.method_params = {}


def subset(corpus: str, folder: Path, n: int) -> str:
    """The first n texts of both parts of a corpus as a JSONL file (a smoke run's corpus)."""
    from fewtune.pretrain.corpus import HELDOUT, TRAIN, open_corpora

    path = folder / f"{Path(corpus).stem}.jsonl"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (source,) = open_corpora([corpus])
        texts = list(islice(source.texts(TRAIN), n)) + list(islice(source.texts(HELDOUT), n // 10))
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


def fewtune_command(*args: str, processes: int = 1) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "fewtune.cli", *args]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_DDP), "--num_processes",
            str(processes), "-m", "fewtune.cli", *args]


def params(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in ("-p", f"{k}={v}")]


def run_json(command: list[str], what: str) -> dict:
    print(f"[{stamp()}] {what}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True, env=ENV, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}); see the messages above")
    return json.loads(proc.stdout)


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def recorded(path: Path, field: str) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r[field]: r for r in rows}


def append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# --- stages -------------------------------------------------------------------------------------------
def build_model(plan: Plan, label: str, args: list[str]) -> Path:
    """Pretrain or adapt into models/LABEL unless it is there; record its facts once."""
    out = plan.models / label
    facts_file = out / "fewtune_pretrain.json"
    if facts_file.is_file():
        facts = json.loads(facts_file.read_text())
    else:
        facts = run_json(fewtune_command(*args, "--out", str(out), "--resume", "--json", "--quiet"), label)
    log = plan.results / "pretrain_models.jsonl"
    if label not in recorded(log, "label"):
        keep = ("kind", "objective", "preset", "backbone", "model", "tokenizer", "params", "steps", "block_size",
                "tokens_seen", "train_tokens", "heldout_tokens", "perplexity_before", "perplexity_after",
                "perplexity_curve", "train_seconds", "tokens_per_second", "resumed_from_step", "processes",
                "threads_per_process", "corpora", "versions", "finished")
        append(log, {"label": label, **{k: facts[k] for k in keep if k in facts}, "command": args})
    return out


def throughput(plan: Plan, tokenizer: Path) -> None:
    log = plan.results / "pretrain_throughput.jsonl"
    done = recorded(log, "label")
    for processes in (1, 2):
        label = f"{plan.args.preset}-{processes}proc"
        if label in done:
            continue
        out = plan.models / f"throughput-{label}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(out.parent / f"{out.name}.work", ignore_errors=True)
        args = ["pretrain", *sum((["--corpus", c] for c in plan.pretrain_corpora), []), "--preset", plan.args.preset,
                "--tokenizer", str(tokenizer), *params(plan.throughput), "--out", str(out), "--json", "--quiet"]
        load = os.getloadavg()[0]
        facts = run_json(fewtune_command(*args, processes=processes), f"throughput, {processes} process(es)")
        append(log, {"label": label, "processes": processes, "threads_per_process": facts["threads_per_process"],
                     "tokens_per_second": facts["tokens_per_second"], "tokens_seen": facts["tokens_seen"],
                     "train_seconds": facts["train_seconds"], "steps": facts["steps"],
                     "batch_size_per_process": facts["params"]["batch_size"], "block_size": facts["block_size"],
                     "parameters": facts["model"]["parameters"], "replicas_identical":
                     None if facts["replica_hashes"] is None else len(set(facts["replica_hashes"])) == 1,
                     "load_avg_1min": [round(load, 2), round(os.getloadavg()[0], 2)], "cpu_count": os.cpu_count(),
                     "finished": stamp()})
        shutil.rmtree(out, ignore_errors=True)


def few_shot(plan: Plan, backbones: dict[str, str]) -> Path:
    from fewtune.bench.plan import Variant, data_source, plan_runs
    from fewtune.bench.runner import run_all

    out = plan.results / "pretrain_fewshot.jsonl"
    source = data_source("mr")
    variants = [Variant(m, dict(plan.method_params)) for m in plan.args.methods.split(",")]
    runs = []
    for backbone in backbones.values():
        runs += plan_runs([source], plan.shots, plan.seeds, variants, max_test=plan.max_test, backbone=backbone)

    def report(kind, run, record, why):
        if kind != "start":
            what = f"{run['backbone']} K={run['K']} seed={run['seed']} {run['method']}"
            print(f"[{stamp()}] {what}: " + (f"accuracy {record['accuracy']:.3f}" if record else f"FAILED {why[:200]}"),
                  file=sys.stderr, flush=True)

    counts = run_all(runs, out, python=sys.executable, timeout=3 * 3600, on_event=report,
                     notes=["benchmarks/pretrain.py (issue 8)"])
    print(f"[{stamp()}] few-shot: {counts}", file=sys.stderr)
    return out


def overlap_with_mr_test(corpora: list[str]) -> int:
    """Training texts of `corpora` that are (normalised) exactly a text of mr's test split."""
    from fewtune.data import load_builtin
    from fewtune.data.builtin import split_key
    from fewtune.pretrain.corpus import TRAIN, iter_texts, open_corpora

    test = {split_key(t) for t in load_builtin("mr")[1].texts}
    return sum(split_key(t) in test for t in iter_texts(open_corpora(corpora), TRAIN))


# Held-out perplexity on the adaptation corpus: the adapted model's facts hold it before and after.
ADAPTATION_PERPLEXITY = {"tiny-pretrained": ("tiny-adapted", "perplexity_before"),
                         "tiny-adapted": ("tiny-adapted", "perplexity_after"),
                         "smollm2-135m": ("smollm2-adapted", "perplexity_before"),
                         "smollm2-adapted": ("smollm2-adapted", "perplexity_after")}


def summarize(plan: Plan, backbones: dict[str, str], fewshot: Path) -> Path:
    from fewtune.bench.records import load_runs

    runs = [r for r in load_runs(fewshot) if r.get("backbone") in backbones.values()]
    models = recorded(plan.results / "pretrain_models.jsonl", "label")
    speed = recorded(plan.results / "pretrain_throughput.jsonl", "label")
    methods = plan.args.methods.split(",")
    lines = ["# Pretraining and domain adaptation before few-shot training (issue 8)", "",
             f"Written by `benchmarks/pretrain.py` on {stamp()}; {os.cpu_count()} CPU cores.", "",
             f"Few-shot accuracy (%) on mr, mean ± std over seeds {', '.join(map(str, plan.seeds))} on the fixed "
             f"{plan.max_test}-example test subset. Perplexity: on the adaptation corpus's held-out texts "
             f"({', '.join(plan.args.adapt_corpus.split(','))}); the tiny models and SmolLM2 have different "
             "tokenizers, so compare it within a family only.", "",
             "| backbone | method | held-out perplexity | " + " | ".join(f"K={k}" for k in plan.shots) + " |",
             "|" + "---|" * (3 + len(plan.shots))]
    for label, backbone in backbones.items():
        source, field = ADAPTATION_PERPLEXITY.get(label, (None, None))
        ppl = models.get(source, {}).get(field, "–") if source else "–"
        for method in methods:
            cells = []
            for k in plan.shots:
                acc = [100 * r["accuracy"] for r in runs
                       if r["backbone"] == backbone and r["K"] == k and r["method"] == method]
                spread = f" ± {np.std(acc, ddof=1):.1f}" if len(acc) > 1 else ""
                cells.append(f"{np.mean(acc):.1f}{spread} (n={len(acc)})" if acc else "–")
            lines.append(f"| {label} | {method} | {ppl} | " + " | ".join(cells) + " |")
    lines += ["", "Models:", "", "| model | corpus | steps | tokens seen | held-out perplexity before → after | "
              "train s | tokens/s |", "|---|---|---|---|---|---|---|"]
    for label, m in models.items():
        corpus = ", ".join(Path(c["spec"]).name for c in m.get("corpora", []))
        lines.append(f"| {label} | {corpus} | {m.get('steps')} | {m.get('tokens_seen', 0):,} | "
                     f"{m.get('perplexity_before')} → {m.get('perplexity_after')} | {m.get('train_seconds')} | "
                     f"{m.get('tokens_per_second')} |")
    lines += ["", "Pretraining throughput (the same preset, corpus and per-process batch; 2 processes = data "
              "parallel over gloo, one thread each):", "", "| run | processes | threads each | tokens/s | "
              "replicas identical | load avg before, after |", "|---|---|---|---|---|---|"]
    for label, r in speed.items():
        lines.append(f"| {label} | {r['processes']} | {r['threads_per_process']} | {r['tokens_per_second']:,} | "
                     f"{r['replicas_identical']} | {r['load_avg_1min']} |")
    overlaps = {c: overlap_with_mr_test([c]) for c in plan.pretrain_corpora + plan.adapt_corpora}
    lines += ["", "Training texts of each corpus identical (case and spacing aside) to a text of mr's test split: "
              + ", ".join(f"{Path(c).name} {n}" for c, n in overlaps.items()) + ".", ""]
    path = plan.results / ("pretrain_smoke.md" if plan.args.smoke else "pretrain.md")
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = Plan(args)
    started = time.perf_counter()
    corpus_args = lambda corpora: sum((["--corpus", c] for c in corpora), [])  # noqa: E731
    pretrained = build_model(plan, "tiny-pretrained", ["pretrain", *corpus_args(plan.pretrain_corpora),
                                                       "--preset", args.preset, *params(plan.pretrain)])
    random_init = build_model(plan, "tiny-random", ["pretrain", *corpus_args(plan.pretrain_corpora), "--preset",
                                                    args.preset, "--tokenizer", str(pretrained),
                                                    *params({**plan.pretrain, "steps": 0})])
    adapted = build_model(plan, "tiny-adapted", ["adapt", "--backbone", str(pretrained),
                                                 *corpus_args(plan.adapt_corpora), *params(plan.adapt)])
    backbones = {"tiny-random": str(random_init), "tiny-pretrained": str(pretrained), "tiny-adapted": str(adapted)}
    if not args.skip_smollm:
        smollm_adapted = build_model(plan, "smollm2-adapted", ["adapt", "--backbone", "smollm2-135m",
                                                               *corpus_args(plan.adapt_corpora),
                                                               *params(plan.smollm_adapt)])
        backbones.update({"smollm2-135m": "smollm2-135m", "smollm2-adapted": str(smollm_adapted)})
    throughput(plan, pretrained)
    fewshot = few_shot(plan, backbones)
    table = summarize(plan, backbones, fewshot)
    print(table.read_text())
    print(f"[{stamp()}] done in {time.perf_counter() - started:.0f} s; tables in {table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
