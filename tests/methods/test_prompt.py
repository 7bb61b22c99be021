"""zero-shot and prompt: classification by label words on a causal LM (tiny random Llama at test time)."""

import json

import numpy as np
import pytest
import torch

from fewtune import FewShotClassifier, FewtuneError
from fewtune.backbones import ResolvedBackbone, load_causal_lm
from fewtune.training.prefix_cache import MIN_SHARED_PREFIX, shared_prefix_length
from fewtune.training.scorer import LabelScorer, parse_label_words

# The tiny Llama's vocabulary: "<unk>", "</s>", "this", "movie", "was", "great", "terrible", "overall", "it", "."
TEMPLATE = "{text} overall it was"
WORDS = "neg=terrible,pos=great"


def reviews(n=8):
    good = ["this movie was great", "great movie", "it was great .", "this was great"]
    bad = ["this movie was terrible", "terrible movie", "it was terrible .", "this was terrible"]
    X = [good[i % 4] for i in range(n)] + [bad[i % 4] for i in range(n)]
    return X, ["pos"] * n + ["neg"] * n


def lm(llama_folder):
    return load_causal_lm(ResolvedBackbone("tiny", "causal-lm", str(llama_folder), "local"), device="cpu")


def test_single_token_scores_equal_the_next_token_log_probabilities(llama_folder):
    model, tok = lm(llama_folder)
    scorer = LabelScorer(model, tok, TEMPLATE, ["terrible", "great"], max_tokens=64, length_normalize=False)
    assert scorer.single_token
    prompts = scorer.prompts(["this movie was great", "terrible"])
    with torch.no_grad():
        scores = scorer.scores(prompts)
        for i, p in enumerate(prompts):
            logits = model(input_ids=torch.tensor([p])).logits[0, -1]
            expected = torch.log_softmax(logits, -1)[[tok.convert_tokens_to_ids("terrible"),
                                                      tok.convert_tokens_to_ids("great")]]
            torch.testing.assert_close(scores[i], expected, atol=1e-5, rtol=1e-5)


def test_multi_token_label_words_sum_their_tokens_and_can_be_length_normalised(llama_folder):
    model, tok = lm(llama_folder)
    words = ["terrible movie", "great"]
    raw = LabelScorer(model, tok, TEMPLATE, words, max_tokens=64, length_normalize=False)
    norm = LabelScorer(model, tok, TEMPLATE, words, max_tokens=64, length_normalize=True)
    assert not raw.single_token
    p = raw.prompts(["this movie was great"])
    with torch.no_grad():
        s_raw, s_norm = raw.scores(p)[0], norm.scores(p)[0]
        ids = p[0] + tok("terrible movie", add_special_tokens=False)["input_ids"]
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
        n = len(p[0])
        expected = logp[n - 1, ids[n]] + logp[n, ids[n + 1]]
    torch.testing.assert_close(s_raw[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_norm[0], expected / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_raw[1], s_norm[1])


def test_zero_shot_probabilities_are_the_label_word_softmax_and_round_trip(llama_folder, tmp_path):
    X, y = reviews(4)
    clf = FewShotClassifier(backbone=str(llama_folder), method="zero-shot",
                            params={"template": TEMPLATE, "label_words": WORDS}).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert list(clf.predict(X)) == list(clf.classes_[proba.argmax(1)])
    clf.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.safetensors")), "zero-shot has no weights of its own"
    assert json.loads((tmp_path / "m" / "prompt.json").read_text())["label_words"] == {"neg": "terrible", "pos": "great"}
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X), proba, atol=1e-6)


