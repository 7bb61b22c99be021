"""Training you can watch: every optimiser step's loss is recorded (training.optim.update reports it
here), kept whole as a loss curve in `train_info_["loss_curve"]`, and, when trackers are asked for
(`fewtune train --log-with`, `FewShotClassifier(log_with=...)`), sent to Accelerate's experiment
trackers (TensorBoard, wandb, MLflow, trackio) as it happens, the held-out scores after it in the same run.

Recording is scoped: `record_losses()` collects the steps taken inside it, so a classifier keeps the
curve of the model it returns, not of its cross-validation folds or ensemble members (their fits open
recordings of their own, which log nowhere).
"""

from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import FewtuneError

# The tracker and the package it needs; wandb and tensorboard come with the `track` extra.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}
TRACKERS = tuple(PACKAGES)
EXTRA = {"tensorboard": "fewtune[track]", "wandb": "fewtune[track]"}
DEFAULT_DIR = "runs"
PROJECT = "fewtune"  # wandb's project: every run of fewtune side by side, each under its own run name


@dataclass
class _Recording:
    losses: list[float]
    run: TrackedRun | None


_RECORDING: ContextVar[_Recording | None] = ContextVar("fewtune_losses", default=None)
_RUN: ContextVar["TrackedRun | None"] = ContextVar("fewtune_tracked_run", default=None)


@contextlib.contextmanager
def record_losses(run: TrackedRun | None = None) -> Iterator[list[float]]:
    """The loss of every optimiser step taken inside the block, in order; with `run`, each step is also
    logged to it as it is taken (train/loss at step 1, 2, ...). A recording opened inside another one
    (folds, early-stopping trials) keeps its steps to itself: they are not those of the returned model."""
    losses: list[float] = []
    token = _RECORDING.set(_Recording(losses, run))
    try:
        yield losses
    finally:
        _RECORDING.reset(token)


def report_loss(loss: float) -> None:
    recording = _RECORDING.get()
    if recording is not None:
        recording.losses.append(loss)
        if recording.run is not None:
            recording.run.log({"train/loss": loss}, step=len(recording.losses))


def curve(losses: list[float]) -> list[list[float]]:
    """[[step, loss], ...] for every step (from 1): the whole curve is kept, a few kB per thousand steps."""
    return [[i + 1, round(float(loss), 6)] for i, loss in enumerate(losses)]


def check_trackers(names: list, option: str = "--log-with") -> list:
    """The trackers, each known and its package installed: one line before any training. Tracker objects
    (Accelerate GeneralTracker instances, from Python) pass as they are."""
    import importlib.util

    for name in names:
        if not isinstance(name, str):
            continue
        if name not in TRACKERS:
            raise FewtuneError(f"{option} {name}: unknown tracker; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            install = EXTRA.get(name, PACKAGES[name])
            raise FewtuneError(f"{option} {name} needs the {PACKAGES[name]} package: pip install '{install}'")
    return names


def make_trackers(log_with: list, logging_dir: str | Path | None, run_name: str) -> list:
    """Accelerate's tracker objects for `log_with`, unstarted, each writing under logging_dir (runs/ by
    default): the one construction that pretrain's Accelerator and the classifier's runs share. Names
    are looked up in accelerate.tracking (a class registered there with register_tracker_class too)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker

    folder = str(logging_dir or DEFAULT_DIR)
    trackers = []
    for item in log_with:
        if isinstance(item, GeneralTracker):
            trackers.append(item)
            continue
        cls = LOGGER_TYPE_TO_CLASS[item]
        if item == "mlflow":
            trackers.append(cls(experiment_name=run_name, logging_dir=folder))
        elif item == "wandb":  # its offline files land in folder/wandb/; WandBTracker's run_name is the project
            trackers.append(cls(PROJECT, name=run_name, dir=folder))
        elif cls.requires_logging_directory:
            trackers.append(cls(run_name, folder))
        else:
            trackers.append(cls(run_name))
    return trackers


def run_name(*parts: Any) -> str:
    """A run's name: what trained on what, and when (trackers keep runs side by side by it)."""
    return "-".join([*(str(p) for p in parts if p not in (None, "")), time.strftime("%Y%m%d-%H%M%S")])


class TrackedRun:
    """One training's run in Accelerate's trackers, open while the model trains: the loss of every step
    as it is taken (report_loss), then eval/* scores at the last step."""

    def __init__(self, trackers: list, name: str, logging_dir: str | Path | None):
        self.trackers, self.name, self.logging_dir = trackers, name, str(logging_dir or DEFAULT_DIR)
        self.step = 0  # the last step logged: where the held-out scores go

    def start(self, config: dict | None = None) -> None:
        scalars = {k: v for k, v in (config or {}).items() if isinstance(v, (bool, str, int, float))}
        for tracker in self.trackers:
            tracker.start()
            if scalars:
                tracker.store_init_configuration(scalars)

    def log(self, values: dict[str, float], step: int) -> None:
        self.step = max(self.step, step)
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def log_scores(self, scores: dict | None) -> None:
        """Held-out scores (the numbers among them, not the count) as eval/NAME at the last step logged."""
        metrics = {f"eval/{k}": float(v) for k, v in (scores or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}
        if metrics:
            self.log(metrics, step=self.step)

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()

    def describe(self, names: list) -> dict[str, Any]:
        """Where the run went, for --json: the trackers, the folder, the run's name."""
        return {"trackers": [n if isinstance(n, str) else type(n).__name__ for n in names],
                "logging_dir": self.logging_dir, "run": self.name}


@contextlib.contextmanager
def tracked_run(log_with: list | None, logging_dir: str | Path | None, name: str,
                config: dict | None = None) -> Iterator[TrackedRun | None]:
    """The run that a training asking for `log_with` logs to: the one already open in this context (a
    caller that logs held-out scores after training opens it first, as `fewtune train` does), else a new
    one, finished when the block ends. None when no tracker is asked for."""
    current = _RUN.get()
    if not log_with or current is not None:
        yield current if log_with else None
        return
    run = TrackedRun(make_trackers(check_trackers(list(log_with), "log_with"), logging_dir, name), name, logging_dir)
    run.start(config)
    token = _RUN.set(run)
    try:
        yield run
    finally:
        _RUN.reset(token)
        run.finish()
