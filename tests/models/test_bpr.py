"""BPR-MF: samplers, determinism, and learning beyond popularity on MovieLens."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.eval import build_target, evaluate, validator
from penchant.models import Recommender, create
from penchant.models.training import EarlyStopping, NegativeSampler


def test_negative_sampler_never_returns_seen_items(ml100k_split):
    x = ml100k_split.train.csr
    rng = np.random.default_rng(0)
    for weights in (None, ml100k_split.train.item_counts.astype(float) ** 0.75):
        sampler = NegativeSampler(x, weights, rng)
        users = np.repeat(np.arange(x.shape[0]), 50)
        items = sampler.sample(users)
        assert x[users, items].sum() == 0


def test_popularity_sampler_prefers_popular_items(ml100k_split):
    x = ml100k_split.train.csr
    counts = ml100k_split.train.item_counts.astype(float)
    users = np.repeat(np.arange(x.shape[0]), 100)
    uni = NegativeSampler(x, None, np.random.default_rng(1)).sample(users)
    pop = NegativeSampler(x, counts, np.random.default_rng(1)).sample(users)
    assert counts[pop].mean() > 2 * counts[uni].mean()


def test_early_stopping_keeps_the_best_state():
    stop = EarlyStopping(patience=2)
    values = [0.1, 0.3, 0.2, 0.25, 0.1]
    stopped_at = next(e for e, v in enumerate(values) if stop.update(e, v, lambda e=e: {"epoch": e}))
    assert stopped_at == 3 and stop.best_epoch == 1 and stop.best_state == {"epoch": 1}


def test_bpr_is_deterministic_and_saves(ml100k_split, tmp_path):
    a = create("bpr", epochs=3, seed=5).fit(ml100k_split.train)
    b = create("bpr", epochs=3, seed=5).fit(ml100k_split.train)
    users = np.arange(0, 943, 17)
    assert np.array_equal(a.score(users), b.score(users))
    back = Recommender.load(a.save(tmp_path / "bpr.npz"))
    assert np.array_equal(back.score(users), a.score(users))


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["uniform", "nbpo"])
def test_bpr_beats_popularity(ml100k_split, sampler):
    sp = ml100k_split
    target = build_target(sp.train, sp.test, (sp.valid,))
    model = create("bpr", sampler=sampler).fit(sp.train, validator(sp.train, sp.valid))
    pop = create("pop").fit(sp.train)
    ndcg = [evaluate(m, sp.train, sp.test, ks=[10], target=target, beyond_accuracy=False).metrics()["ndcg@10"]
            for m in (model, pop)]
    assert ndcg[0] > 1.5 * ndcg[1], ndcg
    assert model.selected()["epochs"] >= 5


def test_unknown_sampler_is_refused():
    from penchant.errors import ConfigError

    with pytest.raises(ConfigError, match="sampler"):
        create("bpr", sampler="hard")


def test_hand_written_gradients_match_autograd():
    import torch

    torch.manual_seed(0)
    model = create("bpr", reg=0.03)
    p, q, b = torch.randn(5, 3), torch.randn(6, 3), torch.randn(6)
    u, i, j = torch.tensor([0, 1, 1, 4]), torch.tensor([2, 3, 2, 5]), torch.tensor([1, 0, 5, 2])
    ref = [t.clone().requires_grad_(True) for t in (p, q, b)]
    pu, qi, qj = ref[0][u], ref[1][i], ref[1][j]
    x = (pu * (qi - qj)).sum(1) + ref[2][i] - ref[2][j]
    loss = -torch.nn.functional.logsigmoid(x).mean() + 0.03 * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / 4
    loss.backward()
    from penchant.models.bpr import bpr_row_gradients

    users, _, gp, items, _, gq = bpr_row_gradients(p, torch.cat([q, b[:, None]], 1), u, i, j, 0.03)
    mine = [torch.zeros_like(t) for t in (p, q, b)]
    mine[0][users] = gp
    mine[1][items], mine[2][items] = gq[:, :3], gq[:, 3]
    assert sorted(users.tolist()) == [0, 1, 4] and sorted(items.tolist()) == [0, 1, 2, 3, 5]  # the rows touched
    for a, r in zip(mine, ref):
        assert torch.allclose(a, r.grad, atol=1e-6)


def test_lazy_adam_moves_only_the_touched_rows_and_matches_adam_on_them():
    """Two steps: rows {1, 3}, then {3}. Row 3 (touched both times) moves as torch's Adam moves it;
    row 1 keeps its value and moments at the second step (dense Adam's momentum would move it);
    rows never touched never change."""
    import torch

    from penchant.models.bpr import LazyAdam

    torch.manual_seed(0)
    start = torch.randn(5, 3)
    grads = [torch.zeros(5, 3), torch.zeros(5, 3)]
    grads[0][[1, 3]] = torch.randn(2, 3)
    grads[1][3] = torch.randn(3)
    lazy_table = start.clone()
    lazy = LazyAdam([lazy_table], lr=0.1)
    dense = torch.nn.Parameter(start.clone())
    adam = torch.optim.Adam([dense], lr=0.1)
    after_first = None
    for g, rows in zip(grads, (torch.tensor([1, 3]), torch.tensor([3]))):
        lazy.tick()
        lazy.update(0, rows, lazy_table.index_select(0, rows), g[rows])
        dense.grad = g.clone()
        adam.step()
        after_first = lazy_table.clone() if after_first is None else after_first
    assert torch.allclose(lazy_table[3], dense.detach()[3], atol=1e-6)
    assert torch.equal(lazy_table[1], after_first[1]) and not torch.allclose(dense.detach()[1], after_first[1])
    assert torch.equal(lazy_table[[0, 2, 4]], start[[0, 2, 4]])
    assert torch.equal(lazy.moments[0][[0, 2, 4]], torch.zeros(3, 2, 3))
