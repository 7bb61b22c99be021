"""Small numeric helpers shared across the package: one softmax, one mean ± std.

They live here, below every other module (numpy only), so that any layer can use them without an
import pointing back up.
"""

from __future__ import annotations

import math

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so that large logits do not overflow."""
    z = np.asarray(logits) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value); Nones and NaNs are left out.

    (nan, nan) when nothing is left.
    """
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not kept:
        return float("nan"), float("nan")
    return float(np.mean(kept)), (float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0)
