"""Re-estimating the class prior of a batch (label shift, Saerens et al. 2002)."""

import json

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.bayes.label_shift import adapt_to_class_prior

from . import synthetic


def _shifted_batch(prior, n=4000, seed=0):
    """Exact posteriors under a uniform training prior for a batch drawn with `prior`: three classes,
    x ~ N(mean_y, 1) in 1-D, p(y | x) ∝ N(x; mean_y, 1) · 1/3."""
    rng = np.random.default_rng(seed)
    means = np.array([-2.0, 0.0, 2.0])
    y = rng.choice(3, size=n, p=prior)
    x = rng.normal(means[y], 1.0)
    log_lik = -0.5 * (x[:, None] - means[None]) ** 2
    proba = np.exp(log_lik - log_lik.max(1, keepdims=True))
    return proba / proba.sum(1, keepdims=True), y


def test_em_recovers_the_batch_prior_and_improves_the_likelihood():
    true_prior = np.array([0.6, 0.3, 0.1])
    proba, y = _shifted_batch(true_prior)
    adjusted, prior, iterations = adapt_to_class_prior(proba, np.full(3, 1 / 3))
    np.testing.assert_allclose(prior, true_prior, atol=0.03)
    np.testing.assert_allclose(adjusted.sum(1), 1.0, atol=1e-12)
    assert 1 < iterations < 1000
    # The adjusted probabilities are the Bayes posteriors under the new prior: the true labels get more mass.
    nll_before = -np.log(proba[np.arange(len(y)), y]).mean()
    nll_after = -np.log(adjusted[np.arange(len(y)), y]).mean()
    assert nll_after < nll_before - 0.05
    assert (adjusted.argmax(1) == y).mean() > (proba.argmax(1) == y).mean()


def test_a_batch_with_the_training_prior_is_left_almost_as_it_is():
    proba, _ = _shifted_batch(np.full(3, 1 / 3), seed=1)
    adjusted, prior, _ = adapt_to_class_prior(proba, np.full(3, 1 / 3))
    np.testing.assert_allclose(prior, np.full(3, 1 / 3), atol=0.03)
    assert np.abs(adjusted - proba).max() < 0.06


@pytest.mark.parametrize("proba, prior, match", [
    (np.array([[0.5, 0.5]]), np.array([0.5, 0.5]), "needs a batch"),
    (np.full((3, 2), 0.5), np.array([0.2, 0.3, 0.5]), "do not match"),
    (np.full((3, 2), 0.5), np.array([0.0, 1.0]), "must be positive"),
])
def test_bad_input_is_explained(proba, prior, match):
    with pytest.raises(FewtuneError, match=match):
        adapt_to_class_prior(proba, prior)


def test_classifier_adapts_to_a_batch_that_is_mostly_one_class(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(str(st_folder), "linear-probe").fit(X, y)
    held_X, held_y = synthetic.held_out()
    # A batch that is 7/8 positive: the adapted prior leans positive, the probabilities follow.
    batch = [t for t, label in zip(held_X, held_y) if label == "positive"] * 7 + \
            [t for t, label in zip(held_X, held_y) if label == "negative"]
    plain = clf.predict_proba(batch)
    adapted = clf.predict_proba(batch, adapt_prior=True)
    positive = list(clf.classes_).index("positive")
    assert clf.adapted_prior_["prior"]["positive"] > 0.6
    assert adapted[:, positive].mean() > plain[:, positive].mean()
    assert list(clf.predict(batch, adapt_prior=True)) == list(clf.classes_[adapted.argmax(1)])
    # The training prior comes from the saved record, so a reloaded model adapts the same way.
    clf.save(tmp_path / "m")
    again = FewShotClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(batch, adapt_prior=True), adapted, atol=1e-12)


def test_cli_predict_and_evaluate_take_adapt_prior(st_folder, tmp_path, capfd):
    from fewtune.cli import main

    X, y = synthetic.make(per_class=8)
    FewShotClassifier(str(st_folder), "linear-probe").fit(X, y).save(tmp_path / "m")
    held_X, held_y = synthetic.held_out()
    (tmp_path / "test.csv").write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in zip(held_X, held_y)))
    capfd.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(tmp_path / "test.csv"), "--adapt-prior",
                 "--json", "-q"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert set(report["adapted_prior"]["prior"]) == {"negative", "positive"}
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "test.csv"), "--adapt-prior"]) == 0
    captured = capfd.readouterr()
    assert "class prior re-estimated from the 16 texts" in captured.err
    assert len(captured.out.strip().splitlines()) == 17
