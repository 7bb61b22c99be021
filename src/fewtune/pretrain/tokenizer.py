"""The tokenizer of a model trained from scratch: byte-level BPE trained on the corpus, or a backbone's own.

Byte-level BPE (GPT-2, SmolLM2) has no unknown token: any text, in any script or encoding, round-trips
through it exactly. One special token, <|endoftext|>, separates documents in the token stream and is
the model's EOS; there is no BOS, since training windows start anywhere in the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from ..backbones import resolve_backbone
from ..backbones.folders import inspect_folder
from ..backbones.loading import _local_files_only
from ..backbones.quiet_loading import quiet_libraries
from ..errors import DataError, FewtuneError

EOS = "<|endoftext|>"


def train_bpe(texts: Iterable[str], *, vocab_size: int, max_texts: int, context: int, source: str):
    """A PreTrainedTokenizerFast with a byte-level BPE vocabulary learned from the first `max_texts` texts.

    tokenizers consumes the iterator in batches and keeps only word counts, so memory follows the
    vocabulary of the corpus, not its length.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 1:
        raise FewtuneError(f"vocab_size must be at least {len(alphabet) + 1} (the 256 bytes and {EOS}), "
                           f"got {vocab_size}")
    seen = 0

    def counted() -> Iterable[str]:
        nonlocal seen
        for text in islice(texts, max_texts):
            seen += 1
            yield text

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                                  initial_alphabet=alphabet, show_progress=False)
    bpe.train_from_iterator(counted(), trainer)
    if not seen:
        raise DataError(f"{source}: no training text to learn a tokenizer from")
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, model_max_length=context), seen


def backbone_tokenizer(name: str):
    """The tokenizer of a backbone (name, folder or hub id), for pretraining with its vocabulary."""
    from transformers import AutoTokenizer

    resolved = resolve_backbone(name)
    path = resolved.path
    if resolved.source != "hub":
        # A sentence-transformers folder keeps its tokenizer with the Transformer module.
        info = inspect_folder(path)
        path = str(next((d for d in info.module_dirs if (d / "tokenizer_config.json").is_file()), info.folder))
    with quiet_libraries():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=_local_files_only(resolved))
    return tokenizer


def separator_id(tokenizer) -> int:
    """The token that ends each document in the stream: EOS, or for an encoder's tokenizer its [SEP]."""
    for token_id in (tokenizer.eos_token_id, getattr(tokenizer, "sep_token_id", None)):
        if token_id is not None:
            return int(token_id)
    raise FewtuneError("this tokenizer has neither an EOS nor a separator token to end documents with")
