"""The label-word methods and generation on the real SmolLM2-135M-Instruct (slow: run with -m slow).

The session's private FEWTUNE_HOME converts the GGUF once (about 15 s); each test then loads the
cached safetensors folder.
"""

from __future__ import annotations

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewShotGenerator
from fewtune.backbones import install_backbone
from fewtune.data import load_builtin, sample_k_shot
from fewtune.data.builtin import get_dataset
from fewtune.generation import load_dialogues

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    install_backbone("smollm2-135m", quiet=True)
    return "smollm2-135m"


@pytest.fixture(scope="module")
def mr():
    pool, test = load_builtin("mr")
    idx = sample_k_shot(pool.labels, 8, 0)
    keep = np.sort(np.random.default_rng(0).choice(len(test), 100, replace=False))
    return ([pool.texts[i] for i in idx], [pool.labels[i] for i in idx],
            [test.texts[i] for i in keep], [test.labels[i] for i in keep])


def test_zero_shot_smollm2_reads_movie_review_sentiment_well_above_chance(smollm2, mr):
    X, y, X_test, y_test = mr
    clf = FewShotClassifier(smollm2, "zero-shot", params=get_dataset("mr").prompt_params(), show_progress=False)
    assert clf.fit(X, y).score(X_test, y_test) >= 0.65


def test_zero_shot_on_a_user_file_finds_its_prompt_on_the_shots_and_does_not_collapse(smollm2, mr):
    # No template, no label words: only the texts and the class names, as a user's CSV would give.
    X, y, X_test, y_test = mr
    clf = FewShotClassifier(smollm2, "zero-shot", show_progress=False).fit(X, y)
    predicted = clf.predict(X_test)
    assert set(predicted) == {"negative", "positive"}  # uncalibrated, one class took every text
    assert clf.score(X_test, y_test) >= 0.6
    assert len(clf.train_info_["prompt"]["template_candidates"]) >= 4  # each scored on the shots


def test_prompt_fine_tuning_on_8_shots_keeps_smollm2_at_least_near_zero_shot(smollm2, mr, tmp_path):
    X, y, X_test, y_test = mr
    words = get_dataset("mr").prompt_params()
    zero = FewShotClassifier(smollm2, "zero-shot", params=words, show_progress=False).fit(X, y).score(X_test, y_test)
    clf = FewShotClassifier(smollm2, "prompt", params={**words, "epochs": 3}, show_progress=False).fit(X, y)
    assert clf.score(X_test, y_test) >= zero - 0.05
    clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "adapter_model.safetensors").stat().st_size < 5_000_000  # the adapter, not the LM
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X_test[:8]),
                               clf.predict_proba(X_test[:8]), atol=1e-5)


def test_dialogue_fine_tuning_lowers_held_out_perplexity_and_reloads_identically(smollm2, tmp_path):
    pool, test = load_dialogues("chitchat")
    gen = FewShotGenerator(smollm2, params={"epochs": 1, "max_tokens": 128}, show_progress=False)
    gen.fit(pool[:16], eval_examples=test[:8])
    assert gen.evaluation_["perplexity_after"] < gen.evaluation_["perplexity_before"]
    gen.save(tmp_path / "bot")
    again = FewShotGenerator.load(tmp_path / "bot")
    assert again.generate("Hi! How was your day?", max_new_tokens=16) == gen.generate("Hi! How was your day?",
                                                                                     max_new_tokens=16)
