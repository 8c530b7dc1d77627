"""RecVAE's composite prior and learning on a planted log; iALS's per-row solve against the closed form
and its loss falling with every sweep."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.data.split import random_holdout
from penchant.eval import evaluate
from penchant.models import create
from penchant.models.ials import row_regularization, solve_exact
from penchant.models.weighted_solve import solve_cg


def _normal_pdf(z: float, mu: float, var: float) -> float:
    return math.exp(-((z - mu) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def test_composite_prior_is_the_papers_three_component_mixture():
    import torch

    from penchant.models.recvae import composite_log_prior

    z = torch.tensor([[0.5, -2.0]])
    old_mu, old_logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    got = composite_log_prior(z, old_mu, old_logvar).numpy()[0]
    # by hand: 3/20·N(z; 0, 1) + 3/4·N(z; μ_old, σ²_old) + 1/10·N(z; 0, e^10), per coordinate
    want = [math.log(3 / 20 * _normal_pdf(0.5, 0, 1) + 3 / 4 * _normal_pdf(0.5, 1, 1) + 1 / 10 * _normal_pdf(0.5, 0, math.exp(10))),
            math.log(3 / 20 * _normal_pdf(-2, 0, 1) + 3 / 4 * _normal_pdf(-2, 0, 4) + 1 / 10 * _normal_pdf(-2, 0, math.exp(10)))]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _planted(seed: int = 0) -> Dataset:
    """240 users in four taste groups over 80 items (20 per group, equally popular overall): each
    user picks 12 items, 11 in expectation from their group's 20. Popularity carries no signal."""
    rng = np.random.default_rng(seed)
    n_users, n_items, groups = 240, 80, 4
    users, items = [], []
    for u in range(n_users):
        p = np.full(n_items, 0.1 / 60)
        g = u % groups
        p[g * 20:(g + 1) * 20] = 0.9 / 20
        chosen = rng.choice(n_items, size=12, replace=False, p=p / p.sum())
        users += [u] * 12
        items += list(chosen)
    return Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object), np.array([f"i{i}" for i in range(n_items)], dtype=object),
                   np.array(users, np.int32), np.array(items, np.int32))


@pytest.fixture(scope="module")
def planted_split():
    return random_holdout(_planted(), (0.75, 0.0, 0.25), seed=1)


@pytest.mark.parametrize("name,params", [("recvae", {"hidden": 64, "latent": 16, "epochs": 15, "batch_size": 60}),
                                         ("ials", {"factors": 8, "epochs": 6})])
def test_learns_the_planted_groups_where_popularity_cannot(name, params, planted_split):
    sp_ = planted_split
    pop = evaluate(create("pop").fit(sp_.train), sp_.train, sp_.test, ks=[10]).metrics()["ndcg@10"]
    got = evaluate(create(name, **params).fit(sp_.train), sp_.train, sp_.test, ks=[10]).metrics()["ndcg@10"]
    assert got > 2 * pop


@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_ials_row_solve_is_the_closed_form(nu):
    # d = 1 by hand: items h = (1, 2, 0, 3); user 0 has items {0, 1}, user 1 has {3}, user 2 none
    h = np.array([[1.0], [2.0], [0.0], [3.0]])
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=np.float64))
    a0, lam = 0.5, 0.2
    gram = 1 + 4 + 0 + 9
    want = np.array([(1 + 2) / (1 + 4 + a0 * gram + lam * (2 + a0 * 4) ** nu),
                     3 / (9 + a0 * gram + lam * (1 + a0 * 4) ** nu), 0.0])
    reg = row_regularization(np.diff(x.indptr), 4, lam, a0, nu)
    np.testing.assert_allclose(solve_exact(x, h, a0, reg)[:, 0], want, rtol=1e-12)
    # d = 6 on a random matrix: batched exact and d conjugate-gradient steps against per-row numpy solves
    rng = np.random.default_rng(0)
    h = rng.normal(size=(30, 6))
    x = sp.random(25, 30, density=0.2, random_state=1, format="csr")
    x.data[:] = 1.0
    reg = row_regularization(np.diff(x.indptr), 30, lam, a0, nu)
    want = np.stack([np.linalg.solve(h[x[u].indices].T @ h[x[u].indices] + a0 * h.T @ h + reg[u] * np.eye(6),
                                     h[x[u].indices].sum(0)) for u in range(25)])
    np.testing.assert_allclose(solve_exact(x, h, a0, reg), want, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(solve_cg(x, h, a0, reg, np.zeros((25, 6)), steps=6), want, rtol=1e-6, atol=1e-8)


def _ials_loss(model, x: sp.csr_matrix) -> float:
    """The paper's objective (observed, all-pairs unobserved, frequency-scaled L2) at the model's factors."""
    w, h = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    s = w @ h.T
    a0 = model.unobserved_weight
    ru = row_regularization(np.diff(x.indptr), x.shape[1], model.regularization, a0, model.reg_exponent)
    ri = row_regularization(np.diff(x.tocsc().indptr), x.shape[0], model.regularization, a0, model.reg_exponent)
    return float(((s[x.nonzero()] - 1) ** 2).sum() + a0 * (s ** 2).sum() + ru @ (w ** 2).sum(1) + ri @ (h ** 2).sum(1))


def test_ials_loss_falls_with_every_sweep(planted_split):
    train = planted_split.train
    x = (train.csr > 0).astype(np.float64)
    losses = [_ials_loss(create("ials", factors=8, epochs=e, unobserved_weight=0.05).fit(train), x) for e in (1, 2, 4, 8)]
    assert all(b < a for a, b in itertools.pairwise(losses))
