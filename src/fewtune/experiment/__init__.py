"""One door to a training run: a typed `RunSpec`, `prepare(spec)` for its data, `run(spec)` to train,
evaluate and save. `fewtune train`, `fewtune check-data`, the benchmark worker and the server's teach
page all go through it, so a run means the same thing wherever it starts."""

from .prepare import Prepared, prepare
from .run import Run, build_classifier, evaluation, held_out_report, inputs, run, targets
from .spec import RunSpec

__all__ = ["Prepared", "Run", "RunSpec", "build_classifier", "evaluation", "held_out_report", "inputs", "prepare",
           "run", "targets"]