@pytest.mark.parametrize("params", [{"lora": True, "learning_rate": 5e-2}, {"lora": False, "learning_rate": 1e-2, "l2sp": 0.1}])
def test_prompt_fine_tuning_learns_the_label_words_and_round_trips(llama_folder, tmp_path, params):
    X, y = reviews(4)
    base = {"template": TEMPLATE, "label_words": WORDS, "epochs": 10, "batch_size": 4, "early_stopping": False}
    zero = FewShotClassifier(backbone=str(llama_folder), method="zero-shot",
                             params={"template": TEMPLATE, "label_words": WORDS}).fit(X, y)
    clf = FewShotClassifier(backbone=str(llama_folder), method="prompt", params={**base, **params}).fit(X, y)
    # A random LM knows nothing: training, not the zero-shot start, must make it right.
    assert clf.score(X, y) == 1.0 and clf.score(X, y) > zero.score(X, y) - 1e-9
    assert clf.train_info_["distance_from_pretrained"] > 0
    clf.save(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").rglob("*") if p.is_file()}
    assert ("adapter_model.safetensors" in files) == params["lora"]
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    again = FewShotClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_prompt_with_demonstrations_puts_one_solved_example_per_class_before_each_text(llama_folder, tmp_path):
    X, y = reviews(4)
    params = {"template": TEMPLATE, "label_words": WORDS, "epochs": 20, "batch_size": 4, "learning_rate": 5e-2,
              "demonstrations": True, "separator": " ; ", "early_stopping": False}
    clf = FewShotClassifier(backbone=str(llama_folder), method="prompt", params=params).fit(X, y)
    method = clf.model_
    scorer = method._scorer()
    context = method._context(scorer, np.random.default_rng(0), exclude=0)
    # Two classes: two demonstrations, one ending in each label word, neither of them example 0.
    assert context.count(" ; ") == 2 and "terrible ; " in context and "great ; " in context
    # Distinguishable demonstrations: example i is "movie" repeated i+1 times. Example 0 is never drawn
    # for itself, and every other example of its class is.
    saved = method.demonstrations
    method.demonstrations = [(" ".join(["movie"] * (i + 1)), label) for i, (_, label) in enumerate(saved)]
    drawn = {piece.count("movie") - 1 for s in range(60)
             for piece in method._context(scorer, np.random.default_rng(s), exclude=0).split(" ; ") if piece}
    same_class = {i for i, (_, label) in enumerate(saved) if label == saved[0][1]}
    assert 0 not in drawn and same_class - {0} <= drawn
    method.demonstrations = saved
    prompt = method._prompts(scorer, [X[0]])[0]
    assert prompt == method._prompts(scorer, [X[5], X[0]])[1], "a text's context must not depend on its batch"
    assert clf.score(X, y) == 1.0
    clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "demonstrations.json").is_file()
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_prompt_early_stopping_counts_the_untrained_model_as_epoch_zero(llama_folder, monkeypatch):
    """When the folds' validation loss only rises with training, the calibrated zero-shot model comes back."""
    from fewtune.methods import prompt

    X, y = reviews(4)
    words = {"template": TEMPLATE, "label_words": WORDS}
    zero = FewShotClassifier(backbone=str(llama_folder), method="zero-shot", params=words).fit(X, y)
    seen = []

    def rising(run, val_idx):  # every later evaluation worse than the one before
        seen.append(sorted(int(i) for i in val_idx))
        return float(len(seen))

    monkeypatch.setattr(prompt._PromptRun, "_validation_loss", rising)
    clf = FewShotClassifier(backbone=str(llama_folder), method="prompt", params={
        **words, "epochs": 3, "batch_size": 4, "early_stopping": True, "patience": 1}).fit(X, y)
    info = clf.train_info_
    # 2 folds, each stopped after 1 epoch without improvement; together they validate every shot once.
    assert info["chosen_epochs"] == 0 and info["epochs"] == 0 and info["cv_folds"] == 2
    assert len(info["cv_loss_by_epoch"]) == 2 and len(seen) == 4
    assert sorted(seen[0] + seen[2]) == list(range(len(X)))
    np.testing.assert_allclose(clf.predict_proba(X), zero.predict_proba(X), atol=1e-6)


def test_prompt_with_one_shot_per_class_trains_the_full_schedule(llama_folder):
    X, y = ["this movie was great", "this movie was terrible"], ["pos", "neg"]
    clf = FewShotClassifier(backbone=str(llama_folder), method="prompt",
                            params={"template": TEMPLATE, "label_words": WORDS, "epochs": 2}).fit(X, y)
    assert clf.train_info_["epochs"] == 2 and "single shot" in clf.train_info_["early_stopping"]


def test_label_words_are_checked(llama_folder):
    X, y = reviews(2)
    assert parse_label_words(" a = x , b=y ") == {"a": "x", "b": "y"}
    with pytest.raises(FewtuneError, match="LABEL=WORD"):
        parse_label_words("a:x")
    with pytest.raises(FewtuneError, match="'maybe', not among the classes"):
        FewShotClassifier(backbone=str(llama_folder), method="zero-shot",
                          params={"label_words": "maybe=great"}).fit(X, y)
    with pytest.raises(FewtuneError, match="template must contain"):
        FewShotClassifier(backbone=str(llama_folder), method="zero-shot", params={"template": "no slot"}).fit(X, y)


def test_prompt_methods_need_a_causal_lm_and_single_labels(llama_folder, st_folder):
    X, y = reviews(2)
    with pytest.raises(FewtuneError, match="needs a backbone of kind causal-lm"):
        FewShotClassifier(backbone=str(st_folder), method="zero-shot").fit(X, y)
    with pytest.raises(FewtuneError, match="multi-label"):
        FewShotClassifier(backbone=str(llama_folder), method="zero-shot").fit(X, [["pos"], ["neg"], ["pos"], []])


