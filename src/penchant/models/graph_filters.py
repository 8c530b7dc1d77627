"""Graph-filter recommenders: GF-CF (Shen et al., CIKM 2021) and BSPM (Choi et al., SIGIR 2023).

Both start from the normalised interaction matrix ``R̃ = D_U^{−1/2} R D_I^{−1/2}`` (``D_U``, ``D_I``:
user and item degrees of the binary training matrix; a zero degree gives a zero row or column) and
two item-item filters of a user's binary row ``r`` (1 × n_items):

* the linear filter ``P̃ = R̃ᵀ R̃`` (n_items × n_items), a normalised co-occurrence matrix;
* the ideal low-pass filter ``D_I^{−1/2} V̄ V̄ᵀ D_I^{1/2}``, with ``V̄`` (n_items × k) the top-k
  right singular vectors of ``R̃``.

GF-CF scores ``s = r P̃ + α · r D_I^{−1/2} V̄ V̄ᵀ D_I^{1/2}`` (the paper's eq. for GF-CF).

BSPM runs two ODEs on ``r``: blurring ``dr/dt = r P̃ − r`` (heat diffusion on the item graph, with
Laplacian ``I − P̃``) from ``t = 0`` to ``T_b``, then sharpening ``dr/dt = −r P̃`` (the reverse
diffusion) from 0 to ``T_s``, each solved on a fixed grid of ``K`` steps by Euler or 4th-order
Runge-Kutta; the ideal-filter output ``r_idl = r D_I^{−1/2} V̄ V̄ᵀ D_I^{1/2}`` (the reference code's
ideal-filter ODE with its default one Euler step over ``T = 1``, which is exactly this product) is
merged with weight β either before sharpening (early merge, BSPM-EM: the sharpening starts from
``β r_idl + r(T_b)``) or after it (late merge, BSPM-LM: ``r_sharp + β r_idl``). With
``point_combination`` the result is the mean of every intermediate point of both ODEs (the paper's
"t-point combination"). For the linear ODEs here every 4-stage 4th-order Runge-Kutta scheme gives the
same step (the degree-4 Taylor polynomial of ``exp(hA)``), so this RK4 equals the reference code's
(torchdiffeq's 3/8-rule) RK4.

The linear filter is held dense (float32) when its co-occurrence density passes ``DENSE_FILTER``
(ML-100K: 75%), sparse otherwise; the ideal filter as its two factors ``D_I^{−1/2} V̄`` and
``V̄ᵀ D_I^{1/2}`` (n_items × k each), so no dense n_items² product is formed for it. ``V̄`` comes
from a dense symmetric eigen-decomposition of ``P̃`` (= ``V Σ² Vᵀ``) for catalogues up to
``DENSE_EIG_ITEMS`` items, from ``scipy.sparse.linalg.svds`` (ARPACK, fixed start vector) above.

Unset parameters are chosen on validation data from small grids (each model's docstring); without
validation data the reference code's defaults are used. What differs from the papers: the GF-CF
paper tunes α and k by hand per dataset (its Gowalla/Yelp setting is α = 0.3, k = 256; on
Amazon-book it drops the ideal filter), here a grid on validation data chooses them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import HistoryScored, Validator, _sparse_from, _sparse_parts
from penchant.models.registry import register
from penchant.models.search import Choice, Float, Int

#: the linear filter is stored dense when this share of its cells is non-zero
DENSE_FILTER = 0.1
#: the ideal filter's singular vectors come from a dense eigen-decomposition up to this many items
DENSE_EIG_ITEMS = 4096
#: bytes per item × item cell at the peak of a fit when every pair co-occurs: the sparse float64
#: product (value and index), its dense float64 copy and the float32 filter
CELL_BYTES = 24


def normalised_interactions(x: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``R̃ = D_U^{−1/2} R D_I^{−1/2}`` for a binary CSR ``x`` (n_users, n_items), float64, and the
    item degrees' ``d_I^{−1/2}``, float64 (n_items,) (0 for items nobody has)."""
    x = (x > 0).astype(np.float64).tocsr()
    du = np.asarray(x.sum(axis=1)).ravel()
    di = np.asarray(x.sum(axis=0)).ravel()
    inv_u = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1e-300)), 0.0)
    inv_i = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1e-300)), 0.0)
    return (sp.diags(inv_u) @ x @ sp.diags(inv_i)).tocsr(), inv_i


