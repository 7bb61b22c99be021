"""Calibration metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import log_loss

from fewtune.metrics import calibration_report


def test_ece_nll_and_brier_match_hand_computed_values():
    classes = ["a", "b"]
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    truth = ["a", "b", "b", "a"]
    r = calibration_report(truth, proba, classes, n_bins=10)
    # Bins: 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (right) -> each alone in its bin.
    expected_ece = (abs(0.9 - 1) + abs(0.8 - 0) + abs(0.7 - 1) + abs(0.6 - 1)) / 4
    assert r["ece"] == pytest.approx(expected_ece)
    assert r["nll"] == pytest.approx(log_loss([0, 1, 1, 0], proba))
    assert r["brier"] == pytest.approx(np.mean([0.02, 1.28, 0.18, 0.32]))
    assert sum(b["n"] for b in r["reliability"]) == 4


def test_perfectly_calibrated_and_confidently_wrong_extremes():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, 20000)
    hit = rng.uniform(size=p.size) < p  # right with exactly the stated probability
    proba = np.stack([p, 1 - p], 1)
    truth = np.where(hit, "a", "b")
    assert calibration_report(truth, proba, ["a", "b"])["ece"] < 0.02
    wrong = calibration_report(["b", "b"], np.array([[1.0, 0.0], [1.0, 0.0]]), ["a", "b"])
    assert wrong["ece"] == pytest.approx(1.0) and wrong["brier"] == pytest.approx(2.0)
    assert np.isfinite(wrong["nll"]) and wrong["nll"] > 20


def test_an_unknown_true_label_counts_as_wrong_with_probability_zero():
    r = calibration_report(["c"], np.array([[0.5, 0.5]]), ["a", "b"])
    assert r["nll"] > 20 and r["brier"] == pytest.approx(0.5)


def test_ece_nll_and_brier_equal_the_reference_implementations_on_random_inputs():
    """ECE as torchmetrics computes it (top-label, 10 equal-width bins); NLL and Brier by their definitions."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        logits = rng.normal(size=(400, k)) * 2
        proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        truth = rng.integers(0, k, size=400)
        classes = [f"c{i}" for i in range(k)]
        report = calibration_report([classes[t] for t in truth], proba, classes)
        ece = multiclass_calibration_error(torch.tensor(proba), torch.tensor(truth), num_classes=k, n_bins=10, norm="l1")
        assert report["ece"] == pytest.approx(float(ece), abs=1e-6)
        assert report["nll"] == pytest.approx(-np.log(proba[np.arange(400), truth]).mean(), rel=1e-9)
        assert report["brier"] == pytest.approx(((proba - np.eye(k)[truth]) ** 2).sum(1).mean(), rel=1e-9)


def test_a_label_the_model_does_not_know_counts_as_probability_zero():
    proba = np.array([[0.9, 0.1], [0.3, 0.7]])
    report = calibration_report(["a", "zzz"], proba, ["a", "b"])
    assert report["nll"] == pytest.approx((-np.log(0.9) - np.log(1e-12)) / 2)
    assert report["brier"] == pytest.approx(((0.1 ** 2 + 0.1 ** 2) + (0.3 ** 2 + 0.7 ** 2)) / 2)


def test_a_calibrated_models_ece_on_500_texts_is_about_003_not_zero():
    # The README's "on 500 test texts a perfectly calibrated model shows an ECE of about 0.03": labels drawn
    # from the probabilities themselves; the plug-in ECE falls toward 0 only as the texts grow.
    rng = np.random.default_rng(0)
    top = rng.uniform(0.5, 1.0, 500)
    proba = np.stack([top, 1 - top], 1)
    on_500 = [calibration_report(list((rng.random(500) > top).astype(int)), proba, [0, 1])["ece"] for _ in range(50)]
    assert 0.02 < np.mean(on_500) < 0.04
    many = np.resize(top, 100_000)
    y = (rng.random(len(many)) > many).astype(int)
    assert calibration_report(list(y), np.stack([many, 1 - many], 1), [0, 1])["ece"] < 0.01