def test_a_long_prefix_shared_by_a_batch_is_encoded_once_with_the_same_scores(llama_folder):
    model, tok = lm(llama_folder)
    scorer = LabelScorer(model, tok, TEMPLATE, ["terrible", "great"], max_tokens=256, length_normalize=False)
    context = "this movie was great . it was terrible . " * 6  # about 60 tokens that every prompt repeats
    prompts = scorer.prompts([context + t for t in ("this movie was great", "terrible", "it was .")])
    assert shared_prefix_length(prompts) >= MIN_SHARED_PREFIX
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        with torch.no_grad():
            shared = scorer.scores(prompts)
            scorer.reuse_prefix = False
            plain = scorer.scores(prompts)
    finally:
        hook.remove()
    assert calls[0][0] == 1 and calls[1][1] < 10  # the prefix once, then only each prompt's own tokens
    assert calls[2] == (3, max(len(p) for p in prompts))
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    scorer.reuse_prefix = True
    assert scorer.scores(prompts).requires_grad  # training takes the plain, differentiable path


# --- in-context learning ---------------------------------------------------------------------------------
ICL = {"template": TEMPLATE, "label_words": WORDS, "separator": " . "}


def test_icl_cached_prefix_gives_the_same_probabilities_as_recomputing_it(llama_folder):
    X, y = reviews(3)
    cached = FewShotClassifier(backbone=str(llama_folder), method="icl", params={**ICL, "contextual_calibration": False}).fit(X, y)
    plain = FewShotClassifier(backbone=str(llama_folder), method="icl",
                              params={**ICL, "contextual_calibration": False, "cache_prefix": False}).fit(X, y)
    assert cached.train_info_["demonstrations"] == 6 and cached.train_info_["context_tokens"] > 20
    queries = ["this movie was great", "terrible", "it was ."]
    np.testing.assert_allclose(cached.predict_proba(queries), plain.predict_proba(queries), atol=1e-5)


def test_icl_calibration_divides_out_the_content_free_label_bias(llama_folder):
    from fewtune.methods.icl import CONTENT_FREE

    X, y = reviews(3)
    cal = FewShotClassifier(backbone=str(llama_folder), method="icl", params=ICL).fit(X, y)
    raw = FewShotClassifier(backbone=str(llama_folder), method="icl", params={**ICL, "contextual_calibration": False}).fit(X, y)
    with torch.no_grad():
        bias = cal.model_._raw_proba(list(CONTENT_FREE)).mean(0)
    np.testing.assert_allclose(cal.model_._content_free, bias)
    assert np.abs(bias - 0.5).max() > 1e-3, "the random LM has some label bias to remove"
    queries = ["this movie was great", "terrible", "it was ."]
    expected = raw.predict_proba(queries) / bias
    np.testing.assert_allclose(cal.predict_proba(queries), expected / expected.sum(1, keepdims=True), atol=1e-9)


def test_icl_saves_its_demonstrations_and_reloads_to_identical_outputs(llama_folder, tmp_path):
    X, y = reviews(2)
    clf = FewShotClassifier(backbone=str(llama_folder), method="icl", params=ICL, seed=3).fit(X, y)
    clf.save(tmp_path / "m")
    demos = json.loads((tmp_path / "m" / "demonstrations.json").read_text())
    assert sorted(d["text"] for d in demos) == sorted(X)
    assert {d["label"] for d in demos} == {"pos", "neg"}
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_prompt_methods_through_the_cli(llama_folder, tmp_path, capfd):
    import csv

    from fewtune.cli import main

    X, y = reviews(4)
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *zip(X, y)])
    code = main(["train", "--data", str(tmp_path / "train.csv"), "--method", "prompt", "--backbone", str(llama_folder),
                 "-p", f"template={TEMPLATE}", "-p", "label_words=neg=terrible,pos=great", "-p", "learning_rate=0.05",
                 "-o", str(tmp_path / "m"), "--json", "-q"])
    out = capfd.readouterr().out
    assert code == 0
    assert json.loads(out)["method"] == "prompt"
    code = main(["predict", str(tmp_path / "m"), str(tmp_path / "train.csv"), "-f", "jsonl", "-q"])
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert code == 0 and [r["label"] for r in rows] == y


def test_a_builtin_dataset_brings_its_own_template_unless_one_is_given(llama_folder, tmp_path, capfd):
    from fewtune.cli import main

    # The tiny LM's vocabulary has neither class name: the words are given, the template is the data set's.
    common = ["train", "--dataset", "mr", "--shots", "2", "--max-test", "4", "--method", "zero-shot",
              "--backbone", str(llama_folder), "-q", "--json", "-p", "label_words=negative=terrible,positive=great"]
    assert main([*common, "-o", str(tmp_path / "default")]) == 0
    assert main([*common, "-p", f"template={TEMPLATE}", "-o", str(tmp_path / "mine")]) == 0
    capfd.readouterr()
    default = json.loads((tmp_path / "default" / "prompt.json").read_text())
    assert default["template"] == "Review: {text}\nSentiment:"
    assert default["label_words"] == {"negative": "terrible", "positive": "great"}
    assert json.loads((tmp_path / "mine" / "prompt.json").read_text())["template"] == TEMPLATE


