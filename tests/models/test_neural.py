"""Mult-VAE and LightGCN: they learn beyond popularity, are deterministic under a seed, and persist."""

from __future__ import annotations

import numpy as np
import pytest

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