def top_right_singular_vectors(rt: sp.csr_matrix, k: int, gram: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` leading right singular vectors of ``rt`` (n_users, n_items), float64 (n_items, k),
    largest singular value first. ``gram``: ``rtᵀ rt`` dense when already built (small catalogues)."""
    n_users, n_items = rt.shape
    k = max(1, min(k, n_items, n_users))
    if gram is not None or n_items <= DENSE_EIG_ITEMS or k >= min(n_users, n_items) - 1:
        g = gram if gram is not None else (rt.T @ rt).toarray()
        values, vectors = np.linalg.eigh(g)
        return vectors[:, np.argsort(-values, kind="stable")[:k]]
    v0 = np.full(min(n_users, n_items), 1.0 / np.sqrt(min(n_users, n_items)))
    _, s, vt = spla.svds(rt, k=k, v0=v0)
    return vt[np.argsort(-s, kind="stable")].T


class _GraphFilter(HistoryScored):
    """Shared fit: R̃, the linear filter P̃ and the ideal filter's factors at the largest k tried;
    the settings (which only change how scores combine them) are then tried on validation data."""

    def _candidates(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _default(self) -> dict[str, Any]:
        raise NotImplementedError

    def memory_need(self, train: Dataset, valid: Validator | None) -> tuple[int, str, tuple[str, ...]]:
        n = train.n_items
        what = (f"the {n:,} × {n:,} linear item filter R̃ᵀR̃ (as a sparse float64 product, then dense or sparse "
                "float32) and, for small catalogues, its dense eigen-decomposition")
        return CELL_BYTES * n * n + (256 << 20), what, ("sansa", "fsslim", "rp3beta", "als")

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        rt, inv_i = normalised_interactions(train.csr)
        p = (rt.T @ rt).tocsr()
        dense = p.nnz >= DENSE_FILTER * p.shape[0] * p.shape[1]
        candidates = self._candidates() if valid is not None else [self._default()]
        k = max(c["factors"] for c in candidates)
        gram = p.toarray() if dense else None
        v = top_right_singular_vectors(rt, k, gram)
        self.left_ = (inv_i[:, None] * v).astype(np.float32)  # D_I^{−1/2} V̄
        deg = np.where(inv_i > 0, 1.0 / np.where(inv_i > 0, inv_i, 1.0), 0.0)
        self.right_ = (v.T * deg[None, :]).astype(np.float32)  # V̄ᵀ D_I^{1/2}
        self.filter_ = gram.astype(np.float32) if dense else p.astype(np.float32)
        del gram
        if len(candidates) == 1:
            self.chosen_ = candidates[0]
            return
        self.selection_ = []
        best = (float("-inf"), candidates[0])
        for setting in candidates:
            self.chosen_ = setting
            value = valid(self)  # type: ignore[misc]
            self.selection_.append({**setting, "valid": value})
            if value > best[0]:
                best = (value, setting)
        self.chosen_ = best[1]

    def selected(self) -> dict[str, Any]:
        fixed = {k for k, v in self.params().items() if v is not None}
        return {k: v for k, v in getattr(self, "chosen_", {}).items() if k not in fixed}

    # ----- the two filters ---------------------------------------------------------------------
    def _linear(self, r: np.ndarray) -> np.ndarray:
        """``r P̃`` for dense rows ``r`` (n, n_items) float32."""
        if isinstance(self.filter_, np.ndarray):
            return r @ self.filter_
        return np.asarray((self.filter_.T @ r.T).T)  # P̃ is symmetric; sparse × dense is scipy's fast path

    def _ideal(self, rows: sp.csr_matrix, k: int) -> np.ndarray:
        """``r D_I^{−1/2} V̄_k V̄_kᵀ D_I^{1/2}`` for CSR rows (n, n_items): (n, n_items) float32."""
        k = min(k, self.left_.shape[1])
        return np.asarray(rows @ self.left_[:, :k], dtype=np.float32) @ self.right_[:k]

    # ----- persistence ------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        arrays = {"left": self.left_, "right": self.right_,
                  "chosen": np.array([float(self.chosen_[k]) for k in sorted(self.chosen_)])}
        if isinstance(self.filter_, np.ndarray):
            arrays["filter"] = self.filter_
        else:
            arrays.update(_sparse_parts("filter", self.filter_))
        return arrays

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.left_, self.right_ = arrays["left"], arrays["right"]
        self.filter_ = arrays["filter"] if "filter" in arrays else _sparse_from(arrays, "filter")
        keys = sorted(self._default())
        self.chosen_ = {k: _typed(self._default()[k], v) for k, v in zip(keys, arrays["chosen"], strict=True)}


def _typed(like: Any, value: float) -> Any:
    return type(like)(value) if not isinstance(like, bool) else bool(value)


@register
class GFCF(_GraphFilter):
    """GF-CF: a normalised item-item linear filter plus an ideal low-pass filter (Shen et al. 2021).

    ``score(u) = r_u R̃ᵀR̃ + α · r_u D_I^{−1/2} V̄ V̄ᵀ D_I^{1/2}`` (see :mod:`penchant.models.graph_filters`).
    Unset parameters are chosen on validation data from α ∈ {0, 0.1, 0.3, 0.5, 1} and
    k ∈ {32, 64, 128, 256}; without validation data the paper's α = 0.3, k = 256.

    Args:
        alpha: α, the weight of the ideal low-pass filter (0: the linear filter alone).
        factors: k, the singular vectors of the ideal filter (capped at the number of items).
    """

    name = "gfcf"
    summary = "GF-CF: normalised linear item filter plus ideal low-pass filter (closed form, no training)"
    search_space = {"alpha": Float(0.0, 2.0), "factors": Int(16, 1024, log=True)}

    def __init__(self, *, alpha: float | None = None, factors: int | None = None) -> None:
        if alpha is not None and alpha < 0:
            raise ConfigError("alpha must be non-negative")
        if factors is not None and factors < 1:
            raise ConfigError("factors must be at least 1")
        self.alpha, self.factors = alpha, factors

    def _candidates(self) -> list[dict[str, Any]]:
        alphas = [self.alpha] if self.alpha is not None else [0.0, 0.1, 0.3, 0.5, 1.0]
        ks = [self.factors] if self.factors is not None else [32, 64, 128, 256]
        return [{"alpha": a, "factors": k} for k, a in itertools.product(ks, alphas)]

    def _default(self) -> dict[str, Any]:
        return {"alpha": 0.3 if self.alpha is None else self.alpha,
                "factors": 256 if self.factors is None else self.factors}

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        r = rows.astype(np.float32)
        out = self._linear(r.toarray())
        if self.chosen_["alpha"]:
            out += self.chosen_["alpha"] * self._ideal(r, self.chosen_["factors"])
        return out.astype(np.float32, copy=False)


SOLVERS = ("euler", "rk4")


def solve_linear_ode(r0: np.ndarray, f: Callable[[np.ndarray], np.ndarray], horizon: float, steps: int,
                     solver: str) -> list[np.ndarray]:
    """Fixed-grid solution of ``dr/dt = f(r)`` from ``r(0) = r0`` over ``[0, horizon]`` in ``steps``
    equal steps: the states at every grid point after 0, each shaped like ``r0`` ((n, n_items))."""
    h = horizon / steps
    out, r = [], r0
    for _ in range(steps):
        if solver == "euler":
            r = r + h * f(r)
        else:
            k1 = f(r)
            k2 = f(r + 0.5 * h * k1)
            k3 = f(r + 0.5 * h * k2)
            k4 = f(r + h * k3)
            r = r + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(r)
    return out


@register
class BSPM(_GraphFilter):
    """BSPM: a blurring ODE (heat diffusion with the linear filter) then a sharpening ODE (its
    reverse), with the ideal low-pass filter merged in (Choi et al. 2023).

    See :mod:`penchant.models.graph_filters` for the equations. Unset parameters are chosen on
    validation data from T_s ∈ {0.5, 1, 1.5, 2.5}, β ∈ {0, 0.2, 0.4} and k ∈ {32, 64, 256}; without
    validation data the reference's Gowalla setting (RK4, T_s = 2.5, β = 0.2, k = 256).

    Args:
        blur_time: T_b, the blurring ODE's terminal time.
        blur_steps: K_b, its fixed steps (step size T_b / K_b).
        blur_solver: euler or rk4 for the blurring ODE.
        sharpen_time: T_s, the sharpening ODE's terminal time (0: no sharpening).
        sharpen_steps: K_s, its fixed steps.
        sharpen_solver: euler or rk4 for the sharpening ODE.
        idl_beta: β, the weight of the ideal low-pass filter's output.
        factors: k, the singular vectors of the ideal filter.
        early_merge: True (BSPM-EM): the ideal output joins before sharpening; False (BSPM-LM): after.
        point_combination: average every intermediate point of both ODEs instead of the last one.
    """

    name = "bspm"
    summary = "BSPM: blurring-sharpening ODEs over the item graph with an ideal low-pass filter (no training)"
    search_space = {"sharpen_time": Float(0.0, 4.0), "idl_beta": Float(0.0, 1.0), "factors": Int(16, 1024, log=True),
                    "sharpen_steps": Int(1, 4), "blur_time": Float(0.5, 2.0), "early_merge": Choice((True, False))}

    def __init__(self, *, blur_time: float = 1.0, blur_steps: int = 1, blur_solver: str = "euler",
                 sharpen_time: float | None = None, sharpen_steps: int = 1, sharpen_solver: str = "rk4",
                 idl_beta: float | None = None, factors: int | None = None, early_merge: bool = True,
                 point_combination: bool = False) -> None:
        if blur_time <= 0 or (sharpen_time is not None and sharpen_time < 0):
            raise ConfigError("blur_time must be positive and sharpen_time non-negative")
        if blur_steps < 1 or sharpen_steps < 1:
            raise ConfigError("blur_steps and sharpen_steps must be at least 1")
        for key, solver in (("blur_solver", blur_solver), ("sharpen_solver", sharpen_solver)):
            if solver not in SOLVERS:
                raise ConfigError(f"{key} must be one of {', '.join(SOLVERS)}, not {solver!r}")
        if idl_beta is not None and idl_beta < 0:
            raise ConfigError("idl_beta must be non-negative")
        if factors is not None and factors < 1:
            raise ConfigError("factors must be at least 1")
        self.blur_time, self.blur_steps, self.blur_solver = blur_time, blur_steps, blur_solver
        self.sharpen_time, self.sharpen_steps, self.sharpen_solver = sharpen_time, sharpen_steps, sharpen_solver
        self.idl_beta, self.factors = idl_beta, factors
        self.early_merge, self.point_combination = early_merge, point_combination

    def _candidates(self) -> list[dict[str, Any]]:
        ts = [self.sharpen_time] if self.sharpen_time is not None else [0.5, 1.0, 1.5, 2.5]
        betas = [self.idl_beta] if self.idl_beta is not None else [0.0, 0.2, 0.4]
        ks = [self.factors] if self.factors is not None else [32, 64, 256]
        return [{"sharpen_time": t, "idl_beta": b, "factors": k} for k, t, b in itertools.product(ks, ts, betas)]

    def _default(self) -> dict[str, Any]:
        pick = lambda given, fallback: fallback if given is None else given
        return {"sharpen_time": pick(self.sharpen_time, 2.5), "idl_beta": pick(self.idl_beta, 0.2),
                "factors": pick(self.factors, 256)}

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        c = self.chosen_
        r = rows.astype(np.float32)
        beta = c["idl_beta"]
        idl = self._ideal(r, c["factors"]) if beta else None
        blurred = solve_linear_ode(r.toarray(), lambda y: self._linear(y) - y, self.blur_time, self.blur_steps,
                                   self.blur_solver)
        start = blurred[-1] + beta * idl if (idl is not None and self.early_merge) else blurred[-1]
        sharpened = (solve_linear_ode(start, lambda y: -self._linear(y), c["sharpen_time"], self.sharpen_steps,
                                      self.sharpen_solver) if c["sharpen_time"] > 0 else [start])
        out = np.mean(blurred + sharpened, axis=0) if self.point_combination else sharpened[-1]
        if idl is not None and not self.early_merge:
            out = out + beta * idl
        return np.asarray(out, dtype=np.float32)
