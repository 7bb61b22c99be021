"""The corpus as one long stream of token ids on disk, and the training windows drawn from it.

Texts are tokenized in batches as they stream in and appended to a flat binary file (uint16 when
the vocabulary fits, as nanoGPT does), each followed by the end-of-document token. Training then
memory-maps that file and draws random windows from it, so neither step holds the corpus in memory.

Window i of step s on process r comes from a generator seeded with (seed, s, r): the batches of a
run depend on nothing else, so a resumed run draws exactly the batches the interrupted one would
have, and each data-parallel process draws different ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..backbones.quiet_loading import progress, quiet_libraries
from ..errors import DataError, FewtuneError
from ..storage.atomic import atomic_write_text
from .corpus import HELDOUT, TRAIN, iter_texts

TEXTS_PER_BATCH = 512  # texts tokenized per call: fast tokenizers parallelise within a batch


@dataclass(frozen=True)
class TokenStream:
    path: Path
    dtype: str
    n_tokens: int

    def array(self) -> np.ndarray:
        if self.n_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_tokens,))


def write_tokens(texts: Iterable[str], tokenizer, separator: int, path: Path, *, limit: int = 0,
                 on_texts=None) -> TokenStream:
    """Tokenize `texts` into `path` (ids, then `separator` after each text); `limit` > 0 stops after that
    many tokens. `on_texts(n)` reports progress."""
    dtype = np.uint16 if len(tokenizer) <= 2**16 else np.uint32
    n_tokens = 0
    texts = iter(texts)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        while not limit or n_tokens < limit:
            batch = list(islice(texts, TEXTS_PER_BATCH))
            if not batch:
                break
            with quiet_libraries():  # "longer than the maximum sequence length": documents are split into windows
                ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            flat = np.fromiter((t for doc in ids for t in (*doc, separator)), dtype=dtype)
            if limit:
                flat = flat[: limit - n_tokens]
            f.write(flat.tobytes())
            n_tokens += len(flat)
            if on_texts:
                on_texts(len(batch))
    tmp.replace(path)
    return TokenStream(path, np.dtype(dtype).name, n_tokens)


def tokenizer_digest(tokenizer) -> str:
    """A hash of the vocabulary and merges, so cached token ids are reused only with the same tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_streams(corpora, tokenizer, separator: int, folder: Path, *, heldout_tokens: int, note,
                  quiet: bool) -> tuple[TokenStream, TokenStream, dict]:
    """The train and held-out token files of `corpora` in `folder`, reused when already built from the
    same corpora with the same tokenizer. Returns (train, held-out, what was built)."""
    recipe = {"corpora": [c.spec for c in corpora], "fingerprints": [c.fingerprint() for c in corpora],
              "tokenizer": tokenizer_digest(tokenizer), "separator": separator, "heldout_tokens": heldout_tokens}
    manifest = folder / "tokens.json"
    if manifest.is_file():
        saved = json.loads(manifest.read_text(encoding="utf-8"))
        if saved.get("recipe") == recipe:
            note(f"reusing the tokenized corpus in {folder}")
            return (TokenStream(folder / "train.bin", saved["dtype"], saved["train_tokens"]),
                    TokenStream(folder / "heldout.bin", saved["dtype"], saved["heldout_tokens"]), saved)
    folder.mkdir(parents=True, exist_ok=True)
    names = ", ".join(c.spec for c in corpora)
    # A spinner with a count, not a bar: how many texts a stream holds is known only at its end.
    with progress(f"Tokenizing {names}", quiet=quiet) as report:
        count = 0

        def advance(n: int) -> None:
            nonlocal count
            count += n
            report(f"Tokenizing {names}: {count:,} texts")

        train = write_tokens(iter_texts(corpora, TRAIN), tokenizer, separator, folder / "train.bin", on_texts=advance)
        heldout = write_tokens(iter_texts(corpora, HELDOUT), tokenizer, separator, folder / "heldout.bin",
                               limit=heldout_tokens, on_texts=advance)
    note(f"tokenized {count:,} texts: {train.n_tokens:,} training and {heldout.n_tokens:,} held-out tokens")
    if train.n_tokens < 2:
        raise DataError(f"{names}: no training text (every text fell in the held-out part)")
    saved = {"recipe": recipe, "dtype": train.dtype, "train_tokens": train.n_tokens,
             "heldout_tokens": heldout.n_tokens}
    atomic_write_text(manifest, json.dumps(saved, indent=2) + "\n")
    return train, heldout, saved


def sample_batch(tokens: np.ndarray, *, seed: int, step: int, rank: int, batch_size: int,
                 block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, next-token targets), each batch_size × block_size, from random windows of the stream."""
    if len(tokens) <= block_size:
        raise FewtuneError(f"the training corpus has {len(tokens)} tokens, fewer than one window of "
                           f"block_size={block_size} + 1; use more text or a smaller block_size")
    rng = np.random.default_rng([seed, step, rank])
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)
    windows = torch.from_numpy(np.stack([tokens[s:s + block_size + 1] for s in starts]).astype(np.int64))
    return windows[:, :-1], windows[:, 1:]


def eval_windows(tokens: np.ndarray, *, block_size: int) -> torch.Tensor:
    """Consecutive windows over the held-out stream (each block_size + 1 tokens, overlapping by one), so every
    held-out token after the first is predicted exactly once."""
    if len(tokens) < 2:
        return torch.zeros(0, 2, dtype=torch.int64)
    size = min(block_size, len(tokens) - 1)
    n = (len(tokens) - 1) // size
    starts = np.arange(n) * size
    return torch.from_numpy(np.stack([tokens[s:s + size + 1] for s in starts]).astype(np.int64))
