"""GF-CF and BSPM against hand-computed filters on a 3-user × 4-item log, and BSPM's ODE solvers
against the exact solution of the linear ODE."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from penchant.data import Dataset
from penchant.eval import validator
from penchant.models import create
from penchant.models.graph_filters import normalised_interactions, solve_linear_ode
from tests.conftest import tiny_log

# R = [[1,1,0,0],[0,1,1,0],[1,0,1,1]]: user degrees 2, 2, 3; item degrees 2, 2, 2, 1
USERS, ITEMS = [0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2, 3]
# P̃ = R̃ᵀR̃, P̃_ij = Σ_u R_ui R_uj / (d_u √(d_i d_j)), worked out by hand
S = 1 / (3 * np.sqrt(2))
P_HAND = np.array([[5 / 12, 1 / 4, 1 / 6, S],
                   [1 / 4, 1 / 2, 1 / 4, 0],
                   [1 / 6, 1 / 4, 5 / 12, S],
                   [S, 0, S, 1 / 3]])
# the top right singular vector of R̃ is √d_I / ‖√d_I‖ (singular value 1), so the rank-1 ideal filter
# D_I^{−1/2} v vᵀ D_I^{1/2} sends a row r to |r| · d_j / Σd: for user 0, 2 · (2, 2, 2, 1) / 7
IDEAL_USER0 = np.array([4, 4, 4, 2]) / 7


@pytest.fixture(scope="module")
def log3x4() -> Dataset:
    return Dataset(np.array(["a", "b", "c"], dtype=object), np.array(["i0", "i1", "i2", "i3"], dtype=object),
                   np.array(USERS, np.int32), np.array(ITEMS, np.int32))


def test_normalised_matrix_gives_the_hand_computed_linear_filter(log3x4):
    rt, inv_i = normalised_interactions(log3x4.csr)
    np.testing.assert_allclose((rt.T @ rt).toarray(), P_HAND, atol=1e-12)
    np.testing.assert_allclose(inv_i, 1 / np.sqrt([2, 2, 2, 1]))


def test_gfcf_scores_are_linear_plus_alpha_times_ideal_filter(log3x4):
    r0 = np.array([1, 1, 0, 0])
    linear = create("gfcf", alpha=0.0, factors=1).fit(log3x4)
    np.testing.assert_allclose(linear.score(np.array([0]))[0], r0 @ P_HAND, atol=1e-6)  # (2/3, 3/4, 5/12, 0.2357)
    mixed = create("gfcf", alpha=0.5, factors=1).fit(log3x4)
    np.testing.assert_allclose(mixed.score(np.array([0]))[0], r0 @ P_HAND + 0.5 * IDEAL_USER0, atol=1e-6)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_bspm_blurs_sharpens_and_merges_as_the_paper(log3x4, solver):
    r0, h, beta = np.array([1.0, 1, 0, 0]), 0.7, 0.3
    eye = np.eye(4)
    step = eye - h * P_HAND  # one Euler step of dr/dt = −r P̃
    if solver == "rk4":
        a = -h * P_HAND
        step = eye + a + a @ a / 2 + a @ a @ a / 6 + a @ a @ a @ a / 24
    blurred = r0 @ P_HAND  # one Euler step of dr/dt = r P̃ − r over T_b = 1
    common = {"sharpen_time": h, "sharpen_solver": solver, "idl_beta": beta, "factors": 1}
    early = create("bspm", early_merge=True, **common).fit(log3x4)
    np.testing.assert_allclose(early.score(np.array([0]))[0], (blurred + beta * IDEAL_USER0) @ step, atol=1e-5)
    late = create("bspm", early_merge=False, **common).fit(log3x4)
    np.testing.assert_allclose(late.score(np.array([0]))[0], blurred @ step + beta * IDEAL_USER0, atol=1e-5)
    # no sharpening and no ideal filter: BSPM is GF-CF's linear filter
    plain = create("bspm", sharpen_time=0.0, idl_beta=0.0, factors=1).fit(log3x4)
    np.testing.assert_allclose(plain.score(np.arange(3)), create("gfcf", alpha=0.0, factors=1).fit(log3x4).score(np.arange(3)),
                               atol=1e-6)


def test_ode_solvers_converge_to_the_exact_solution():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6)) / 3
    r0 = rng.normal(size=(2, 6))
    exact = r0 @ scipy.linalg.expm(1.5 * a)
    errors = {}
    for solver in ("euler", "rk4"):
        for steps in (4, 8):
            errors[solver, steps] = np.abs(solve_linear_ode(r0, lambda y: y @ a, 1.5, steps, solver)[-1] - exact).max()
    assert errors["rk4", 8] < 1e-4 and errors["rk4", 8] < errors["rk4", 4] / 10  # 4th order: 16× per halving
    assert errors["euler", 8] < errors["euler", 4] < 0.5 and errors["euler", 8] > 100 * errors["rk4", 8]
    assert len(solve_linear_ode(r0, lambda y: y @ a, 1.5, 3, "rk4")) == 3  # every grid point after 0


@pytest.mark.parametrize("name", ["gfcf", "bspm"])
def test_unset_parameters_are_chosen_on_validation(name):
    ds = tiny_log()
    train, valid = ds.subset(np.arange(ds.n_interactions) % 5 != 0), ds.subset(np.arange(ds.n_interactions) % 5 == 0)
    model = create(name).fit(train, validator(train, valid))
    scores = [s["valid"] for s in model.selection_]
    assert len(scores) > 10 and model.chosen_ == {k: v for k, v in model.selection_[int(np.argmax(scores))].items()
                                                  if k != "valid"}
    assert set(model.selected()) == set(model.chosen_)  # nothing was given, everything chosen


def test_bspm_improves_on_the_gf_cf_filter_on_movielens(ml100k_split):
    """BSPM's claim against its baseline: blurring then sharpening beats GF-CF's filter, each
    choosing its settings on valid (measured NDCG@10 0.3231 against 0.3177 on this split)."""
    from penchant.eval import evaluate

    sp = ml100k_split
    check = validator(sp.train, sp.valid)
    ndcg = {name: evaluate(create(name).fit(sp.train, check), sp.train, sp.test, ks=[10],
                           also_exclude=(sp.valid,)).metrics()["ndcg@10"] for name in ("gfcf", "bspm")}
    assert ndcg["bspm"] > ndcg["gfcf"] + 0.003, ndcg
