"""Running a sentence encoder over texts: its inputs (the backbone's text prefix included), in batches."""

from __future__ import annotations

import numpy as np
import torch

from ..backbones.prefix import text_prefix
from ..progress import Progress
from ..text_windows import text_windows


def encode(model, texts: list[str], *, batch_size: int = 64, progress: Progress | None = None,
           description: str = "Encoding", chunks: bool = False) -> np.ndarray:
    """Sentence embeddings as a float32 array (n, dim), computed without gradients in eval mode.

    chunks: a text longer than the encoder's limit is the mean of its windows' embeddings (text_windows)."""
    if chunks:
        windows, owner = body_windows(model, texts)
        emb = encode(model, windows, batch_size=batch_size, progress=progress, description=description)
        if len(windows) == len(texts):  # every text fits: its one window is the text itself
            return emb
        return pool_windows(torch.from_numpy(emb), owner, len(texts), normalises(model)).numpy()
    was_training = model.training
    model.eval()
    out = []
    # Sorting by length keeps padding per batch small: long and short texts are not mixed.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    task = progress.add(description, total=len(texts)) if progress else None
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                emb = model(body_features(model, [texts[i] for i in idx]))["sentence_embedding"]
                out.append(emb.float().cpu().numpy())
                if task is not None:
                    progress.advance(task, len(idx))
    finally:
        model.train(was_training)
    emb = np.concatenate(out) if out else np.zeros((0, embedding_dimension(model)), np.float32)
    result = np.empty_like(emb)
    result[order] = emb
    return result


def embed_batch(body, texts: list[str], *, chunks: bool = False) -> torch.Tensor:
    """`body`'s sentence embeddings of `texts` as one batch, with gradients (training); chunks as in encode."""
    if not chunks:
        return body(body_features(body, texts))["sentence_embedding"]
    windows, owner = body_windows(body, texts)
    emb = body(body_features(body, windows))["sentence_embedding"]
    return emb if len(windows) == len(texts) else pool_windows(emb, owner, len(texts), normalises(body))


def pool_windows(emb: torch.Tensor, owner: np.ndarray, n_texts: int, normalise: bool) -> torch.Tensor:
    """The mean of each text's window embeddings (owner[j]: the text of row j), normalised again where the
    encoder normalises its embeddings. A text of one window keeps its embedding bit for bit: adding it to
    zero and dividing by 1 is exact, and only texts of several windows are normalised again."""
    index = torch.as_tensor(owner, device=emb.device)
    counts = torch.bincount(index, minlength=n_texts)
    pooled = torch.zeros(n_texts, emb.shape[1], dtype=emb.dtype, device=emb.device).index_add(0, index, emb)
    pooled = pooled / counts[:, None].to(emb.dtype)
    if normalise:
        pooled = torch.where((counts > 1)[:, None], torch.nn.functional.normalize(pooled, dim=-1), pooled)
    return pooled


def body_windows(body, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """text_windows with `body`'s own tokenizer, token limit and prefix."""
    return text_windows(body.tokenizer.backend_tokenizer, texts, token_limit(body), text_prefix(body))


def token_limit(body) -> int:
    """The tokens `body` reads of a text, special tokens included: its max_seq_length, else the tokenizer's
    model_max_length; capped at the positions the model has, as some tokenizers leave a huge sentinel."""
    max_length = int(body.max_seq_length or body.tokenizer.model_max_length)
    positions = getattr(body[0].auto_model.config, "max_position_embeddings", None)
    return min(max_length, int(positions)) if positions else max_length


def normalises(body) -> bool:
    """Whether `body`'s pipeline ends its embeddings at unit length (a Normalize module). By class name:
    sentence-transformers moved its modules between packages across versions."""
    return any(type(module).__name__ == "Normalize" for module in body)


def embedding_dimension(model) -> int:
    # sentence-transformers 6 renamed the method; 5.x has only the old name.
    return (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()


def body_features(body, texts: list[str]) -> dict:
    """`body`'s tokenized inputs for `texts` (its prefix put before each: backbones.prefix), on its device."""
    features = body.preprocess(list(texts), prompt=text_prefix(body) or None)
    return {k: v.to(body.device) if hasattr(v, "to") else v for k, v in features.items()}
