"""Label-word methods on a user's file: words from class names, templates chosen on the shots, calibration."""

import json

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.errors import FewtuneError
from fewtune.training.label_words import (ScoreCalibration, cv_calibrated_nll, is_id_name, label_words_for,
                                         template_candidates, word_for_class)
from tests.helpers import synthetic


def test_class_names_become_label_words_and_ids_are_refused_with_what_to_do():
    assert word_for_class("very_negative") == "very negative"
    assert label_words_for(["neg", "pos"], {"pos": "great"}) == (["neg", "great"], True)
    assert label_words_for(["neg", "pos"], {"neg": "bad", "pos": "great"}) == (["bad", "great"], False)
    assert is_id_name("0") and is_id_name("3.5") and is_id_name("B") and not is_id_name("sport")
    with pytest.raises(FewtuneError, match=r"'0', '1' are ids.*label_words='0=WORD,1=WORD'"):
        label_words_for(["0", "1"], {})
    # An id the user gave a word for is fine.
    assert label_words_for(["0", "1"], {"0": "bad", "1": "good"})[0] == ["bad", "good"]


def test_a_label_word_outside_the_vocabulary_is_refused_before_training(llama_folder):
    # The tiny LM's word-level vocabulary has neither class name: both would become <unk>.
    X, y = synthetic.make()
    with pytest.raises(FewtuneError, match="'negative' is outside this backbone's vocabulary"):
        FewShotClassifier(backbone=str(llama_folder), method="zero-shot").fit(X, y)


def test_the_calibration_recovers_a_known_scale_and_bias():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(400, 3)) * 2
    bias = np.array([1.5, -0.5, -1.0])
    logits = 0.5 * scores + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    y = np.array([rng.choice(3, p=row / row.sum()) for row in p])
    cal = ScoreCalibration.fit(scores, y)
    assert abs(cal.scale - 0.5) < 0.1
    centred = np.asarray(cal.bias) - np.mean(cal.bias)
    np.testing.assert_allclose(centred, bias - bias.mean(), atol=0.3)


