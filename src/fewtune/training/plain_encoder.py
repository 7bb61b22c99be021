"""A saved BERT sentence encoder run in plain torch, to predict without transformers or sentence-transformers.

Why: importing transformers' model code costs 3 s here (torch.distributed, torch._dynamo, sympy and the
quantizers come with it) and sentence-transformers 1 s more, against 0.1 s for encoding ten texts: a cold
`fewtune predict` of ten texts could not get under 3 s (issue 35). So a saved body that is exactly what this
module runs is encoded here; every other body, and every use beyond encoding single texts on the CPU
(training, an export, dropout sampling, text pairs), loads the real SentenceTransformer
(encoder_method.EncoderBodyMethod.body).

What it runs, and refuses anything else (`plain_encoder` returns None, the caller loads the real one):
  - modules.json: a Transformer at the folder's root, mean Pooling (prompt tokens included), optionally
    Normalize; sentence_bert_config.json with no lower-casing and the plain text-to-hidden-states task;
  - config.json: model_type bert (BertModel), absolute positions, GELU, an encoder (no decoder, no
    cross-attention, no remote code, no quantization); float32 safetensors weights; no LoRA adapter;
  - tokenizer.json, padded and truncated on the right as tokenizer_config.json says.
The arithmetic is transformers' BertModel in eval mode (no dropout; torch's scaled-dot-product attention,
as transformers uses by default) then sentence-transformers' mean pooling and normalisation; tokenization is
the `tokenizers` library's on tokenizer.json, with the truncation length sentence-transformers derives
(sentence_bert_config's max_seq_length, else the tokenizer's model_max_length capped at the model's
positions) and its prompt (the default prompt, backbones.prefix). The embeddings are the same bits as the
SentenceTransformer's (tests/training/test_plain_encoder.py; MiniLM and me5-small checked too), so a loaded
model predicts exactly as the fitted one. That also keeps torch's thread count as set: one thread would
encode ten texts faster on a busy machine, but its sums round differently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from tokenizers import Tokenizer

from ..progress import Progress
from ..text_windows import text_windows
from .base_weights import WEIGHTS, base_tensors
from .embed_texts import pool_windows

TRANSFORMERS = {"sentence_transformers.models.Transformer", "sentence_transformers.base.modules.transformer.Transformer"}
POOLINGS = {"sentence_transformers.models.Pooling", "sentence_transformers.sentence_transformer.modules.pooling.Pooling"}
NORMALIZES = {"sentence_transformers.models.Normalize", "sentence_transformers.base.modules.normalize.Normalize"}
# sentence_bert_config.json as sentence-transformers 6 writes it for a plain text encoder.
ST6_TASK = {"transformer_task": "feature-extraction", "module_output_name": "token_embeddings",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}}
NOT_MEAN = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
# BertModel's tensors that encoding does not read (the pooler feeds only BertModel's pooled output).
OTHER_BERT_TENSORS = {"pooler.dense.weight", "pooler.dense.bias", "embeddings.position_ids", "embeddings.token_type_ids"}
VERY_LONG = int(1e30)  # transformers' model_max_length when a tokenizer names none


class PlainEncoder:
    """The body's tokenizer, weights and settings; `encode` gives what the SentenceTransformer's would."""

    def __init__(self, folder: Path, config: dict, weights: dict, tokenizer, prefix: str, normalize: bool,
                 max_length: int):
        self.folder, self.config, self.weights = folder, config, weights
        self.tokenizer, self.prefix, self.normalize, self.max_length = tokenizer, prefix, normalize, max_length

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: Progress | None = None,
               description: str = "Encoding", chunks: bool = False) -> np.ndarray:
        """Sentence embeddings (n, dim) float32, batched by length as embed_texts.encode batches them;
        chunks: a long text is the mean of its windows' embeddings, as there."""
        if chunks:
            windows, owner = text_windows(self.tokenizer, texts, self.max_length, self.prefix)
            emb = self.encode(windows, batch_size=batch_size, progress=progress, description=description)
            if len(windows) == len(texts):
                return emb
            return pool_windows(torch.from_numpy(emb), owner, len(texts), self.normalize).numpy()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.config["hidden_size"]), np.float32)
        task = progress.add(description, total=len(texts)) if progress else None
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                encoded = self.tokenizer.encode_batch([self.prefix + texts[i] for i in idx])
                ids = torch.tensor([e.ids for e in encoded])
                mask = torch.tensor([e.attention_mask for e in encoded])
                out[idx] = self._embed(ids, mask).numpy()
                if task is not None:
                    progress.advance(task, len(idx))
        return out

    def _embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w, c = self.weights, self.config
        hidden, heads, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
        batch, length = ids.shape

        def linear(x, name):
            return F.linear(x, w[name + ".weight"], w[name + ".bias"])

        def norm(x, name):
            return F.layer_norm(x, (hidden,), w[name + ".weight"], w[name + ".bias"], eps)

        def split(x):  # (batch, length, hidden) -> (batch, heads, length, hidden / heads)
            return x.view(batch, length, heads, hidden // heads).transpose(1, 2)

        # Every step in BertModel's order, so that the floats round as there and the embeddings are the same
        # bits: single texts (token type 0 throughout), positions 0..length-1, (word + type) + position.
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
        x = norm(x + w["embeddings.position_embeddings.weight"][:length], "embeddings.LayerNorm")
        # transformers' mask: none when no text is padded, else (batch, 1, length, length), True where attended.
        keys = None if bool(mask.all()) else mask[:, None, None, :].bool().expand(batch, 1, length, length)
        scale = (hidden // heads) ** -0.5
        for i in range(c["num_hidden_layers"]):
            layer = f"encoder.layer.{i}."
            q, k, v = (split(linear(x, layer + "attention.self." + n)) for n in ("query", "key", "value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, scale=scale)
            context = context.transpose(1, 2).reshape(batch, length, hidden)
            x = norm(linear(context, layer + "attention.output.dense") + x, layer + "attention.output.LayerNorm")
            inner = F.gelu(linear(x, layer + "intermediate.dense"))
            x = norm(linear(inner, layer + "output.dense") + x, layer + "output.LayerNorm")
        m = mask[..., None].to(x.dtype)  # sentence-transformers' mean pooling, then its Normalize
        pooled = (x * m).sum(dim=1, dtype=x.dtype) / torch.clamp(m.sum(dim=1, dtype=x.dtype), min=1e-9)
        return F.normalize(pooled, p=2, dim=-1) if self.normalize else pooled


def plain_encoder(folder: Path) -> PlainEncoder | None:
    """`folder` (a saved body/) as a PlainEncoder, or None when it is anything this module does not run."""
    settings = _settings(folder)
    if settings is None:
        return None
    config, normalize, prefix, max_length, pad = settings
    weights = load_file(str(folder / WEIGHTS))
    base = base_tensors(folder)  # the tensors training left as they were, from the backbone (checked there)
    if base is not None:
        base_file, names = base
        if not set(names) <= set(_forward_names(config)) | OTHER_BERT_TENSORS:
            return None  # the real load reports a listed tensor the encoder does not have
        with safe_open(str(base_file), "pt") as theirs:
            weights.update({name: theirs.get_tensor(name) for name in names})
    if not _complete(weights, config):
        return None
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad_id = tokenizer.token_to_id(pad) if pad else None
    if pad_id is None:
        return None
    tokenizer.enable_truncation(max_length, strategy="longest_first", direction="right")
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0, pad_token=pad)
    return PlainEncoder(folder, config, weights, tokenizer, prefix, normalize, max_length)


def _settings(folder: Path) -> tuple | None:
    """(config, normalize, prefix, truncation length, pad token) from the body's JSON files, or None."""
    try:
        modules = _json(folder / "modules.json")
        config = _json(folder / "config.json")
        sbert = _json(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").exists() else {}
        tok_config = _json(folder / "tokenizer_config.json")
        st_config = (_json(folder / "config_sentence_transformers.json")
                     if (folder / "config_sentence_transformers.json").exists() else {})
        types = [m["type"] for m in modules]
        if not (2 <= len(types) <= 3 and types[0] in TRANSFORMERS and modules[0].get("path", "") == ""
                and types[1] in POOLINGS and (len(types) == 2 or types[2] in NORMALIZES)):
            return None
        pooling = _json(folder / modules[1]["path"] / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    mean = pooling.get("pooling_mode") == "mean" or (pooling.get("pooling_mode_mean_tokens") is True
                                                     and not any(pooling.get(k) for k in NOT_MEAN))
    sbert_ok = (set(sbert) <= {"max_seq_length", "do_lower_case", *ST6_TASK} and not sbert.get("do_lower_case")
                and all(sbert.get(k, v) == v for k, v in ST6_TASK.items()))
    model_ok = (config.get("model_type") == "bert" and config.get("architectures", ["BertModel"]) == ["BertModel"]
                and config.get("position_embedding_type", "absolute") == "absolute" and config.get("hidden_act") == "gelu"
                and not config.get("is_decoder") and not config.get("add_cross_attention")
                and not {"auto_map", "quantization_config"} & set(config))
    tokenizer_ok = (tok_config.get("padding_side", "right") == "right"
                    and tok_config.get("truncation_side", "right") == "right" and isinstance(tok_config.get("pad_token"), str))
    files_ok = (folder / WEIGHTS).is_file() and (folder / "tokenizer.json").is_file() and not (
        folder / "adapter_config.json").exists()
    if not (mean and pooling.get("include_prompt", True) and sbert_ok and model_ok and tokenizer_ok and files_ok):
        return None
    # sentence_bert_config's max_seq_length, else the tokenizer's own limit; capped at the model's positions
    # (sentence-transformers caps the second; a first beyond them would fail there on a long text).
    max_length = int(sbert.get("max_seq_length") or tok_config.get("model_max_length") or VERY_LONG)
    max_length = min(max_length, int(config.get("max_position_embeddings", 512)))
    prompt_name = st_config.get("default_prompt_name")
    prefix = (st_config.get("prompts") or {}).get(prompt_name) or "" if prompt_name else ""
    return config, len(types) == 3, prefix, max_length, tok_config["pad_token"]


def _complete(weights: dict, config: dict) -> bool:
    """Every tensor the forward pass reads is there, in float32."""
    return all(name in weights and weights[name].dtype == torch.float32 for name in _forward_names(config))


def _forward_names(config: dict) -> list[str]:
    names = [f"embeddings.{n}.weight" for n in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    names += ["embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    for i in range(config.get("num_hidden_layers", 0)):
        names += [f"encoder.layer.{i}.{n}.{kind}" for kind in ("weight", "bias") for n in (
            "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm")]
    return names


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
