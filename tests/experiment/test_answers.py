"""The one answer core: a batch of users and each user alone get the same lists (one path), the
exclusion rule holds whatever is banned, and the stated fallback is what answered."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.errors import NotFoundError
from penchant.experiment.answers import FOLD_IN, MODEL, POPULAR, AnswerCore, rank_options
from penchant.models.registry import create
from tests.conftest import tiny_log


@cache
def core(name: str) -> AnswerCore:
    params = {"als": {"factors": 8, "iterations": 5}}.get(name, {})
    return AnswerCore(create(name, **params).fit(tiny_log()))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["als", "ease", "pop"]), data=st.data())
def test_a_batch_answers_each_user_as_that_user_alone(name, data):
    c = core(name)
    n_users, n_items = len(c.user_ids), c.n_items
    known = [str(u) for u in c.user_ids]
    ids = data.draw(st.lists(st.sampled_from(known + ["walk-in", "ghost", "stranger"]), min_size=1, max_size=8, unique=True))
    k = data.draw(st.integers(1, n_items + 2))
    rows = data.draw(st.lists(st.lists(st.integers(0, n_items - 1), max_size=4), min_size=len(ids), max_size=len(ids)))
    history = sp.vstack([c.history(np.array(r, dtype=np.int64)) for r in rows]).tocsr()
    banned = np.zeros(n_items, bool)
    banned[data.draw(st.lists(st.integers(0, n_items - 1), max_size=5))] = True
    exclude_seen = data.draw(st.booleans())
    batch = c.rank(ids, k, history=history, banned=banned, exclude_seen=exclude_seen)
    for r, user in enumerate(ids):
        alone = c.rank([user], k, history=history[r], banned=banned, exclude_seen=exclude_seen)[0]
        assert batch[r].items.tolist() == alone.items.tolist() and batch[r].source == alone.source
        assert np.allclose(batch[r].scores, alone.scores, atol=1e-5)
        shown = set(batch[r].items.tolist())
        assert not shown & set(np.flatnonzero(banned).tolist())  # bans hold for every source
        u = c.known(user)
        if exclude_seen:
            assert not shown & set(rows[r])
            if u >= 0:
                assert not shown & set(c.seen[u].indices.tolist())
        assert batch[r].source == (MODEL if u >= 0 else FOLD_IN if rows[r] and name != "pop" else POPULAR)
        assert list(batch[r].scores) == sorted(batch[r].scores, reverse=True)
        assert len(shown) == len(batch[r].items) <= k
    assert n_users == len(c.users)


def test_the_popular_fallback_is_log_users_per_item_with_ties_by_index():
    c = core("als")
    got = c.rank(["nobody"], 4)[0]
    counts = np.bincount(c.seen.indices, minlength=c.n_items)
    order = np.lexsort((np.arange(c.n_items), -counts))[:4]
    assert got.source == POPULAR and got.items.tolist() == order.tolist()
    assert np.allclose(got.scores, np.log1p(counts[order]))


def test_similar_items_and_neighbours_by_hand():
    c = core("als")
    f = c.model.item_vectors()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    sims = f @ f[2]
    sims[2] = -np.inf
    assert c.similar_items(str(c.item_ids[2]), 3).items.tolist() == np.argsort(-sims, kind="stable")[:3].tolist()
    with pytest.raises(NotFoundError, match="not in the model"):
        c.similar_items("no-such-item", 3)
    x = (c.seen > 0).astype(np.float64).toarray()
    cos = x @ x[0] / np.maximum(np.sqrt(x.sum(1) * x[0].sum()), 1e-12)
    cos[0] = -np.inf
    expected = [u for u in np.argsort(-cos, kind="stable")[:3] if cos[u] > 0]
    assert c.neighbours(str(c.user_ids[0]), 3).items.tolist() == expected
    with pytest.raises(NotFoundError, match="no events"):
        c.neighbours("ghost", 3)


def test_option_ranking_by_mean_win_probability():
    from penchant.data.preference_worlds import plural_world

    world = plural_world(n_users=30, n_items=6, pairs_per_user=20, seed=0)
    model = create("bt").fit(world.pairs)
    options = [str(o) for o in model.option_ids_[:4]]
    got = rank_options(model, model.option_ids_, -1, options)
    idx = np.arange(4)
    prob = model.prob(np.full(16, -1), np.repeat(idx, 4), np.tile(idx, 4)).reshape(4, 4)
    wins = (prob.sum(1) - np.diag(prob)) / 3
    assert [o["id"] for o in got["options"]] == [options[j] for j in np.argsort(-wins, kind="stable")]
    assert np.allclose([o["win_probability"] for o in got["options"]], np.sort(wins)[::-1])
