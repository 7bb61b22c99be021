"""Giving back the memory of a model that is done with while the next one trains."""

from __future__ import annotations

import gc


def collect_finished_model() -> None:
    """Free the models dropped since the last call: a trained body's weights stay in reference cycles that only
    a full collection frees, and the collector runs one rarely, so each fold model (head_c=0's fold bodies, the
    fold models of a calibration, of --select cv and of auto) lived on while the next trained
    (setfit's default at K = 8, 128 tokens: peak 2.34 -> 1.95 GB on mr, 3.46 -> 2.63 GB on bbc;
    benchmarks/README.md "head_c_memory")."""
    gc.collect()
