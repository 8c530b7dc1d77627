"""Mult-VAE and LightGCN: they learn beyond popularity, are deterministic under a seed, and persist."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.eval import build_target, evaluate
from penchant.models import Recommender, create

QUICK = {"multvae": {"epochs": 15}, "lightgcn": {"epochs": 8, "lr": 0.01}}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_learns_beyond_popularity(name, ml100k_split):
    sp = ml100k_split
    target = build_target(sp.train, sp.test, (sp.valid,))
    model = create(name, **QUICK[name]).fit(sp.train)
    got = evaluate(model, sp.train, sp.test, ks=[10], target=target, beyond_accuracy=False).metrics()["ndcg@10"]
    pop = evaluate(create("pop").fit(sp.train), sp.train, sp.test, ks=[10], target=target,
                   beyond_accuracy=False).metrics()["ndcg@10"]
    assert got > 1.3 * pop, (got, pop)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_deterministic_and_persistent(name, ml100k_split, tmp_path):
    params = {**QUICK[name], "epochs": 2, "seed": 7}
    a = create(name, **params).fit(ml100k_split.train)
    b = create(name, **params).fit(ml100k_split.train)
    users = np.arange(0, 943, 23)
    assert np.array_equal(a.score(users), b.score(users))
    back = Recommender.load(a.save(tmp_path / f"{name}.npz"))
    assert np.allclose(back.score(users), a.score(users), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 9), st.integers(1, 7))
def test_lightgcn_propagation_and_its_gradient_match_the_plain_sparse_product(seed, n_users, n_items):
    """The symmetric CSR propagator gives torch's COO product and its autograd gradient."""
    import scipy.sparse as sps
    import torch

    from penchant.models.lightgcn import normalized_adjacency, symmetric_propagator

    x = sps.random(n_users, n_items, density=0.5, format="csr", dtype=np.float32, random_state=seed)
    x.data[:] = 1
    adj = normalized_adjacency(x)
    weights = torch.randn(n_users + n_items, 4, generator=torch.Generator().manual_seed(seed))
    grads = []
    for product in (lambda e: torch.sparse.mm(adj, e), symmetric_propagator(adj)):
        e0 = torch.randn(n_users + n_items, 4, generator=torch.Generator().manual_seed(seed + 1)).requires_grad_()
        e = product(product(e0))  # two layers
        (e * weights).sum().backward()
        grads.append((e.detach(), e0.grad))
    for plain, ours in zip(*grads):
        torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-6)
