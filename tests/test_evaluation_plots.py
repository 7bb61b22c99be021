"""fewtune.evaluation_plots on synthetic probabilities: the files are real PNGs, their titles carry the ECE
and bins of metrics.calibration_report, a multi-label report is drawn over its label decisions, and
nothing is written when a figure cannot be drawn."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fewtune.evaluation_plots import CONFUSION, LOSS_CURVE, RELIABILITY, label_decision_calibration, write_figures
from fewtune.labels import THRESHOLD
from fewtune.metrics import calibration_report, classification_report, multilabel_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["business", "entertainment", "politics", "sport", "a class name far too long to fit on an axis"]

# A matplotlib warning (singular limits, a label that does not fit) means a figure drawn badly.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


def _single_label(n: int = 200, seed: int = 0, n_bins: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(len(CLASSES), 0.4), size=n)
    predicted = proba.argmax(1)
    right = rng.uniform(size=n) < 0.7
    truth = [CLASSES[p] if ok else CLASSES[rng.integers(len(CLASSES))] for p, ok in zip(predicted, right)]
    report = classification_report(truth, [CLASSES[p] for p in predicted], CLASSES)
    return {**report, "calibration": calibration_report(truth, proba, CLASSES, n_bins=n_bins)}


def _title(path) -> str:
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200
        return image.text["Title"]


def test_a_single_label_report_gives_both_pngs_with_the_ece_of_metrics_in_the_title(tmp_path):
    report = _single_label()
    written = write_figures(report, tmp_path / "figs")
    figs = tmp_path / "figs"
    assert written == {"reliability": figs / RELIABILITY, "confusion_matrix": figs / CONFUSION}
    for path in written.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    ece = report["calibration"]["ece"]
    assert _title(written["reliability"]) == f"Reliability: ECE {ece:.4f} (10 bins, 200 texts)"
    assert _title(written["confusion_matrix"]) == f"Confusion matrix: 200 texts, accuracy {report['accuracy']:.4f}"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [CONFUSION, RELIABILITY]  # no temporaries


def test_the_diagram_says_how_many_bins_the_ece_was_computed_over(tmp_path):
    report = _single_label(n_bins=5)
    write_figures(report, tmp_path)
    assert "(5 bins, 200 texts)" in _title(tmp_path / RELIABILITY)


def test_figures_of_the_same_names_are_replaced(tmp_path):
    write_figures(_single_label(seed=0), tmp_path)
    report = _single_label(seed=1)
    write_figures(report, tmp_path)
    assert f"ECE {report['calibration']['ece']:.4f}" in _title(tmp_path / RELIABILITY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFUSION, RELIABILITY]


def test_label_decisions_are_the_models_yes_no_answers_at_its_threshold():
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    proba = np.array([[0.92, 0.15], [0.5, 0.63], [0.33, 0.97], [0.45, 0.04]])
    right = ((proba >= THRESHOLD) == truth).ravel()  # 0.5 is a yes, as predict says: wrong for text 2
    assert right.tolist() == [True, True, False, True, False, True, True, True]
    cal = label_decision_calibration(truth, proba)
    # Confidence max(p, 1 - p) in calibration_report's bins (low, high]: 0.5 alone (wrong), 0.55 alone
    # (right), 0.63 and 0.67 (one right), 0.85 (right), 0.92, 0.96 and 0.97 (all right).
    assert cal["ece"] == pytest.approx((0.5 + 0.45 + 2 * 0.15 + 0.15 + 3 * 0.05) / 8)
    assert [b["n"] for b in cal["reliability"]] == [1, 1, 2, 1, 3]


def test_a_multi_label_report_gives_the_reliability_of_its_label_decisions_and_no_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    truth = (rng.uniform(size=(60, 3)) < 0.4).astype(int)
    proba = np.clip(truth * 0.6 + rng.uniform(0, 0.4, size=truth.shape), 0, 1)
    report = {**multilabel_report(truth, (proba >= THRESHOLD).astype(int), ["a", "b", "c"]),
              "label_calibration": label_decision_calibration(truth, proba)}
    written = write_figures(report, tmp_path)
    assert written == {"reliability": tmp_path / RELIABILITY}
    ece = report["label_calibration"]["ece"]
    assert _title(tmp_path / RELIABILITY) == f"Reliability: ECE {ece:.4f} (10 bins, 180 label decisions)"
    assert [p.name for p in tmp_path.iterdir()] == [RELIABILITY]


def test_nothing_is_written_when_a_figure_cannot_be_drawn(tmp_path):
    multi = multilabel_report(np.array([[1, 0]]), np.array([[1, 0]]), ["a", "b"])
    with pytest.raises(ValueError, match="label_calibration"):
        write_figures(multi, tmp_path / "figs")
    broken = {**_single_label(), "confusion_matrix": "not a matrix"}  # the second figure fails
    with pytest.raises(Exception):
        write_figures(broken, tmp_path / "figs")
    assert not (tmp_path / "figs").exists()  # drawn first, written after: not even the first figure


def test_a_loss_curve_is_drawn_when_given_every_step_of_it(tmp_path):
    points = [[i + 1, 2.0 / (i + 1)] for i in range(500)]  # more steps than a capped curve kept
    written = write_figures(_single_label(), tmp_path, loss_curve=points)
    assert written["loss_curve"] == tmp_path / LOSS_CURVE
    assert _title(tmp_path / LOSS_CURVE) == "Training loss: 2 → 0.004 over 500 steps"
    assert "loss_curve" not in write_figures(_single_label(), tmp_path / "one", loss_curve=[[1, 0.7]])  # no line
