"""iALS's exact solve (Woodbury path for rows shorter than d, rotated direct path for the others)
against per-row dense solves of the normal equations, and a whole fit against the same sweeps done
row by row."""

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.models import ials
from penchant.models.ials import IALS, row_regularization, solve_exact


def _per_row(x: sp.csr_matrix, o: np.ndarray, a0: float, reg: np.ndarray) -> np.ndarray:
    """w_r = (O_{I_r}ᵀO_{I_r} + α₀ OᵀO + λ_r I)⁻¹ O_{I_r}ᵀ 1, one numpy solve per row."""
    d = o.shape[1]
    return np.stack([np.linalg.solve(o[x[r].indices].T @ o[x[r].indices] + a0 * o.T @ o + reg[r] * np.eye(d),
                                     o[x[r].indices].sum(0)) if x[r].nnz else np.zeros(d) for r in range(x.shape[0])])


@pytest.fixture(scope="module")
def skewed() -> sp.csr_matrix:
    """60 × 90 binary rows with history lengths 0 … 59 (both sides of d = 12 and 24), shuffled."""
    rng = np.random.default_rng(3)
    lengths = rng.permutation(np.arange(60))
    rows = np.repeat(np.arange(60), lengths)
    cols = np.concatenate([rng.choice(90, n, replace=False) for n in lengths])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(60, 90))


@pytest.mark.parametrize("d,nu,a0,batch", [(12, 1.0, 0.3, 2_000_000), (24, 0.0, 0.05, 3_000), (24, 0.5, 0.0, 700)])
def test_exact_solve_matches_per_row_solves(skewed, monkeypatch, d, nu, a0, batch):
    # short rows (< d) take the Woodbury path, long ones the rotated direct path; a small batch bound
    # splits both paths into many padded batches
    monkeypatch.setattr(ials, "_BATCH_FLOATS", batch)
    o = np.random.default_rng(d).normal(size=(90, d))
    reg = row_regularization(np.diff(skewed.indptr), 90, 0.02, a0, nu)
    got = solve_exact(skewed, o, a0, reg)
    np.testing.assert_allclose(got, _per_row(skewed, o, a0, reg), rtol=1e-9, atol=1e-11)
    assert np.isfinite(got).all() and not got[np.diff(skewed.indptr) == 0].any()  # an empty history solves to 0,
    # also where its λ_r is 0 (α₀ = 0, ν > 0)


def test_fit_is_the_row_by_row_sweeps(skewed):
    # the whole fit (16-dimensional, 4 epochs) against the same alternating sweeps done with one dense
    # solve per row: the factors agree to 1e-6
    users, items = skewed.nonzero()
    train = Dataset(np.array([f"u{u}" for u in range(60)], dtype=object),
                    np.array([f"i{i}" for i in range(90)], dtype=object), users.astype(np.int32), items.astype(np.int32))
    model = IALS(factors=16, epochs=4, unobserved_weight=0.2, regularization=0.01, seed=5).fit(train)
    rng = np.random.default_rng(5)
    w, h = rng.normal(0.0, 0.1 / 4, (60, 16)), rng.normal(0.0, 0.1 / 4, (90, 16))
    x = (train.csr > 0).astype(np.float64).tocsr()
    xt = x.T.tocsr()
    for _ in range(4):
        w = _per_row(x, h, 0.2, row_regularization(np.diff(x.indptr), 90, 0.01, 0.2, 1.0))
        h = _per_row(xt, w, 0.2, row_regularization(np.diff(xt.indptr), 60, 0.01, 0.2, 1.0))
    np.testing.assert_allclose(model.user_factors_, w, atol=1e-6)
    np.testing.assert_allclose(model.item_factors_, h, atol=1e-6)
