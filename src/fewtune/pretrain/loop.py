"""The training loop shared by pretraining from scratch and continued pretraining of a causal LM.

Next-token prediction on random windows of the tokenized corpus; AdamW with linear warm-up and
cosine decay; held-out perplexity at the start, every `eval_every` steps and at the end; checkpoints
every `save_every` steps. It runs through accelerate's Accelerator, so the same code trains in one
process or data-parallel under `accelerate launch` (gloo on CPUs, NCCL on GPUs, FSDP from a config
file): each process draws its own windows, gradients are averaged across processes, and every
process steps the same optimizer to the same weights.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..backbones import pick_device
from ..storage.checkpoint import load_checkpoint, save_checkpoint
from ..training.tracking import DEFAULT_DIR, make_trackers
from .params import LoopParams
from .tokens import TokenStream, eval_windows, sample_batch


def lr_at(step: int, p: LoopParams) -> float:
    """Linear warm-up to p.learning_rate, then cosine decay to p.learning_rate × min_lr_ratio at the last step
    (nanoGPT's schedule)."""
    warmup = int(p.warmup_ratio * p.steps)
    if step < warmup:
        return p.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, p.steps - warmup)
    floor = p.learning_rate * p.min_lr_ratio
    return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (p.learning_rate - floor)


def make_accelerator(device: str | None = None, *, log_with: list[str] | None = None, logging_dir=None,
                     run_name: str = "fewtune", config: dict | None = None):
    """An Accelerator for this process. Without a GPU it is forced onto the CPU: under `accelerate launch`
    that makes the processes a gloo group rather than independent runs (accelerate only infers CPU
    training for processes started by mpirun). log_with: Accelerate trackers (tensorboard, wandb, mlflow,
    trackio) that `accelerator.log` in the loops writes to (the main process only), under logging_dir,
    built as every fewtune run builds them (training.tracking.make_trackers)."""
    from accelerate import Accelerator

    trackers = make_trackers(log_with, logging_dir, run_name) if log_with else None
    accelerator = Accelerator(cpu=pick_device(device) == "cpu", log_with=trackers,
                              project_dir=str(logging_dir or DEFAULT_DIR))
    if log_with:
        accelerator.init_trackers(run_name, config={k: v for k, v in (config or {}).items()
                                                    if isinstance(v, (bool, str, int, float))})
    return accelerator


def make_optimizer(model, p: LoopParams, device) -> torch.optim.Optimizer:
    # Decay the matrices only: decaying norm gains and biases toward 0 only hurts (nanoGPT, GPT-3).
    params = [t for t in model.parameters() if t.requires_grad]
    groups = [{"params": [t for t in params if t.dim() >= 2], "weight_decay": p.weight_decay},
              {"params": [t for t in params if t.dim() < 2], "weight_decay": 0.0}]
    # The fused kernel does the whole update in one pass: several times faster on CPU (training/optim.py).
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=p.learning_rate, betas=(0.9, 0.95), fused=fused)


def train_causal_lm(model, train: TokenStream, heldout: TokenStream, p: LoopParams, *, block_size: int,
                    accelerator, work: Path, resume: bool, progress,
                    on_step: Callable[[int], None] | None = None) -> tuple[object, dict]:
    """Train `model` (unprepared, on the CPU); return (the prepared model, facts about the run)."""
    optimizer = make_optimizer(model, p, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    tokens, held = train.array(), eval_windows(heldout.array(), block_size=block_size)
    checkpoint = work / "checkpoint"
    facts: dict = {"losses": [], "perplexities": [], "tokens_seen": 0, "train_seconds": 0.0}
    start = 0
    if resume:
        facts = load_checkpoint(checkpoint, model, optimizer)
        start = facts["step"]
        facts["resumed_from_step"] = start
    else:
        facts["perplexities"].append([0, perplexity(model, held, p.batch_size, accelerator)])

    task = progress.add("Training", total=p.steps)
    progress.advance(task, start)
    log_every = max(1, p.steps // 200)  # at most ~200 points of loss curve in the facts
    model.train()
    for step in range(start, p.steps):
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, p)
        x, y = sample_batch(tokens, seed=p.seed, step=step, rank=rank, batch_size=p.batch_size, block_size=block_size)
        x, y = x.to(accelerator.device), y.to(accelerator.device)
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        accelerator.backward(loss)
        if p.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = accelerator.reduce(loss.detach(), "mean").item()  # .item() waits for the step: honest timing
        facts["train_seconds"] += time.perf_counter() - started
        facts["tokens_seen"] += p.batch_size * block_size * world
        done = step + 1
        accelerator.log({"train/loss": loss, "train/lr": optimizer.param_groups[0]["lr"]}, step=done)
        if done % log_every == 0 or done == p.steps:
            facts["losses"].append([done, round(loss, 5)])
        if p.eval_every and done % p.eval_every == 0 and done < p.steps:
            facts["perplexities"].append([done, perplexity(model, held, p.batch_size, accelerator)])
            accelerator.log({"eval/perplexity": facts["perplexities"][-1][1]}, step=done)
            model.train()
        if p.save_every and done % p.save_every == 0 and done < p.steps:
            save_checkpoint(checkpoint, model, optimizer, {**facts, "step": done}, is_main=accelerator.is_main_process)
            accelerator.wait_for_everyone()
        progress.advance(task)
        if on_step is not None:
            on_step(done)
    if facts["perplexities"][-1][0] != p.steps:  # steps=0: the start was the end
        facts["perplexities"].append([p.steps, perplexity(model, held, p.batch_size, accelerator)])
    if facts["perplexities"][-1][1] is not None:
        accelerator.log({"eval/perplexity": facts["perplexities"][-1][1]}, step=p.steps)
    facts["replica_hashes"] = _replica_hashes(model, accelerator)
    return model, facts


@torch.no_grad()
def perplexity(model, windows: torch.Tensor, batch_size: int, accelerator) -> float | None:
    """exp(mean next-token NLL) over the held-out windows; every process computes the same number."""
    if len(windows) == 0:
        return None
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size].to(accelerator.device)
        logits = model(input_ids=batch[:, :-1]).logits
        total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                       reduction="sum"))
        count += batch[:, 1:].numel()
    return round(math.exp(total / count), 4)


def _replica_hashes(model, accelerator) -> list[str] | None:
    """A hash of each data-parallel process's weights: equal hashes show the replicas never drifted
    apart. None for one process, and under FSDP, where no process holds all the weights."""
    from accelerate.utils import DistributedType, gather_object

    if accelerator.num_processes == 1 or accelerator.distributed_type == DistributedType.FSDP:
        return None
    digest = hashlib.sha256()
    for name, tensor in sorted(accelerator.unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return gather_object([digest.hexdigest()[:16]])
