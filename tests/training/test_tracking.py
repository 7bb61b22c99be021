"""Training you can watch: the loss of every step in train_info_ (the whole curve), sent to Accelerate's
trackers as each step is taken (a tracker object from Python; TensorBoard and wandb offline from the CLI),
with the held-out scores in the same run."""

from __future__ import annotations

import importlib.util
import inspect
import json

import pytest

from fewtune import FewShotClassifier
from fewtune.errors import FewtuneError
from fewtune.training.tracking import curve, record_losses, report_loss
from tests.helpers import synthetic
from tests.helpers.cli import run_cli
from tests.helpers.fast import FAST_SETFIT, as_options
from tests.helpers.files import write_csv

FAST = as_options({**FAST_SETFIT, "steps": 6})


def test_a_curve_keeps_every_step():
    assert curve([3.0, 2.0, 1.0]) == [[1, 3.0], [2, 2.0], [3, 1.0]]
    long = curve([float(i) for i in range(1000)])
    assert [step for step, _ in long] == list(range(1, 1001)) and long[-1] == [1000, 999.0]
    assert curve([]) == []


class FakeRun:
    def __init__(self):
        self.logged = []

    def log(self, values, step):
        self.logged.append((step, values))


def test_a_recording_sends_each_step_to_its_run_and_a_nested_one_keeps_its_steps_to_itself():
    run = FakeRun()
    with record_losses(run) as losses:
        report_loss(3.0)
        with record_losses() as fold:  # a fold model's training: neither the curve nor the run
            report_loss(9.0)
        assert run.logged == [(1, {"train/loss": 3.0})]
        report_loss(2.0)
    report_loss(1.0)  # outside any recording: nowhere
    assert losses == [3.0, 2.0] and fold == [9.0]
    assert run.logged == [(1, {"train/loss": 3.0}), (2, {"train/loss": 2.0})]


def _tracker_class():
    from accelerate.tracking import GeneralTracker

    class Tracker(GeneralTracker):
        """Accelerate's tracker interface, remembering what it got and whether an optimiser step was under way."""
        name, requires_logging_directory = "fake", False

        def __init__(self):
            super().__init__()
            self.events = []

        @property
        def tracker(self):
            return self

        def start(self):
            self.events.append(("start",))

        def store_init_configuration(self, values):
            self.events.append(("config", values))

        def log(self, values, step=None, **kwargs):
            in_step = any(frame.function == "update" and frame.filename.endswith("optim.py")
                          for frame in inspect.stack())
            self.events.append(("log", step, values, in_step))

        def finish(self):
            self.events.append(("finish",))

    return Tracker


def test_a_classifier_logs_every_step_to_its_trackers_as_it_is_taken(st_folder):
    tracker = _tracker_class()()
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params={"steps": 6, "batch_size": 8}, calibrate="temperature",
                            cv_folds=2, log_with=[tracker]).fit(X, y)
    kinds = [event[0] for event in tracker.events]
    assert kinds[:2] == ["start", "config"] and kinds[-1] == "finish" and kinds.count("start") == 1
    logs = [event for event in tracker.events if event[0] == "log"]
    # One run: the returned model's steps (not the calibration folds'), each logged inside its optimiser step.
    assert [(step, values["train/loss"]) for _, step, values, _ in logs] == \
        [(step, pytest.approx(loss, abs=1e-6)) for step, loss in clf.train_info_["loss_curve"]]
    assert len(logs) >= 6 and all(in_step for *_, in_step in logs)


@pytest.mark.parametrize("method", ["finetune", "setfit"])
def test_every_encoder_loop_logs_live(st_folder, method):
    tracker = _tracker_class()()
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), method=method, params={"epochs": 1, "batch_size": 8},
                            log_with=[tracker]).fit(X, y)
    steps = [event[1] for event in tracker.events if event[0] == "log"]
    assert steps == [step for step, _ in clf.train_info_["loss_curve"]] and steps


