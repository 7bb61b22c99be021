"""Optimiser set-up shared by the methods that train a backbone."""

from __future__ import annotations

import contextlib

import torch

from .tracking import report_loss


def trainable_parameters(model: torch.nn.Module, *, train_embeddings: bool) -> list[torch.nn.Parameter]:
    """The parameters to update; word embeddings are frozen unless asked for.

    With a few dozen examples only a handful of vocabulary rows get a gradient, yet the gradient
    and AdamW state of the whole 30k×d matrix are dense: freezing it halves the cost of a step on
    a CPU and keeps unseen words exactly where pretraining put them.
    """
    params = []
    for name, param in model.named_parameters():
        if not train_embeddings and ("word_embeddings" in name or "embed_tokens" in name):
            param.requires_grad_(False)
            continue
        if param.requires_grad:
            params.append(param)
    return params


def make_optimizer(params, *, lr: float, weight_decay: float, device) -> torch.optim.Optimizer:
    # The fused kernel does the whole AdamW update in one pass: 10x faster than the loop on CPU.
    fused = torch.device(device).type in {"cpu", "cuda"}
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


# One help text for every method that trains an encoder (setfit, finetune): why 0 is their default.
ATTENTION_DROPOUT_HELP = ("dropout on the attention probabilities while the encoder trains "
                          "(-1 = as its other dropout); 0 lets PyTorch's fused attention kernel run on CPU")


def dropout_problem(name: str, rate: float, minus_one: str = "the backbone's own") -> str | None:
    """What is wrong with a dropout parameter where -1 means `minus_one`."""
    if rate == -1 or 0 <= rate < 1:
        return None
    return f"{name} must be in [0, 1) or -1 ({minus_one}), got {rate}"


def attention_dropouts(model: torch.nn.Module) -> list[torch.nn.Dropout]:
    """The dropout layers on `model`'s attention probabilities: the `dropout` of each self-attention module
    (BertSelfAttention, XLMRobertaSelfAttention, MPNetSelfAttention, ...), not the ones after its output."""
    return [m.dropout for m in model.modules()
            if type(m).__name__.endswith("Attention") and isinstance(getattr(m, "dropout", None), torch.nn.Dropout)]


@contextlib.contextmanager
def encoder_dropout(model: torch.nn.Module, rate: float, attention: float = -1.0):
    """Set every dropout layer of `model` to `rate` while training (rate < 0: leave the backbone's own), and
    those on the attention probabilities to `attention` (< 0: as the others).

    Why attention apart: on CPU, PyTorch's fused attention kernel takes no dropout, so any attention dropout
    makes every layer materialise its attention matrices: at 512 tokens a training step of me5-small took 2.3×
    as long in 2.5× the memory (benchmarks/README.md "attention_dropout").
    The saved model keeps the backbone's configured rates; dropout is inactive at inference anyway.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    saved = [m.p for m in layers]
    if rate >= 0:
        for m in layers:
            m.p = rate
    if attention >= 0:
        for m in attention_dropouts(model):
            m.p = attention
    try:
        yield
    finally:
        for m, p in zip(layers, saved):
            m.p = p


def update(loss: torch.Tensor, params, optimizer: torch.optim.Optimizer, scheduler=None, *,
           max_grad_norm: float = 1.0) -> float:
    """One training step: backward, clip the gradient norm, step the optimiser (and schedule), clear.

    Clipping at 1.0 everywhere: with a few examples one odd batch can otherwise throw the
    pretrained weights far in a single step. Returns the loss as a float for logging.
    """
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    value = loss.detach().item()
    report_loss(value)  # the loss curve of whatever is being recorded (training.tracking)
    return value


class BestEpoch:
    """Early stopping: keeps a copy of the weights from the epoch with the lowest validation loss."""

    def __init__(self, params, patience: int):
        self.params, self.patience = list(params), patience
        self.loss, self.epoch, self.state = float("inf"), 0, None

    def record(self, epoch: int, loss: float) -> bool:
        """Remember these weights if they are the best so far; True when training should stop."""
        if loss < self.loss:
            self.loss, self.epoch = loss, epoch
            self.state = [t.detach().clone() for t in self.params]
            return False
        return epoch - self.epoch >= self.patience

    @torch.no_grad()
    def restore(self) -> None:
        if self.state is not None:
            for t, saved in zip(self.params, self.state):
                t.copy_(saved)
