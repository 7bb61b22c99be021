"""The Laplace posterior over a softmax head, temperature scaling, abstention and risk-coverage.

The closed form (everything in the n·C space of the training examples) is checked against the
textbook computation with the full P × P Hessian on a small random problem; the classifier
integration runs on the tiny random backbone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.bayes import LaplaceHead, apply_temperature, fit_temperature
from fewtune.bayes.laplace import augment, fit_map, log_evidence, softmax
from fewtune.metrics import risk_coverage

from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT as FAST


def problem(n=12, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = np.arange(n) % c
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    return x, y, w, b


def full_hessian(xa, a):
    """Σᵢ (diag pᵢ − pᵢpᵢᵀ) ⊗ xᵢxᵢᵀ as a P × P matrix, parameters ordered class by class."""
    p = softmax(xa @ a.T)
    c, d = a.shape
    h = np.zeros((c * d, c * d))
    for xi, pi in zip(xa, p):
        h += np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(xi, xi))
    return h


@pytest.mark.parametrize("n", [6, 30])  # fewer and more n·C directions than parameters (P = 15)
def test_closed_form_matches_the_full_hessian(n):
    x, y, w, b = problem(n=n)
    tau = 0.7
    post = LaplaceHead(x, y, w, b, tau)
    xa = augment(x)
    # Random features in 4 dimensions span them all: the span's posterior is the full one, rotated.
    assert post.basis.shape == (5, 5)
    precision = full_hessian(xa, post.a_full) + tau * np.eye(post.a_full.size)
    cov = np.linalg.inv(precision)
    x_new = np.random.default_rng(1).normal(size=(5, x.shape[1]))
    mean, cov_f = post.logit_moments(x_new)
    for i, xi in enumerate(augment(x_new)):
        j = np.kron(np.eye(3), xi[None, :])  # d f / d vec(A)
        np.testing.assert_allclose(cov_f[i], j @ cov @ j.T, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(mean[i], post.a_full @ xi)
    a = post.a_full
    log_lik = np.log(softmax(xa @ a.T)[np.arange(n), y]).sum()
    expected = (log_lik - tau / 2 * (a ** 2).sum() + a.size / 2 * math.log(tau)
                - 0.5 * np.linalg.slogdet(precision)[1])
    assert math.isclose(log_evidence(xa, y, a, tau), expected, rel_tol=1e-9)
    assert math.isclose(log_evidence(post.x, y, post.a, tau), expected, rel_tol=1e-9)


def test_only_directions_the_shots_span_carry_uncertainty():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 10))  # 4 texts, 10 features: most directions unseen
    y = np.array([0, 1, 2, 0])
    w, b = rng.normal(size=(3, 10)), rng.normal(size=3)
    post = LaplaceHead(x, y, w, b, tau=0.3)
    assert post.basis.shape == (11, 4)
    v = rng.normal(size=10)
    v -= x.T @ np.linalg.lstsq(x.T, v, rcond=None)[0]  # orthogonal to every training text
    mean, cov = post.logit_moments(np.vstack([x[0], x[0] + 5 * v]))
    np.testing.assert_allclose(cov[1], cov[0], atol=1e-9)  # the unseen direction adds no variance
    np.testing.assert_allclose(mean, np.vstack([x[0], x[0] + 5 * v]) @ w.T + b)  # the head as trained
    np.testing.assert_allclose(post.weight, w) and np.testing.assert_allclose(post.bias, b)


def test_map_is_a_stationary_point():
    x, y, _, _ = problem(n=20)
    xa = augment(x)
    a = fit_map(xa, y, 3, tau=0.5)
    p = softmax(xa @ a.T)
    grad = (p - np.eye(3)[y]).T @ xa + 0.5 * a
    assert np.abs(grad).max() < 1e-5


def test_evidence_picks_the_best_prior_on_the_grid_and_refits_the_head():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    truth = rng.normal(size=(3, 4))
    y = np.array([rng.choice(3, p=p) for p in softmax(x @ truth.T)])  # labels carry signal, with noise
    w, b = np.zeros((3, 4)), np.zeros(3)
    post = LaplaceHead.fit(x, y, w, b, refit=True)
    ev = post.evidence
    assert post.tau == ev["grid"][int(np.argmax(ev["log_evidence"]))]
    assert ev["grid"][0] < post.tau < ev["grid"][-1]  # an interior optimum, not the edge of the grid
    np.testing.assert_allclose(post.a_full, fit_map(augment(x), y, 3, post.tau), atol=1e-4)
    kept = LaplaceHead.fit(x, y, w, b, refit=False)
    np.testing.assert_allclose(kept.weight, w) and np.testing.assert_allclose(kept.bias, b)
    # Labels that ignore the features: the evidence wants the strongest prior on the grid.
    noise = LaplaceHead.fit(x, np.arange(60) % 3, w, b, refit=True)
    assert noise.tau == noise.evidence["grid"][-1] and np.abs(noise.weight).max() < 0.05


def test_cv_prior_picks_the_lowest_held_out_nll():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(24, 6))
    y = np.arange(24) % 3
    x[np.arange(24), y] += 2.0  # a learnable signal in the first three features
    w, b = np.zeros((3, 6)), np.zeros(3)
    grid = (0.01, 0.1, 1.0, 10.0, 100.0)
    post = LaplaceHead.fit(x, y, w, b, refit=True, prior="cv", grid=grid, folds=3)
    table = post.evidence["cv_nll"]
    assert post.evidence["prior"] == "cv" and len(table) == len(grid)
    assert post.tau == grid[int(np.argmin(table))]
    np.testing.assert_allclose(post.a_full, fit_map(augment(x), y, 3, post.tau), atol=1e-4)
    with pytest.raises(FewtuneError, match="prior must be"):
        LaplaceHead.fit(x, y, w, b, refit=True, prior="guess")


def test_posterior_predictions_are_softer_than_the_map_and_mc_agrees_with_probit():
    x, y, w, b = problem(n=9, seed=2)
    post = LaplaceHead(x, y, 3 * w, 3 * b, tau=0.5)
    x_new = np.random.default_rng(5).normal(size=(50, 4))
    map_p, probit = post.map_proba(x_new), post.predict_proba(x_new)
    assert np.allclose(probit.sum(1), 1)
    assert (probit.max(1) <= map_p.max(1) + 1e-12).mean() > 0.9
    post.predictive = "mc"
    mc = post.predict_proba(x_new)
    assert np.abs(mc - probit).max() < 0.1
    assert np.array_equal(mc, post.predict_proba(x_new))  # seeded draws


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 3))
    y = np.array([rng.choice(3, p=p) for p in softmax(logits / 2.5)])  # truth is T = 2.5 softer
    t = fit_temperature(softmax(logits), y)
    assert 2.2 < t < 2.8
    p = softmax(logits)
    assert np.array_equal(apply_temperature(p, t).argmax(1), p.argmax(1))


def test_temperature_prior_holds_t_near_one_when_few_shots_disagree_and_lets_many_move_it():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4000, 3))
    y = np.array([rng.choice(3, p=p) for p in softmax(logits / 2.5)])
    p = softmax(logits)
    few = slice(0, 12)
    t_ml, t_map = fit_temperature(p[few], y[few], prior_sd=None), fit_temperature(p[few], y[few])
    assert abs(np.log(t_map)) < abs(np.log(t_ml))  # pulled toward T = 1 ...
    assert np.sign(np.log(t_map)) == np.sign(np.log(t_ml))  # ... but not past it
    # With thousands of examples the prior barely matters.
    assert fit_temperature(p, y) == pytest.approx(fit_temperature(p, y, prior_sd=None), rel=0.01)


def test_risk_coverage_by_hand():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    truth = ["a", "b", "b", "a"]  # right, wrong, right, wrong; confidence order 0, 2, 1, 3
    points = risk_coverage(truth, proba, ["a", "b"], levels=4)
    assert [p["accuracy"] for p in points] == [1.0, 1.0, 2 / 3, 0.5]
    assert [p["coverage"] for p in points] == [0.25, 0.5, 0.75, 1.0]
    flat = risk_coverage(truth, np.full((4, 2), 0.5), ["a", "b"], levels=4)  # one confidence for all
    assert [p["accuracy"] for p in flat] == [0.5, 0.5, 0.5, 0.5]


@pytest.fixture(scope="module")
def laplace_clf(st_folder):
    X, y = synthetic.make(("negative", "positive", "neutral"), 8)
    return FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, posterior="laplace").fit(X, y)


def test_classifier_with_laplace_posterior_saves_and_reloads(laplace_clf, tmp_path):
    info = laplace_clf.train_info_["posterior"]
    assert info["kind"] == "laplace" and info["refit"] is True and info["tau"] in info["grid"]
    X, _ = synthetic.held_out(("negative", "positive", "neutral"), 8)
    proba = laplace_clf.predict_proba(X)
    assert np.allclose(proba.sum(1), 1) and (laplace_clf.predict(X) == laplace_clf.classes_[proba.argmax(1)]).all()
    laplace_clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "posterior.safetensors").is_file()
    again = FewShotClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-10)
    assert again.posterior == "laplace"


def test_laplace_cv_option_trains_saves_and_reloads(st_folder, tmp_path):
    X, y = synthetic.make(("negative", "positive", "neutral"), 8)
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, posterior="laplace-cv", cv_folds=2).fit(X, y)
    assert clf.train_info_["posterior"]["prior"] == "cv"
    clf.save(tmp_path / "m")
    again = FewShotClassifier.load(tmp_path / "m")
    assert again.posterior == "laplace-cv"
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-10)


def test_temperature_scaling_keeps_the_predictions(st_folder):
    X, y = synthetic.make(per_class=8)
    plain = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0).fit(X, y)
    scaled = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, calibrate="temperature", cv_folds=2).fit(X, y)
    cal = scaled.train_info_["calibration"]
    assert cal["folds"] == 2 and cal["temperature"] > 0 and cal["oof_nll_after"] <= cal["oof_nll_before"] + 1e-9
    X_new, _ = synthetic.held_out()
    assert (scaled.predict(X_new) == plain.predict(X_new)).all()
    np.testing.assert_allclose(scaled.predict_proba(X_new),
                               apply_temperature(plain.predict_proba(X_new), cal["temperature"]), atol=1e-6)


def test_unsupported_combinations_are_clear_errors(st_folder):
    X, y = synthetic.make(per_class=4)
    with pytest.raises(FewtuneError, match="method 'majority' has no softmax head"):
        FewShotClassifier(backbone=str(st_folder), method="majority", posterior="laplace").fit(X, y)
    with pytest.raises(FewtuneError, match="posterior must be None or one of 'laplace', 'laplace-cv', 'ensemble'"):
        FewShotClassifier(backbone=str(st_folder), posterior="swag").fit(X, y)
    with pytest.raises(FewtuneError, match="multi-label"):
        FewShotClassifier(backbone=str(st_folder), posterior="laplace").fit(X, [[label] for label in y])


def test_strategies_register_in_the_same_registry_as_the_methods():
    from fewtune.bayes import CALIBRATIONS, POSTERIORS, SAMPLED_POSTERIORS
    from fewtune.bayes.strategy import CALIBRATION_STRATEGIES, POSTERIOR_STRATEGIES, register_posterior
    from fewtune.registry import Registry

    assert isinstance(POSTERIOR_STRATEGIES, Registry) and isinstance(CALIBRATION_STRATEGIES, Registry)
    assert POSTERIORS == ("laplace", "laplace-cv", "ensemble", "mc-dropout") == tuple(POSTERIOR_STRATEGIES)
    assert CALIBRATIONS == ("temperature", "auto") and SAMPLED_POSTERIORS == ("ensemble", "mc-dropout")
    assert all(POSTERIOR_STRATEGIES[name].name == name for name in POSTERIORS)
    with pytest.raises(RuntimeError, match="posterior 'laplace' registered twice"):
        register_posterior(type("Again", (POSTERIOR_STRATEGIES["laplace"],), {}))


def test_predict_abstains_below_a_probability(laplace_clf, tmp_path, capfd):
    import json

    from fewtune.cli import main

    laplace_clf.save(tmp_path / "m")
    texts = synthetic.held_out(("negative", "positive", "neutral"), 8)[0]
    import csv

    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in texts]])
    proba = laplace_clf.predict_proba(texts)
    cut = float(np.median(proba.max(1)))
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "in.csv"), "--format", "jsonl",
                 "--abstain-below", str(cut), "--quiet"]) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [r["label"] == "unknown" for r in rows] == list(proba.max(1) < cut)
    assert main(["predict", str(tmp_path / "m"), "--abstain-below", "1.5"]) == 2


def test_bald_is_zero_without_posterior_spread_and_positive_with_it():
    from fewtune.bayes.acquisition import bald

    mean = np.array([[2.0, 0.0, -1.0]])
    assert abs(bald(mean, np.zeros((1, 3, 3)))[0]) < 1e-6  # no disagreement between samples
    assert bald(mean, 4.0 * np.eye(3)[None])[0] > 0.1


def test_suggest_ranks_the_pool_and_the_cli_lists_it(laplace_clf, tmp_path, capfd):
    import csv
    import json

    from fewtune.bayes.acquisition import acquisition_scores, suggest
    from fewtune.cli import main

    pool = synthetic.held_out(("negative", "positive", "neutral"), 8)[0] + ["zzz qqq", "the the the"]
    for strategy in ("bald", "entropy", "margin"):
        scores = acquisition_scores(laplace_clf, pool, strategy)
        picks = suggest(laplace_clf, pool, 5, strategy)
        assert [i for i, _ in picks] == list(np.argsort(-scores, kind="stable")[:5])
        assert all(s >= 0 for _, s in picks)
    laplace_clf.save(tmp_path / "m")
    with open(tmp_path / "pool.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in pool]])
    assert main(["suggest", str(tmp_path / "m"), "--pool", str(tmp_path / "pool.csv"), "-n", "3", "--json",
                 "--quiet"]) == 0
    out = json.loads(capfd.readouterr().out)
    assert [r["text"] for r in out["suggestions"]] == [pool[i] for i, _ in suggest(laplace_clf, pool, 3, "bald")]
    assert out["suggestions"][0]["row"] == f"line {pool.index(out['suggestions'][0]['text']) + 2}"
    plain = FewShotClassifier(backbone=laplace_clf.backbone, params=FAST).fit(*synthetic.make(per_class=4))
    with pytest.raises(FewtuneError, match="bald needs a posterior"):
        suggest(plain, pool, 3, "bald")


def test_auto_calibration_scores_every_candidate_out_of_fold_and_applies_the_best(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, calibrate="auto", cv_folds=2).fit(X, y)
    cal = clf.train_info_["calibration"]
    assert set(cal["oof_nll"]) == {"none", "temperature", "laplace-cv"} and cal["folds"] == 2
    assert cal["chosen"] == min(cal["oof_nll"], key=cal["oof_nll"].get)
    assert (clf.posterior_ is not None) == (cal["chosen"] == "laplace-cv")
    assert (clf.temperature_ != 1.0) == (cal["chosen"] == "temperature")
    X_new, _ = synthetic.held_out()
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(X_new), clf.predict_proba(X_new),
                               atol=1e-10)


@pytest.mark.parametrize("case", ["overconfident", "laplace-best", "already-right"])
def test_auto_calibration_picks_what_the_held_out_shots_favour(st_folder, monkeypatch, case):
    """The choice itself, on out-of-fold predictions made to favour each candidate."""
    X, y = synthetic.make(per_class=8)
    truth = np.array([0 if label == "negative" else 1 for label in y])  # classes_ sorted: negative, positive
    right = np.where(np.arange(len(y)) % 8 < 2, 1 - truth, truth)  # 75 % right, in both folds
    confident = np.eye(2)[right] * 0.98 + 0.01  # 98 % sure, 75 % right: a temperature above 1 helps
    honest = np.where(np.eye(2)[right] == 1, 0.75, 0.25)  # says what it knows
    oof = {"overconfident": confident, "laplace-best": confident, "already-right": honest}[case]
    knows = np.where(np.eye(2)[truth] == 1, 0.9, 0.1)  # right on every shot
    laplace = knows if case == "laplace-best" else confident
    folds = [(np.arange(len(y))[i::2], np.arange(len(y))[1 - i::2]) for i in (0, 1)]
    monkeypatch.setattr("fewtune.bayes.out_of_fold.out_of_fold", lambda *a, **k: (oof, laplace, folds))
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0, calibrate="auto").fit(X, y)
    expected = {"overconfident": "temperature", "laplace-best": "laplace-cv", "already-right": "none"}[case]
    assert clf.train_info_["calibration"]["chosen"] == expected


def test_auto_calibration_leaves_the_posterior_to_itself(st_folder):
    X, y = synthetic.make(per_class=4)
    with pytest.raises(FewtuneError, match="leave posterior unset"):
        FewShotClassifier(backbone=str(st_folder), posterior="laplace", calibrate="auto").fit(X, y)
    with pytest.raises(FewtuneError, match="calibrate must be None or one of 'temperature', 'auto'"):
        FewShotClassifier(backbone=str(st_folder), calibrate="platt").fit(X, y)