def test_a_generator_logs_every_step_live_and_its_held_out_perplexities_in_the_same_run(chat_llama_folder):
    from fewtune.generation.generator import FewShotGenerator

    tracker = _tracker_class()()
    chats = [[{"role": "user", "content": "hello how are you"}, {"role": "assistant", "content": "i am fine"}],
             [{"role": "user", "content": "what did you do"}, {"role": "assistant", "content": "i went out"}]]
    gen = FewShotGenerator(str(chat_llama_folder), params={"epochs": 3, "batch_size": 1}, show_progress=False,
                           log_with=[tracker]).fit(chats, eval_examples=chats)
    logs = [event for event in tracker.events if event[0] == "log"]
    losses = [(step, values["train/loss"]) for _, step, values, _ in logs if "train/loss" in values]
    assert losses == [(step, pytest.approx(loss, abs=1e-6)) for step, loss in gen.train_info_["loss_curve"]]
    assert len(losses) == 6 and all(in_step for *_, in_step in logs[:-1])
    _, step, scores, _ = logs[-1]
    assert step == 6 and scores == {"eval/perplexity_before": pytest.approx(gen.evaluation_["perplexity_before"]),
                                    "eval/perplexity_after": pytest.approx(gen.evaluation_["perplexity_after"])}
    assert [event[0] for event in tracker.events].count("finish") == 1


def test_the_saved_curve_is_not_capped(st_folder):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params={"steps": 230, "batch_size": 2}).fit(X, y)
    steps = [step for step, _ in clf.train_info_["loss_curve"]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 230


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


def test_log_with_wandb_offline_writes_every_step_and_the_scores_to_one_run(st_folder, tmp_path, capfd,
                                                                              monkeypatch):
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed (it comes with pip install 'fewtune[track]')")
    from tests.helpers.wandb_log import history

    monkeypatch.setenv("WANDB_MODE", "offline")  # no account, no network: the run is written to disk
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing in the user's home
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    rows = [[t, label] for t, label in zip(*synthetic.make(per_class=8))]
    data = write_csv(tmp_path / "shots.csv", rows)
    test = write_csv(tmp_path / "test.csv", list(zip(*synthetic.held_out(per_class=8))))
    r = run_cli(capfd, "train", "--data", data, "--test", test, "--backbone", st_folder, *FAST, "--log-with",
                "wandb", "--logging-dir", tmp_path / "runs", "--json", "--quiet", "-o", tmp_path / "model")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    files = list((tmp_path / "runs" / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 1 and result["logged"]["trackers"] == ["wandb"]
    logged = history(files[0])
    losses = [(row["_step"], row["train/loss"]) for row in logged if "train/loss" in row]
    saved = json.loads((tmp_path / "model" / "fewtune.json").read_text())["training"]["loss_curve"]
    assert [step for step, _ in losses] == [step for step, _ in saved] and len(saved) >= 6
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in saved], abs=1e-6)
    scores = [row for row in logged if "eval/accuracy" in row]
    assert scores[0]["eval/accuracy"] == pytest.approx(result["evaluation"]["accuracy"])


def test_an_unknown_or_missing_tracker_is_one_line_before_any_training(st_folder, tmp_path, capfd, monkeypatch):
    data = write_csv(tmp_path / "shots.csv", [[t, label] for t, label in zip(*synthetic.make(per_class=8))])
    r = run_cli(capfd, "train", "--data", data, "--backbone", st_folder, "--log-with", "neptune")
    assert r.code == 2 and "unknown tracker" in r.err and "training" not in r.err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    r = run_cli(capfd, "train", "--data", data, "--backbone", st_folder, "--log-with", "wandb")
    assert r.code == 2 and len(r.err_lines) == 1 and "pip install 'fewtune[track]'" in r.err
    with pytest.raises(FewtuneError, match="log_with wandb needs the wandb package"):
        FewShotClassifier(backbone=str(st_folder), log_with=["wandb"]).fit(*synthetic.make(per_class=8))
