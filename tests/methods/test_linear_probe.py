"""linear-probe's head strength, chosen on the shots by out-of-fold log-loss (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.errors import FewtuneError
from fewtune.data.sampling import cv_folds
from fewtune.training.heads import cross_validated_nll

from ..conftest import minilm_folder

CS = (1.0, 10.0, 100.0, 1000.0)


def _blobs(separation: float, n: int = 8, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n)
    x = rng.standard_normal((2 * n, dim)) * 0.1
    x[:, 0] += np.where(y == 1, separation, -separation)
    return x / np.linalg.norm(x, axis=1, keepdims=True), y  # unit length, as MiniLM's embeddings are


def test_out_of_fold_log_loss_wants_a_weak_penalty_on_separable_shots_and_a_strong_one_on_noise():
    x, y = _blobs(1.0)
    clean = cross_validated_nll(x, y, 2, CS, cv_folds(y, 4, 0))
    assert min(clean, key=clean.get) == 1000.0 and clean[1000.0] < 0.5 * clean[1.0]
    noise = np.random.default_rng(1).standard_normal(x.shape)
    noisy = cross_validated_nll(noise / np.linalg.norm(noise, axis=1, keepdims=True), y, 2, CS, cv_folds(y, 4, 0))
    assert min(noisy, key=noisy.get) == 1.0


def test_a_given_head_c_with_choose_c_on_is_refused_before_training(st_folder):
    with pytest.raises(FewtuneError, match="head_c=10 is not used while choose_c is true"):
        FewShotClassifier(backbone=str(st_folder), method="linear-probe", params={"head_c": 10}).fit(
            ["a", "b", "c", "d"], ["x", "y", "x", "y"])


def test_linear_probe_is_confident_on_easy_texts():
    # The README's abstention example needs probabilities that reach 0.8 on texts this plain; with
    # scikit-learn's C = 1 on unit-length MiniLM embeddings the top probability stayed below 0.6.
    folder = minilm_folder()
    topics = {
        "sport": ["The striker scored twice as the team won the cup final.", "She won the tennis match in straight sets.",
                  "The coach praised the defence after the league victory.", "He ran the marathon in record time.",
                  "The goalkeeper saved a penalty in the derby.", "The cricket side lost the test series."],
        "money": ["The central bank raised interest rates again.", "Shares fell as the company missed profit forecasts.",
                  "Inflation rose to four percent last month.", "The firm reported record quarterly revenue.",
                  "Investors sold bonds after the budget.", "The stock market closed higher on Friday."],
    }
    texts = [t for ts in topics.values() for t in ts]
    labels = [k for k, ts in topics.items() for _ in ts]
    clf = FewShotClassifier(backbone=str(folder), method="linear-probe").fit(texts, labels)
    assert clf.train_info_["head_c"] > 1.0
    new = ["The midfielder scored a late goal to win the match.", "The bank cut its profit forecast as shares fell."]
    proba = clf.predict_proba(new)
    assert list(clf.predict(new)) == ["sport", "money"]
    assert (proba.max(1) >= 0.8).all(), proba


def test_a_fold_loops_linear_probes_load_one_frozen_body_and_predict_as_with_their_own(st_folder, monkeypatch):
    """Inside a fold loop (here --select cv over max_tokens, then the calibration's) every linear-probe shares one
    loaded body; each still reads its own max_tokens, and the choice and the kept model are what they were when
    every fold model loaded a body of its own. The kept model, trained after the loop, has a body of its own."""
    from fewtune.methods.linear_probe import LinearProbe
    from fewtune.training import encoder_method

    texts = [f"{word} {thing}" for word in ("good", "great", "bad", "awful")
             for thing in ("film", "movie", "plot", "cast")]
    labels = ["pos"] * 8 + ["neg"] * 8
    loads, lengths = [], []  # every body load; (max_tokens asked, the body's length) at each fit's embedding
    real_load, real_encode = encoder_method.load_encoder, LinearProbe._encode
    monkeypatch.setattr(encoder_method, "load_encoder", lambda *a, **kw: loads.append(1) or real_load(*a, **kw))

    def encode(self, texts, **kw):
        lengths.append((self.params.max_tokens, self.body.max_seq_length))
        return real_encode(self, texts, **kw)

    monkeypatch.setattr(LinearProbe, "_encode", encode)

    def fit():
        loads.clear()
        lengths.clear()
        clf = FewShotClassifier(backbone=str(st_folder), method="linear-probe", select="cv", cv_folds=2,
                                grid={"max_tokens": [3, 0]}, calibrate="temperature", seed=0).fit(texts, labels)
        return clf, len(loads), list(lengths)

    shared, shared_loads, shared_lengths = fit()
    monkeypatch.setattr(LinearProbe, "frozen_body", False)
    own, own_loads, own_lengths = fit()
    # 2 points x 2 folds for the choice, the kept model, 2 calibration folds: 7 loads, or one per loop and the kept.
    assert (own_loads, shared_loads) == (7, 3)
    assert shared_lengths == own_lengths and {asked for asked, _ in shared_lengths} == {3, 0}
    assert all(length == asked for asked, length in shared_lengths if asked)
    assert shared.train_info_["selection"] == own.train_info_["selection"]
    np.testing.assert_allclose(shared.predict_proba(texts), own.predict_proba(texts), atol=1e-6)
    assert shared.model_.body is not own.model_.body
