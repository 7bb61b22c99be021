"""Reading a causal LM's next-token log-probabilities cheaply: a token prefix shared by many prompts is
encoded once and its key/value cache reused (in-context demonstrations, a long instruction, a user's
history), and the output layer is applied only at the positions that are read."""

from __future__ import annotations

import torch


# Below this many shared tokens the cache's copy per batch costs about what it saves.
MIN_SHARED_PREFIX = 32


def shared_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens that every sequence starts with, leaving each at least one token of its own (the
    position whose next-token distribution is read); 0 for a single sequence."""
    if len(seqs) < 2:
        return 0
    first, limit = seqs[0], min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == first[n] for s in seqs):
        n += 1
    return n


def prefix_cache(model, prefix_ids: list[int]):
    """The key/value cache of one token prefix, to be reused by logprobs_after_prefix."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
    return out["cache"] if "cache" in out else out["past_key_values"]


def logprobs_after_prefix(model, cache, prefix_len: int, queries: list[list[int]], pad: int) -> torch.Tensor:
    """(n, V) next-token log-probabilities after prefix + each query, the prefix read from `cache`
    (left untouched: it is copied, then repeated once per query)."""
    import copy

    device = next(model.parameters()).device
    cache = copy.deepcopy(cache)
    if len(queries) > 1:
        cache.batch_repeat_interleave(len(queries))
    width = max(len(q) for q in queries)
    input_ids = torch.tensor([q + [pad] * (width - len(q)) for q in queries], device=device)
    mask = torch.tensor([[1] * (prefix_len + len(q)) + [0] * (width - len(q)) for q in queries], device=device)
    logits, column = logits_at(model, [len(q) - 1 for q in queries], input_ids=input_ids, attention_mask=mask,
                               use_cache=True, **{_cache_argument(model): cache})
    return torch.log_softmax(logits[torch.arange(len(queries), device=device), column].float(), dim=-1)


def logits_at(model, positions: list[int], **inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, column): the output layer applied at `positions` only (one per row), where the model
    takes `logits_to_keep`; row i's logits at positions[i] are logits[i, column[i]].

    Only one position per prompt is read, and the output layer is the costliest matrix of a
    large-vocabulary LM (Gemma 3: 640 × 262k, more multiply-adds per token than all its layers).
    """
    device = inputs["input_ids"].device
    wanted = torch.tensor(positions, device=device)
    if not _takes_logits_to_keep(model):
        return model(**inputs).logits, wanted
    kept, column = torch.unique(wanted, return_inverse=True)  # sorted distinct positions
    return model(**inputs, logits_to_keep=kept).logits, column


def _takes_logits_to_keep(model) -> bool:
    import inspect

    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "logits_to_keep" in inspect.signature(forward).parameters


def _cache_argument(model) -> str:
    """transformers 5.x renamed `past_key_values` to `cache`; models not yet moved keep the old name."""
    import inspect

    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