def test_calibrated_scores_no_longer_put_every_text_in_one_class():
    """An LM that prefers one label word after any text: raw scores collapse, calibrated ones separate."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    scores = np.stack([np.full(40, 3.0), np.where(y == 1, 2.5, 0.5)], axis=1) + rng.normal(0, 0.2, (40, 2))
    assert (scores.argmax(1) == 0).all()
    folds = [(np.arange(40)[np.arange(40) % 4 != k], np.arange(40)[np.arange(40) % 4 == k]) for k in range(4)]
    nll, accuracy = cv_calibrated_nll(scores, y, folds)
    assert accuracy > 0.9 and nll < 0.3
    assert (ScoreCalibration.fit(scores, y).apply(scores).argmax(1) == y).mean() > 0.9


def test_generic_templates_name_the_classes_and_use_the_chat_template_when_there_is_one(chat_llama_folder, llama_folder):
    from transformers import AutoTokenizer

    chat = template_candidates(AutoTokenizer.from_pretrained(chat_llama_folder), ["negative", "positive"])
    assert set(chat) == {"answer", "question", "sentiment", "topic", "instruction"}
    assert "negative or positive" in chat["question"] and "negative or positive" in chat["instruction"]
    assert chat["instruction"].count("{text}") == 1 and chat["instruction"].endswith("<|im_start|>assistant\n")
    plain = template_candidates(AutoTokenizer.from_pretrained(llama_folder), ["a", "b", "c"])
    assert "instruction" not in plain and "a, b or c?" in plain["question"]


def test_zero_shot_on_a_user_file_chooses_its_template_on_the_shots_and_reloads_it(chat_llama_folder, tmp_path):
    X, y = synthetic.make()
    clf = FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot").fit(X, y)
    prompt = clf.train_info_["prompt"]
    results = prompt["template_candidates"]
    assert set(results) == {"answer", "question", "sentiment", "topic", "instruction"}
    assert prompt["best_template"] == min(results, key=lambda k: results[k]["cv_nll"])
    assert prompt["template"] == "ensemble" and set(prompt["calibration"]) == {*results, "ensemble"}
    assert prompt["label_words"] == {"negative": "negative", "positive": "positive"}
    proba = clf.predict_proba(X)
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    # The ensemble: the mean of the members' calibrated log-probabilities, itself calibrated.
    members = []
    for template, cal in clf.model_.ensemble:
        scores = clf.model_._raw_scores(clf.model_._scorer(template), X)
        z = cal.apply(scores)
        members.append(z - np.log(np.exp(z).sum(1, keepdims=True)))
    mean = clf.model_.ensemble_calibration.apply(np.mean(members, axis=0))
    np.testing.assert_allclose(np.exp(mean) / np.exp(mean).sum(1, keepdims=True), proba, atol=1e-6)
    clf.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "prompt.json").read_text())
    assert len(saved["ensemble"]) == 5 and all("{text}" in m["template"] for m in saved["ensemble"])
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X), proba, atol=1e-6)
    # One template (the best by cross-validated NLL): a linear head for the Laplace posterior.
    best = FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot", params={"template_search": "best"},
                             posterior="laplace").fit(X, y)
    assert best.train_info_["prompt"]["template"] == prompt["best_template"] and best.model_.last_layer() is not None
    with pytest.raises(FewtuneError, match="with one template"):
        FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot", posterior="laplace").fit(X, y)


def test_the_calibration_is_fitted_on_the_shots_and_can_be_switched_off(chat_llama_folder):
    X, y = synthetic.make()
    template = {"template": "{text}\nAnswer:"}
    raw = FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot",
                            params={**template, "score_calibration": "none"}).fit(X, y)
    cal = FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot", params=template).fit(X, y)
    assert raw.train_info_["prompt"]["calibration"] == {"scale": 1.0, "bias": []}
    # On the shots themselves the MAP calibration cannot fit worse than the raw scores (it contains them).
    idx = np.searchsorted(cal.classes_, y)
    nll = {name: -np.log(m.predict_proba(X)[np.arange(len(y)), idx]).mean() for name, m in (("raw", raw), ("cal", cal))}
    assert nll["cal"] < nll["raw"]
    with pytest.raises(FewtuneError, match="score_calibration must be 'shots' or 'none'"):
        FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot", params={"score_calibration": "x"}).fit(X, y)


def test_prompt_and_icl_keep_one_template():
    from fewtune.methods.icl import ICLParams
    from fewtune.methods.prompt import PromptParams
    from fewtune.training.label_word_method import ZeroShotParams

    assert ZeroShotParams().template_search == "ensemble" and PromptParams().template_search == "best"
    for params in (PromptParams, ICLParams):
        with pytest.raises(FewtuneError, match="template_search must be 'best'"):
            params(template_search="ensemble")


def test_a_builtin_run_as_a_user_file_gets_no_template_and_the_class_names_as_words(chat_llama_folder, tmp_path, capfd):
    from fewtune.cli import main

    assert main(["train", "--dataset", "mr", "--shots", "2", "--max-test", "4", "--method", "zero-shot",
                 "--backbone", str(chat_llama_folder), "--as-user-file", "-q", "--json", "-p", "template_search=best",
                 "-o", str(tmp_path / "m")]) == 0
    result = json.loads(capfd.readouterr().out)
    saved = json.loads((tmp_path / "m" / "prompt.json").read_text())
    assert saved["label_words"] == {"negative": "negative", "positive": "positive"}
    assert "Review:" not in saved["template"] and result["prompt"]["template"] in result["prompt"]["template_candidates"]
    # In the terminal: every candidate's score and the one kept.
    assert main(["evaluate", str(tmp_path / "m"), "--dataset", "mr", "--max-test", "4", "-q"]) == 0
    capfd.readouterr()
    assert main(["train", "--dataset", "mr", "--shots", "2", "--max-test", "4", "--method", "zero-shot",
                 "--backbone", str(chat_llama_folder), "--as-user-file", "-q"]) == 0
    out = capfd.readouterr().out
    assert "templates by cross-validated NLL" in out and "kept the ensemble of all 5" in out


def test_a_shared_score_cache_gives_the_scores_computed_afresh_and_never_after_training(chat_llama_folder):
    from fewtune.backbones import ResolvedBackbone
    from fewtune.methods.prompt import Prompt, PromptParams
    from fewtune.methods.zero_shot import ZeroShot
    from fewtune.training.label_word_method import ZeroShotParams

    X, y = synthetic.make()
    idx = np.array([0 if label == "negative" else 1 for label in y])
    backbone = ResolvedBackbone("tiny", "causal-lm", str(chat_llama_folder), "local")

    def fitted(cache, cls=ZeroShot, params=ZeroShotParams()):
        m = cls(params, backbone, "cpu")
        m.class_names, m.score_cache = ["negative", "positive"], cache
        m.fit(X, idx, 2, seed=0, progress=None)
        return m

    cache = {}
    first = fitted(cache)
    assert len(cache) == 5 * len(set(X))  # every template × every distinct shot, once
    np.testing.assert_allclose(fitted(cache).predict_proba(X), fitted(None).predict_proba(X), atol=1e-12)
    trained = fitted(cache, Prompt, PromptParams(epochs=1, early_stopping=False, learning_rate=0.5))
    size = len(cache)
    trained.predict_proba(["a new text the cache has not seen"])
    assert len(cache) == size and not trained._pretrained
    assert first.predict_proba(X).shape == (len(X), 2)
