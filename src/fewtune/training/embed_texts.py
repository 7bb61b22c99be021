"""Running a sentence encoder over texts: its inputs (the backbone's text prefix included), in batches."""

from __future__ import annotations

import numpy as np
import torch

from ..backbones.prefix import text_prefix
from ..progress import Progress


def encode(model, texts: list[str], *, batch_size: int = 64, progress: Progress | None = None,
           description: str = "Encoding") -> np.ndarray:
    """Sentence embeddings as a float32 array (n, dim), computed without gradients in eval mode."""
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


def embedding_dimension(model) -> int:
    # sentence-transformers 6 renamed the method; 5.x has only the old name.
    return (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()


def body_features(body, texts: list[str]) -> dict:
    """`body`'s tokenized inputs for `texts` (its prefix put before each: backbones.prefix), on its device."""
    features = body.preprocess(list(texts), prompt=text_prefix(body) or None)
    return {k: v.to(body.device) if hasattr(v, "to") else v for k, v in features.items()}