@pytest.mark.parametrize("method,extra", [
    ("zero-shot", {}),
    ("prompt", {"lora": True, "learning_rate": 5e-2, "epochs": 3, "batch_size": 4, "early_stopping": False}),
    ("prompt", {"demonstrations": True, "epochs": 1, "batch_size": 4, "early_stopping": False}),
    ("icl", {"max_demo_tokens": 8}),
])
def test_single_token_label_words_are_a_linear_softmax_head_on_the_last_hidden_state(llama_folder, method, extra):
    X, y = reviews(3)
    clf = FewShotClassifier(backbone=str(llama_folder), method=method,
                            params={"template": TEMPLATE, "label_words": WORDS, **extra}).fit(X, y)
    queries = ["this movie was great", "terrible", "it was ."]
    weight, bias = clf.model_.last_layer()
    logits = clf.features(queries) @ weight.T + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(expected / expected.sum(1, keepdims=True), clf.predict_proba(queries), atol=1e-4)


def test_laplace_posterior_over_the_label_words_saves_and_reloads(llama_folder, tmp_path):
    X, y = reviews(4)
    params = {"template": TEMPLATE, "label_words": WORDS}
    clf = FewShotClassifier(backbone=str(llama_folder), method="zero-shot", params=params, posterior="laplace").fit(X, y)
    plain = FewShotClassifier(backbone=str(llama_folder), method="zero-shot", params=params).fit(X, y)
    assert clf.train_info_["posterior"]["kind"] == "laplace" and clf.train_info_["posterior"]["refit"] is False
    # The posterior's mean is the LM's own head: the predictions agree, the probabilities are softer.
    assert list(clf.predict(X)) == list(plain.predict(X))
    assert np.abs(clf.predict_proba(X) - 0.5).max() <= np.abs(plain.predict_proba(X) - 0.5).max() + 1e-9
    np.testing.assert_allclose(FewShotClassifier.load(clf.save(tmp_path / "m")).predict_proba(X),
                               clf.predict_proba(X), atol=1e-9)
    # Multi-token label words are not one linear layer: a clear error, not a wrong posterior.
    with pytest.raises(FewtuneError, match="single-token label words"):
        FewShotClassifier(backbone=str(llama_folder), method="zero-shot", posterior="laplace",
                          params={"template": TEMPLATE, "label_words": "neg=terrible movie,pos=great"}).fit(X, y)


# (method, LM loads with sharing, fewer texts scored): icl's scores carry each fold's own demonstrations, so only
# the template search before them (none on this LM, whose one candidate needs no choosing) could be shared.
@pytest.mark.parametrize("method, loads_shared, fewer_scored", [("zero-shot", 2, True), ("icl", 2, False),
                                                               ("prompt", 3, False)])
def test_a_calibrations_frozen_lm_models_share_one_lm_and_its_scores_and_predict_as_with_their_own(
        llama_folder, monkeypatch, method, loads_shared, fewer_scored):
    """A calibration's fold models of a method that never trains its LM share one loaded LM and the raw scores it
    gives the shots (zero-shot's template search scores them again in every fold), and the kept model predicts as
    when each loaded its own. prompt trains its LM: a model of its own in every fold."""
    from fewtune.methods import get_method
    from fewtune.training import label_word_method

    X, y = reviews(4)
    loads, scored = [], []
    real_load, real_scores = label_word_method.load_causal_lm, LabelScorer.scores
    monkeypatch.setattr(label_word_method, "load_causal_lm", lambda *a, **kw: loads.append(1) or real_load(*a, **kw))
    monkeypatch.setattr(LabelScorer, "scores",
                        lambda self, prompts: scored.append(len(prompts)) or real_scores(self, prompts))
    params = {"label_words": WORDS, "epochs": 1} if method == "prompt" else {"label_words": WORDS}

    def fit():
        loads.clear()
        scored.clear()
        clf = FewShotClassifier(backbone=str(llama_folder), method=method, params=params, calibrate="temperature",
                                cv_folds=2, seed=0).fit(X, y)
        return clf, len(loads), sum(scored)

    shared, shared_loads, shared_scored = fit()
    monkeypatch.setattr(get_method(method), "frozen_lm", False)
    own, own_loads, own_scored = fit()
    assert (own_loads, shared_loads) == (3, loads_shared)  # 2 fold models and the kept one; or one per loop
    assert shared_scored <= own_scored and (shared_scored < own_scored) == fewer_scored
    np.testing.assert_allclose(shared.predict_proba(X), own.predict_proba(X), atol=1e-5)
