"""One door to a training run: a typed `RunSpec`, `prepare(spec)` for its data, `run(spec)` to train,
evaluate and save. `fewtune train`, `fewtune check-data`, the benchmark worker and the server's teach
page all go through it, so a run means the same thing wherever it starts.

spec.py (RunSpec) · prepare.py (the data: read, draw, hold out) · scores.py (held-out scores: torch-free,
so evaluating an ONNX export or a static student never imports torch) · train.py (build the classifier,
train, evaluate, save: imports torch, so `run`, `Run` and `build_classifier` are imported on first use,
and `fewtune --help`, which reads RunSpec, stays quick).
"""

from .prepare import Prepared, prepare
from .scores import evaluation, held_out_report, inputs, targets
from .spec import RunSpec

__all__ = ["Prepared", "Run", "RunSpec", "build_classifier", "evaluation", "held_out_report", "inputs", "prepare",
           "run", "targets"]

_TRAINING = ("Run", "build_classifier", "run")


def __getattr__(name: str):
    if name in _TRAINING:
        from . import train  # why: torch (the classifier, the methods); the CLI imports RunSpec from this package

        globals().update({n: getattr(train, n) for n in _TRAINING})
        return globals()[name]
    raise AttributeError(f"module 'fewtune.experiment' has no attribute {name!r}")
