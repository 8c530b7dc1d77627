"""Conjugate-gradient steps on many rows' weighted least-squares normal equations at once: the solve
ALS's block half-steps (:mod:`penchant.models.als`) and iALS's ``solver="cg"``
(:mod:`penchant.models.ials`) share.

Row r of a CSR matrix X (n_rows, n_other), against fixed factors O (n_other, d) of the other side:

    A_r = Σ_{i ∈ I_r} w_ri o_i o_iᵀ + α₀ OᵀO + λ_r I,    b_r = Σ_{i ∈ I_r} x_ri o_i

over the row's stored entries I_r. iALS (Rendle et al. 2022): X binary, w = 1, α₀ the unobserved
weight. Implicit-feedback ALS (Hu, Koren & Volinsky 2008): x_ri = c_ri = α r_ri the confidence,
w_ri = c_ri − 1, α₀ = 1 (every pair weighs 1, an observed one c). A_r is never formed:
A_r p_r = Σ_i w_ri (o_i·p_r) o_i + α₀ OᵀO p_r + λ_r p_r, for all rows of a chunk through one sparse product.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: stored entries one chunk of rows takes at once: its (entries, d) gathers, 32 MiB each at d = 64
CHUNK_ENTRIES = 65536


def solve_cg(x: sp.csr_matrix, other: np.ndarray, unobserved_weight: float, reg: np.ndarray | float,
             start: np.ndarray, steps: int, *, weights: np.ndarray | None = None,
             gram: np.ndarray | None = None) -> np.ndarray:
    """``steps`` conjugate-gradient steps on every row's normal equations A_r w = b_r (see the module),
    from ``start``.

    ``x``: CSR (n_rows, n_other), its values the x_ri of b_r; ``other``: O, (n_other, d);
    ``unobserved_weight``: α₀; ``reg``: λ_r per row, (n_rows,), or one λ for all; ``start``:
    (n_rows, d); ``weights``: w_ri per stored entry of ``x`` in its order, (x.nnz,), default 1;
    ``gram``: OᵀO (d, d) where the caller has it already (the same for every block of a half-step).
    Returns float64 (n_rows, d). Rows are taken in contiguous chunks of about
    :data:`CHUNK_ENTRIES` stored entries, so memory stays bounded; every row's steps are its own
    (the result does not depend on the chunking).
    """
    o = np.asarray(other, dtype=np.float64)
    dense = unobserved_weight * (o.T @ o if gram is None else np.asarray(gram, dtype=np.float64))
    n = x.shape[0]
    lam = np.broadcast_to(np.asarray(reg, dtype=np.float64), (n,))
    out = np.array(start, dtype=np.float64, copy=True)
    ptr = x.indptr
    s = 0
    while s < n:
        e = max(s + 1, int(np.searchsorted(ptr, ptr[s] + CHUNK_ENTRIES, side="right")) - 1)
        lo, hi = ptr[s], ptr[e]
        w = None if weights is None else weights[lo:hi]
        out[s:e] = _chunk(ptr[s:e + 1] - lo, x.indices[lo:hi], x.data[lo:hi], w, o, dense, lam[s:e], out[s:e], steps)
        s = e
    return out


def _chunk(ptr: np.ndarray, idx: np.ndarray, data: np.ndarray, weights: np.ndarray | None, o: np.ndarray,
           dense: np.ndarray, lam: np.ndarray, w: np.ndarray, steps: int) -> np.ndarray:
    """:func:`solve_cg` on one chunk of rows given as CSR parts (``ptr`` from 0); ``w`` (rows, d) is
    updated in place and returned."""
    shape = (len(ptr) - 1, o.shape[0])
    rows = np.repeat(np.arange(shape[0]), np.diff(ptr))
    oi = o[idx]  # (entries, d)

    def apply(p: np.ndarray) -> np.ndarray:
        dots = np.einsum("nd,nd->n", p[rows], oi)
        if weights is not None:
            dots *= weights
        return sp.csr_matrix((dots, idx, ptr), shape=shape) @ o + p @ dense + lam[:, None] * p

    r = sp.csr_matrix((data, idx, ptr), shape=shape) @ o - apply(w)
    p = r.copy()
    rs = np.einsum("nd,nd->n", r, r)
    for _ in range(steps):
        ap = apply(p)
        curv = np.einsum("nd,nd->n", p, ap)
        step = np.divide(rs, curv, out=np.zeros_like(rs), where=curv > 0)
        w += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = np.einsum("nd,nd->n", r, r)
        p = r + np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)[:, None] * p
        rs = rs_new
    return w
