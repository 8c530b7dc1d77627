"""Paired tests, Holm's correction and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from penchant.eval.significance import bootstrap_ci, holm, wilcoxon_p


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_wilcoxon_matches_scipy_and_handles_ties():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a - 0.05 + rng.normal(0, 0.1, 200)
    assert wilcoxon_p(a, b) == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert wilcoxon_p(a, a) == 1.0


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 0.1, 500)
    lo, hi = bootstrap_ci(x, seed=4)
    assert lo < x.mean() < hi and (lo, hi) == bootstrap_ci(x, seed=4)
    # about ±1.96·σ/√n
    assert (hi - lo) == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.15)


def test_one_bootstrap_resamples_values_or_whole_groups():
    rng = np.random.default_rng(1)
    x = rng.random(200)
    assert bootstrap_ci(x, groups=np.arange(200), seed=7) == bootstrap_ci(x, seed=7)  # singleton groups: the same draw
    users = np.repeat(np.arange(20), 10)
    y = np.repeat(rng.random(20), 10)  # each user's pairs agree: resampling users, not pairs, keeps that
    assert bootstrap_ci(y, groups=users, seed=7) == pytest.approx(bootstrap_ci(y[::10], seed=7), rel=1e-12)
