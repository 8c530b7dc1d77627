"""Paired significance tests and bootstrap confidence intervals over per-user metric values."""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED


def bootstrap_ci(values: np.ndarray, *, groups: np.ndarray | None = None, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (float (n,)), penchant's one bootstrap.

    Without ``groups`` each value is resampled alone (per-user metric values: users are resampled).
    With ``groups`` (labels (n,), e.g. the user of each pair) whole groups are resampled and the mean
    is over all values of the drawn groups, so a user's many pairs move together.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if groups is None:
        sums, counts = values, None
    else:
        labels, inverse = np.unique(groups, return_inverse=True)
        sums = np.bincount(inverse, values, len(labels))
        counts = np.bincount(inverse, minlength=len(labels)).astype(np.float64)
    n = len(sums)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // n)  # bounded memory: draw the resamples in blocks
    for s in range(0, n_boot, step):
        m = min(step, n_boot - s)
        draw = rng.integers(0, n, size=(m, n))
        means[s:s + m] = sums[draw].mean(axis=1) if counts is None else sums[draw].sum(1) / np.maximum(counts[draw].sum(1), 1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired per-user values; 1.0 when all equal."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if not np.any(diff != 0):
        return 1.0
    from scipy import stats  # here, not at the top: every service start and command would load it (0.8 s)

    return float(stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), monotone and capped at 1."""
    m = len(pvalues)
    order = np.argsort(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * pvalues[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted.tolist()
