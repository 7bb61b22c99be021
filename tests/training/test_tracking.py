"""Training you can watch: the loss of every step in train_info_, and --log-with sending it to TensorBoard."""

from __future__ import annotations

import json

import pytest

from fewtune import FewShotClassifier
from fewtune.training.tracking import curve
from tests.helpers import synthetic
from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv

FAST = ["-p", "steps=6", "-p", "batch_size=8"]


def test_a_curve_keeps_every_step_up_to_its_limit_then_evenly_spaced_ones_and_the_last():
    assert curve([3.0, 2.0, 1.0]) == [[1, 3.0], [2, 2.0], [3, 1.0]]
    long = curve([float(i) for i in range(1000)], max_points=100)
    assert len(long) == 101 and long[0] == [1, 0.0] and long[-1] == [1000, 999.0]
    assert [step for step, _ in long] == sorted({step for step, _ in long})
    assert curve([]) == []


def test_a_classifier_keeps_the_loss_curve_of_the_model_it_returns(st_folder):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params={"steps": 6, "batch_size": 8}, calibrate="temperature",
                            cv_folds=2).fit(X, y)
    points = clf.train_info_["loss_curve"]
    assert [step for step, _ in points] == list(range(1, 7))  # the 6 steps of the final model, not the folds'
    assert all(loss >= 0 for _, loss in points)


def test_log_with_tensorboard_writes_the_loss_curve_and_the_scores(st_folder, tmp_path, capfd):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [[t, label] for t, label in zip(*synthetic.make(per_class=8))]
    data = write_csv(tmp_path / "shots.csv", rows)
    test = write_csv(tmp_path / "test.csv", list(zip(*synthetic.held_out(per_class=8))))
    r = run_cli(capfd, "train", "--data", data, "--test", test, "--backbone", st_folder, *FAST, "--log-with",
                "tensorboard", "--logging-dir", tmp_path / "runs", "--json", "--quiet")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events and result["logged"]["trackers"] == ["tensorboard"]
    scalars = EventAccumulator(str(events[0].parent)).Reload()
    losses = scalars.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, 7))
    assert scalars.Scalars("eval/accuracy")[0].value == pytest.approx(result["evaluation"]["accuracy"])


def test_an_unknown_or_missing_tracker_is_one_line_before_any_training(st_folder, tmp_path, capfd):
    data = write_csv(tmp_path / "shots.csv", [[t, label] for t, label in zip(*synthetic.make(per_class=8))])
    r = run_cli(capfd, "train", "--data", data, "--backbone", st_folder, "--log-with", "wandb")
    assert r.code == 2 and "unknown tracker" in r.err and "training" not in r.err
