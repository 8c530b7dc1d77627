"""The conjugate-gradient solve ALS's block half-steps and iALS's ``solver="cg"`` share, against
textbook CG run on each row's normal equations formed explicitly (A_r built as a dense matrix)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.models.als import CG_STEPS, solve_rows
from penchant.models.weighted_solve import solve_cg


def _textbook_cg(a: np.ndarray, b: np.ndarray, x: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` steps of plain conjugate gradient on a x = b from x (one row, dense)."""
    x = x.copy()
    r = b - a @ x
    p, rs = r.copy(), r @ r
    for _ in range(steps):
        ap = a @ p
        step = rs / (p @ ap)
        x += step * p
        r -= step * ap
        new = r @ r
        p = r + new / rs * p
        rs = new
    return x


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    x = sp.random(40, 30, density=0.25, random_state=3, format="csr")
    x.data[:] = rng.integers(1, 6, x.nnz)  # ratings 1..5: ALS's confidence α r
    keep = np.ones(40)
    keep[5] = 0.0  # a row with no history: b = 0, A = a0
    x = sp.diags(keep) @ x
    x.eliminate_zeros()
    y = rng.normal(size=(30, 8))
    previous = rng.normal(scale=0.1, size=(40, 8))
    return x.tocsr(), y, previous


def test_als_block_half_step_is_three_cg_steps_on_each_users_weighted_system(problem):
    x, y, previous = problem
    alpha, lam = 1.5, 2.0
    gram = y.T @ y
    want = []
    for u in range(x.shape[0]):
        row = x[u]
        c = alpha * row.data
        a = gram + lam * np.eye(8) + (y[row.indices].T * (c - 1.0)) @ y[row.indices]
        want.append(_textbook_cg(a, c @ y[row.indices], previous[u], CG_STEPS))
    shared = (x, y, gram, lam, alpha, previous)
    got = np.vstack([solve_rows(shared, (0, 17)), solve_rows(shared, (17, 40))])  # two blocks, as Ray tasks get
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6, atol=1e-9)
    assert np.abs(got - previous).max() > 0.1  # the step moved the factors


def test_ials_cg_steps_are_textbook_cg_on_each_rows_system(problem):
    x, y, previous = problem
    x = (x > 0).astype(np.float64).tocsr()
    a0, reg = 0.3, np.linspace(0.5, 2.0, x.shape[0])
    want = [_textbook_cg(y[x[u].indices].T @ y[x[u].indices] + a0 * y.T @ y + reg[u] * np.eye(8),
                         y[x[u].indices].sum(0), previous[u], 2) for u in range(x.shape[0])]
    np.testing.assert_allclose(solve_cg(x, y, a0, reg, previous, 2), np.stack(want), rtol=1e-6, atol=1e-9)
