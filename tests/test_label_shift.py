"""A known class mix at prediction time (`class_prior`): Bayes' rule for label shift.

The arithmetic is checked against hand-computed posteriors; the classifier integration (fit, predict,
save/load, set_params, the CLI) on the tiny random backbone.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.cli import main
from fewtune.label_shift import parse_class_prior, prior_ratio, prior_vector, shift_proba

from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT as FAST

CLASSES = ["negative", "positive"]


def test_bayes_rule_moves_an_undecided_prediction_to_the_new_mix():
    even = np.array([[0.5, 0.5], [0.9, 0.1]])
    ratio = prior_ratio({"negative": 4, "positive": 1}, CLASSES, {"negative": 8, "positive": 8})
    np.testing.assert_allclose(ratio, [1.6, 0.4])
    shifted = shift_proba(even, ratio)
    np.testing.assert_allclose(shifted[0], [0.8, 0.2])
    np.testing.assert_allclose(shifted[1], [0.9 * 1.6, 0.1 * 0.4] / np.sum([0.9 * 1.6, 0.1 * 0.4]))
    assert shift_proba(even, None) is even


def test_the_training_mix_is_the_shots_unless_the_loss_was_balanced():
    counts = {"negative": 2, "positive": 6}  # π_train = (0.25, 0.75)
    uniform = {"negative": 1, "positive": 1}
    np.testing.assert_allclose(shift_proba(np.array([[0.5, 0.5]]), prior_ratio(uniform, CLASSES, counts)),
                               [[0.75, 0.25]])
    np.testing.assert_allclose(prior_ratio(uniform, CLASSES, counts, "balanced"), [1.0, 1.0])


@pytest.mark.parametrize("spec,message", [
    ("negative=0.7", "no weight for 'positive'"),
    ("negative=0.7,positive=0.3,neutral=0.1", "'neutral' is not one of the model's classes"),
    ("negative=0.7,positive=0", "the weight of 'positive' must be positive"),
    ("negative=0.7,positive=lots", "the weight of 'positive' must be a number, got 'lots'"),
    ("negative:0.7", "'negative:0.7' is not LABEL=WEIGHT"),
    ('{"negative": 0.7,', "not valid JSON"),
    ("[0.7, 0.3]", "is not LABEL=WEIGHT"),
    (" , ", "empty"),
])
def test_a_bad_prior_names_what_is_wrong(spec, message):
    with pytest.raises(FewtuneError, match=message):
        prior_vector(parse_class_prior(spec), CLASSES)


def test_labels_with_commas_go_as_json():
    assert list(prior_vector(parse_class_prior('{"good, really": 3, "bad": 1}'), ["bad", "good, really"])) == [0.25, 0.75]


@pytest.fixture(scope="module")
def plain(st_folder):
    X, y = synthetic.make(per_class=8)
    return FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0).fit(X, y)


def test_the_classifier_applies_the_prior_after_training_and_keeps_it(st_folder, plain, tmp_path):
    X, y = synthetic.make(per_class=8)
    X_new, _ = synthetic.held_out()
    prior = {"negative": 0.9, "positive": 0.1}
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, class_prior=prior).fit(X, y)
    base = plain.predict_proba(X_new)
    proba = clf.predict_proba(X_new)
    np.testing.assert_allclose(proba, shift_proba(base, np.array([1.8, 0.2])), atol=1e-9)
    assert (clf.predict(X_new) == clf.classes_[proba.argmax(1)]).all()
    # A prior leaning to one class can only move predictions toward it.
    assert (clf.predict(X_new) == "negative").sum() >= (plain.predict(X_new) == "negative").sum()
    clf.save(tmp_path / "m")
    assert "class prior at prediction" in (tmp_path / "m" / "README.md").read_text()
    again = FewShotClassifier.load(tmp_path / "m")
    assert again.class_prior == pytest.approx(prior)
    np.testing.assert_allclose(again.predict_proba(X_new), proba, atol=1e-12)
    again.set_params(class_prior=None)
    np.testing.assert_allclose(again.predict_proba(X_new), base, atol=1e-9)


def test_a_bad_prior_fails_before_training(st_folder):
    X, y = synthetic.make(per_class=8)
    with pytest.raises(FewtuneError, match="'neutral' is not one of the model's classes"):
        FewShotClassifier(backbone=str(st_folder), params=FAST, class_prior="neutral=1,negative=1").fit(X, y)
    with pytest.raises(FewtuneError, match="class_prior cover single-label"):
        FewShotClassifier(backbone=str(st_folder), params=FAST, class_prior="negative=1,positive=1").fit(
            X, [[label] for label in y])


def test_predict_takes_a_class_prior_in_place_of_the_saved_one(plain, tmp_path, capfd):
    plain.save(tmp_path / "m")
    texts, _ = synthetic.held_out()
    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in texts]])
    args = ["predict", str(tmp_path / "m"), str(tmp_path / "in.csv"), "--format", "jsonl", "--quiet"]
    assert main([*args, "--class-prior", "negative=0.2,positive=0.8"]) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    expected = shift_proba(plain.predict_proba(texts), np.array([0.4, 1.6]))
    got = np.array([[row[f"p_{c}"] for c in CLASSES] for row in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert main([*args, "--class-prior", "negative=0.2"]) == 2
    assert "no weight for 'positive'" in capfd.readouterr().err


def test_a_multi_label_model_refuses_a_class_prior_after_training(st_folder):
    X, y = synthetic.make(per_class=8)
    multi = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0).fit(X, [[label] for label in y])
    with pytest.raises(FewtuneError, match="this model is multi-label"):
        multi.set_class_prior("negative=1,positive=1")
    assert multi.predict_proba(X[:2]).shape == (2, 2)  # no prior: predictions as before
