"""Aggregates over seeds and paired tests between methods run on the same splits.

With 3-10 seeds the tests disagree at the margins, so a report shows three: the paired t-test
(assumes normal differences), the Wilcoxon signed-rank test (ranks only; with 5 seeds its
smallest possible two-sided p is 0.0625) and the exact sign-flip permutation test (no assumption
beyond exchangeable signs under the null).
"""

from __future__ import annotations

import math
import statistics


def format_mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """"61.2 ± 3.4" (sample std) in percentage points by default; one value is shown alone.

    Exact (statistics.mean and stdev), unlike numeric.mean_std's float sums: published tables keep their
    last digit where a mean sits on a rounding tie (61.75 → "61.8").
    """
    values = [v * scale for v in values]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def sign_flip_p(diffs: list[float]) -> float:
    """Two-sided paired permutation test of the per-seed differences (scipy's permutation_test, paired
    samples = sign flips): exact over all 2^n sign assignments up to 16 seeds, 20,000 seeded draws above."""
    import numpy as np
    from scipy import stats

    result = stats.permutation_test((np.asarray(diffs, dtype=float),), lambda x, axis: np.sum(x, axis=axis),
                                    permutation_type="samples", alternative="two-sided", n_resamples=20000,
                                    rng=np.random.default_rng(0))
    return float(result.pvalue)


def paired_tests(a: list[float], b: list[float]) -> dict:
    """A − B per seed: mean difference, wins, and the p-values of three two-sided paired tests."""
    from scipy import stats

    diffs = [x - y for x, y in zip(a, b)]
    out = {"n": len(diffs), "mean_diff": statistics.mean(diffs) if diffs else math.nan,
           "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
           "t_p": math.nan, "wilcoxon_p": math.nan, "sign_flip_p": math.nan}
    if len(diffs) < 2:
        return out
    out["sign_flip_p"] = sign_flip_p(diffs)
    if all(abs(d) < 1e-12 for d in diffs):
        out["t_p"] = out["wilcoxon_p"] = 1.0  # identical results: no evidence of a difference
        return out
    if statistics.stdev(diffs) > 1e-9:  # the same difference on every seed leaves t undefined
        out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    out["wilcoxon_p"] = float(stats.wilcoxon(diffs, zero_method="zsplit").pvalue)
    return out


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"
