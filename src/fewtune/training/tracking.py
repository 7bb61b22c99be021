"""Training you can watch: every optimiser step's loss is recorded (training.optim.update reports it
here), kept as a loss curve in `train_info_["loss_curve"]`, and sent to Accelerate's experiment
trackers (TensorBoard, MLflow, trackio: `fewtune train --log-with`) with the held-out scores.

Recording is scoped: `record_losses()` collects the steps taken inside it, so a classifier keeps the
curve of the model it returns, not of its cross-validation folds or ensemble members.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from ..errors import FewtuneError

TRACKERS = ("tensorboard", "mlflow", "trackio")
MAX_POINTS = 200  # points of a curve kept in train_info_ (every step up to this, evenly spaced beyond)

_RECORDING: ContextVar[list[float] | None] = ContextVar("fewtune_losses", default=None)


@contextlib.contextmanager
def record_losses() -> Iterator[list[float]]:
    """The loss of every optimiser step taken inside the block, in order."""
    losses: list[float] = []
    token = _RECORDING.set(losses)
    try:
        yield losses
    finally:
        _RECORDING.reset(token)


def report_loss(loss: float) -> None:
    losses = _RECORDING.get()
    if losses is not None:
        losses.append(loss)


def curve(losses: list[float], max_points: int = MAX_POINTS) -> list[list[float]]:
    """[[step, loss], ...] (steps from 1); beyond max_points, evenly spaced steps and always the last."""
    if not losses:
        return []
    stride = max(1, -(-len(losses) // max_points))
    steps = list(range(0, len(losses), stride))
    if steps[-1] != len(losses) - 1:
        steps.append(len(losses) - 1)
    return [[i + 1, round(float(losses[i]), 6)] for i in steps]


def check_trackers(names: list[str]) -> list[str]:
    """The tracker names, each known and its package installed; a clear error before any training."""
    import importlib.util

    packages = {"tensorboard": "tensorboard", "mlflow": "mlflow", "trackio": "trackio"}
    for name in names:
        if name not in TRACKERS:
            raise FewtuneError(f"--log-with {name}: unknown tracker; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(packages[name]) is None:
            raise FewtuneError(f"--log-with {name} needs the {packages[name]} package: pip install {packages[name]}")
    return names


def log_run(names: list[str], logging_dir: str | Path, run_name: str, *, loss_curve: list[list[float]],
            metrics: dict[str, float] | None = None, config: dict | None = None) -> None:
    """Send a finished run to Accelerate's trackers: its settings, train/loss per step, eval/* scores."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    for name in check_trackers(names):
        cls = LOGGER_TYPE_TO_CLASS[name]
        tracker = (cls(experiment_name=run_name, logging_dir=str(logging_dir)) if name == "mlflow"
                   else cls(run_name) if name == "trackio" else cls(run_name, str(logging_dir)))
        tracker.start()
        if config:
            tracker.store_init_configuration({k: v for k, v in config.items()
                                              if isinstance(v, (bool, str, int, float))})
        for step, loss in loss_curve:
            tracker.log({"train/loss": loss}, step=int(step))
        if metrics:
            last = int(loss_curve[-1][0]) if loss_curve else 0
            tracker.log({f"eval/{k}": float(v) for k, v in metrics.items()}, step=last)
        tracker.finish()
