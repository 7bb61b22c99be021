"""What attention dropout costs a training step on CPU: me5-small, a batch of 16 texts, with and without it.

PyTorch's fused attention kernel on CPU takes no dropout, so with the backbone's own attention dropout (0.1)
every layer computes and keeps its attention matrices (batch × heads × tokens²) for the backward pass. Each
setting runs in a fresh process (its peak memory is its own): three forward + backward + AdamW steps on
random token ids, half of the batch padded to half the length, as setfit's steps are (`encoder_dropout` as
setfit calls it). Writes one JSON line per (tokens, setting).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/attention_dropout.py [--tokens 128,512] [--out FILE]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from fewtune.bench.context import parse_or_run_one, run_in_fresh_processes

SETTINGS = {"backbone's own (0.1)": -1.0, "0 (setfit's default)": 0.0}


def one(tokens: int, attention: float, steps: int = 3) -> dict:
    import torch

    from fewtune.backbones import load_encoder, resolve_backbone
    from fewtune.training.optim import encoder_dropout, make_optimizer, trainable_parameters

    torch.manual_seed(0)
    body = load_encoder(resolve_backbone("me5-small"), device="cpu")
    model = body[0].auto_model
    trainable = trainable_parameters(body, train_embeddings=False)
    optimizer = make_optimizer(trainable, lr=1e-5, weight_decay=0.0, device="cpu")
    ids = torch.randint(1000, 20000, (16, tokens))
    mask = torch.ones_like(ids)
    mask[::2, tokens // 2:] = 0
    seconds, faults = [], []
    model.train()
    with encoder_dropout(model, -1.0, attention):
        for _ in range(steps):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            loss = (hidden * mask[..., None]).sum(1).pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds.append(time.perf_counter() - started)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"step_seconds": [round(s, 2) for s in seconds], "minor_page_faults": faults,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="128,512")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention_dropout.jsonl"))
    args = parse_or_run_one(parser, lambda tokens, attention: one(int(tokens), float(attention)), 2)
    if args is None:
        return 0
    cases = [({"tokens": tokens, "attention_dropout": name}, [str(tokens), str(attention)])
             for tokens in (int(t) for t in args.tokens.split(",")) for name, attention in SETTINGS.items()]
    run_in_fresh_processes(__file__, cases, args.out, "torch", "transformers", "fewtune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
