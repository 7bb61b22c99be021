"""Long texts for encoder methods: `long_texts="chunks"` reads a text longer than the encoder's token
limit as overlapping windows of that limit, whose embeddings are then averaged into one.

A window is a span of the text's characters, found from the tokenizer's offsets; it then goes through
the same tokenization as a whole text (prefix, special tokens), so a text that fits is one window: the
text itself, embedded as `truncate` embeds it. The tokenizer is borrowed (its truncation switched off
and restored), so one model's windows are cut one call at a time, as serve's per-model lock has it.
Torch-free and written against a `tokenizers` Tokenizer, so the ONNX runtime cuts the same windows as
training and predict (training.embed_texts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

LONG_TEXTS = ("truncate", "chunks")
# 16 windows half a window apart cover 8.5 windows of tokens (about 4,300 at a 512-token limit); the cap
# keeps one book-length text from costing as much as thousands of reviews.
MAX_WINDOWS = 16
LONG_TEXTS_HELP = (
    "texts past the token limit: 'truncate' reads their first tokens; 'chunks' reads overlapping windows of "
    f"the limit, half a window apart (at most {MAX_WINDOWS} a text, the rest cut), and averages their "
    "embeddings; a text that fits reads as with 'truncate'. One encoder pass per window, in training and predict")


def reads_chunks(params) -> bool:
    """Whether a method's parameters ask for windows (parameters saved before `long_texts` truncate)."""
    return getattr(params, "long_texts", "truncate") == "chunks"


@contextlib.contextmanager
def _untruncated(tokenizer) -> Iterator:
    """`tokenizer` without its truncation and padding (a fast tokenizer keeps whatever its last call
    set), restored afterwards: the caller's later calls tokenize as before."""
    truncation, padding = tokenizer.truncation, tokenizer.padding
    tokenizer.no_truncation()
    tokenizer.no_padding()
    try:
        yield tokenizer
    finally:
        if truncation:
            tokenizer.enable_truncation(**truncation)
        if padding:
            tokenizer.enable_padding(**padding)


def text_windows(tokenizer, texts: Sequence[str], limit: int, prefix: str = "") -> tuple[list[str], np.ndarray]:
    """(windows, owner): every text cut into windows of at most `limit` tokens as the encoder reads
    them (its `prefix` and special tokens included), half a window apart, at most MAX_WINDOWS per text;
    owner[j] is the index of the text window j came from, in order."""
    with _untruncated(tokenizer) as plain:
        overhead = len(plain.encode(prefix).ids)  # special tokens and the prefix, in every window
        offsets = [e.offsets for e in plain.encode_batch(list(texts), add_special_tokens=False)]
    budget = max(1, int(limit) - overhead)
    stride = max(1, budget // 2)
    windows: list[str] = []
    owner: list[int] = []
    for i, (text, spans) in enumerate(zip(texts, offsets)):
        if len(spans) <= budget:
            windows.append(text)
            owner.append(i)
            continue
        for start in range(0, stride * MAX_WINDOWS, stride):
            end = min(start + budget, len(spans))
            windows.append(text[spans[start][0]:spans[end - 1][1]])
            owner.append(i)
            if end == len(spans):
                break
    return windows, np.asarray(owner, dtype=np.int64)


def window_weights(owner: np.ndarray, n_texts: int) -> np.ndarray:
    """(texts, windows) matrix whose product with the windows' embeddings is each text's mean."""
    counts = np.bincount(owner, minlength=n_texts)
    weights = np.zeros((n_texts, len(owner)), dtype=np.float32)
    weights[owner, np.arange(len(owner))] = 1.0 / counts[owner]
    return weights


def window_batches(order: Sequence[int], counts: np.ndarray, batch_size: int) -> Iterator[list[int]]:
    """Runs of text indices (in `order`) whose windows add up to at most `batch_size`, one text at least:
    a batch of long texts must not become batch_size × MAX_WINDOWS windows in memory at once."""
    batch: list[int] = []
    size = 0
    for i in order:
        if batch and size + counts[i] > batch_size:
            yield batch
            batch, size = [], 0
        batch.append(int(i))
        size += int(counts[i])
    if batch:
        yield batch
