"""Domain adaptation of a sentence encoder on unlabeled text: SimCSE or masked-LM.

`simcse` (Gao et al. 2021, unsupervised): each text is encoded twice with different dropout masks;
the two views of a text should be nearer each other than any other text in the batch (InfoNCE over
cosine similarities at temperature τ). It trains exactly the pooled sentence embedding that
setfit, finetune and linear-probe read, so it suits sentence encoders such as MiniLM.

`mlm` (BERT's objective, as in "Don't Stop Pretraining"): 15% of tokens masked and predicted. A
sentence-transformers checkpoint ships no MLM head, so a fresh one is trained on top of the
encoder's weights; only the encoder is kept.

Both run through the same Accelerator as the causal-LM loop, so `accelerate launch` makes them
data-parallel too: each process takes its own slice of every global batch of texts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from itertools import islice

import torch
import torch.nn.functional as F

from ..errors import DataError, FewtuneError
from ..backbones.prefix import text_prefix, with_prefix
from ..training.embed_texts import body_features
from ..training.transformer_layers import hf_model
from .corpus import HELDOUT, TRAIN, iter_texts
from .loop import lr_at, make_optimizer

OBJECTIVES = ("simcse", "mlm")
SHUFFLE_BUFFER = 4096  # texts: enough to break up files sorted by topic, and memory stays flat
EVAL_TEXTS = 256


def text_batches(corpora, *, batch_size: int, rank: int, world: int, seed: int) -> Iterator[list[str]]:
    """This process's share of each global batch, over and over the training texts (shuffled through a
    bounded buffer, differently each pass)."""
    for epoch in range(10**9):
        rng = random.Random(f"{seed}:{epoch}")
        batch, produced = [], False
        for text in _shuffled(iter_texts(corpora, TRAIN), rng):
            batch.append(text)
            if len(batch) == batch_size * world:
                produced = True
                yield batch[rank * batch_size:(rank + 1) * batch_size]
                batch = []
        if not produced:
            raise DataError(f"{', '.join(c.spec for c in corpora)}: fewer training texts than one batch "
                            f"({batch_size} × {world} processes); lower batch_size")


def _shuffled(texts, rng: random.Random) -> Iterator[str]:
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) >= SHUFFLE_BUFFER:
            yield buffer.pop(rng.randrange(len(buffer)))
    rng.shuffle(buffer)
    yield from buffer


class SimCSE:
    """The encoder itself is the model; its loss needs only the texts."""

    def __init__(self, body, temperature: float):
        self.body, self.temperature = body, temperature
        # The pooler gets no gradient (sentence-transformers pools the token states itself); DDP would
        # wait for it forever, so it is frozen.
        for name, t in body.named_parameters():
            if "pooler" in name:
                t.requires_grad_(False)

    def model(self):
        return self.body

    def loss(self, model, texts: list[str], device) -> torch.Tensor:
        # One forward pass over the batch twice: dropout gives each copy its own mask, and DDP allows
        # only one forward per backward.
        features = body_features(self.body, texts + texts)
        features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
        emb = F.normalize(model(features)["sentence_embedding"].float(), dim=-1)
        a, b = emb[: len(texts)], emb[len(texts):]
        logits = a @ b.T / self.temperature
        return F.cross_entropy(logits, torch.arange(len(texts), device=device))

    def finish(self, model) -> None:
        pass


class MaskedLM:
    """A masked-LM model around a copy of the encoder's weights; copied back when training ends."""

    def __init__(self, body, probability: float):
        from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

        if body.tokenizer.mask_token is None:
            raise FewtuneError("this encoder's tokenizer has no mask token, so it cannot be trained as a masked LM; "
                               "use objective simcse")
        self.body, self.base = body, hf_model(body)
        self.mlm = AutoModelForMaskedLM.from_config(self.base.config)
        # strict=False: the encoder's pooler has no place in the MLM model (and is left as it was).
        self.mlm.base_model.load_state_dict(self.base.state_dict(), strict=False)
        self.collator = DataCollatorForLanguageModeling(body.tokenizer, mlm_probability=probability)
        self.max_length = body.max_seq_length

    def model(self):
        return self.mlm

    def loss(self, model, texts: list[str], device) -> torch.Tensor:
        encoded = self.body.tokenizer(with_prefix(texts, text_prefix(self.body)), truncation=True,
                                      max_length=self.max_length)
        batch = self.collator([{"input_ids": ids} for ids in encoded["input_ids"]])
        batch = {k: v.to(device) for k, v in batch.items()}
        return model(**batch).loss

    def finish(self, model) -> None:
        self.base.load_state_dict(model.base_model.state_dict(), strict=False)


def train_encoder(body, corpora, p, *, objective: str, block_size: int, accelerator, progress,
                  on_step=None) -> dict:
    """Adapt `body` (a SentenceTransformer on the CPU) in place; return facts about the run."""
    body.max_seq_length = block_size
    torch.manual_seed(p.seed)
    task_obj = SimCSE(body, p.temperature) if objective == "simcse" else MaskedLM(body, p.mlm_probability)
    model = task_obj.model()
    optimizer = make_optimizer(model, p, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    held = list(islice(iter_texts(corpora, HELDOUT), EVAL_TEXTS))
    facts: dict = {"losses": [], "heldout_losses": [], "texts_seen": 0, "train_seconds": 0.0}
    facts["heldout_losses"].append([0, heldout_loss(task_obj, model, held, p, device)])
    # Dropout and masking differ per process, as the texts do.
    torch.manual_seed(p.seed * 1000 + accelerator.process_index)
    batches = text_batches(corpora, batch_size=p.batch_size, rank=accelerator.process_index,
                           world=accelerator.num_processes, seed=p.seed)
    task = progress.add("Training", total=p.steps)
    log_every = max(1, p.steps // 200)
    model.train()
    for step in range(p.steps):
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, p)
        loss = task_obj.loss(model, next(batches), device)
        accelerator.backward(loss)
        if p.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = accelerator.reduce(loss.detach(), "mean").item()
        facts["train_seconds"] += time.perf_counter() - started
        facts["texts_seen"] += p.batch_size * accelerator.num_processes
        accelerator.log({"train/loss": loss, "train/lr": optimizer.param_groups[0]["lr"]}, step=step + 1)
        if (step + 1) % log_every == 0 or step + 1 == p.steps:
            facts["losses"].append([step + 1, round(loss, 5)])
        progress.advance(task)
        if on_step is not None:
            on_step(step + 1)
    if p.steps:
        facts["heldout_losses"].append([p.steps, heldout_loss(task_obj, model, held, p, device)])
        accelerator.log({"eval/loss": facts["heldout_losses"][-1][1]}, step=p.steps)
    task_obj.finish(accelerator.unwrap_model(model))
    return facts


def heldout_loss(task_obj, model, texts: list[str], p, device) -> float | None:
    """The objective on held-out texts, with dropout and masks drawn from a fixed seed so that the
    values before and after training compare like with like."""
    if not texts:
        return None
    was_training = model.training
    model.train(isinstance(task_obj, SimCSE))  # SimCSE's views only differ with dropout on
    total, n = 0.0, 0
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(12345)
        for start in range(0, len(texts), p.batch_size):
            chunk = texts[start:start + p.batch_size]
            if len(chunk) < 2 and isinstance(task_obj, SimCSE):
                break  # one text has no negatives to contrast with
            total += float(task_obj.loss(model, chunk, device)) * len(chunk)
            n += len(chunk)
    model.train(was_training)
    return round(total / n, 5) if n else None
