"""Data-parallel pretraining: the real `fewtune pretrain` under `accelerate launch`, 2 CPU processes over gloo.

Not marked slow on purpose: this is the check that the training loop really is data-parallel (two
processes that trained apart would end with different weights). About 30-60 s on 2 cores, mostly
two interpreters importing torch and transformers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU_DDP = ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"
TINY = {"steps": 6, "batch_size": 4, "block_size": 16, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 300,
        "learning_rate": 3e-3, "save_every": 3, "heldout": 0.1, "eval_tokens": 512}


def test_two_processes_train_data_parallel_and_end_with_identical_weights(tmp_path):
    pytest.importorskip("accelerate")
    words = ["the", "movie", "was", "great", "terrible", "plot", "acting", "boring", "and", "."]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words[(i * j) % len(words)] for j in range(12)) for i in range(300)) + "\n")
    out = tmp_path / "ddp-lm"
    params = [x for k, v in TINY.items() for x in ("-p", f"{k}={v}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_DDP),
               "--num_processes", "2", "-m", "fewtune.cli", "pretrain", "--corpus", str(corpus), "--out", str(out),
               *params, "--json", "--quiet"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]

    facts = json.loads(proc.stdout)  # only the main process prints
    assert facts["processes"] == 2 and facts["distributed"] == "MULTI_CPU"
    # Each process hashed its own weights after the last step: one hash per rank, all equal.
    hashes = facts["replica_hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    # Both processes drew their own batches: twice the tokens of one process per step.
    assert facts["tokens_seen"] == 2 * TINY["steps"] * TINY["batch_size"] * TINY["block_size"]
    assert facts["perplexity_after"] < facts["perplexity_before"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert not (tmp_path / "ddp-lm.work").exists()
