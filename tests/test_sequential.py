"""Sequential recommenders: windows, histories, the Markov chain by hand, planted patterns, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset
from penchant.models import Recommender, create
from penchant.models.sequential.base import pad_left, windows


def sequences_dataset(seqs: list[list[int]], n_items: int, offset: float = 0.0) -> Dataset:
    """One user per sequence, items in the given order (timestamps increase along it)."""
    users = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs]).astype(np.int32)
    items = np.concatenate([np.asarray(s, np.int32) for s in seqs])
    times = offset + np.concatenate([np.arange(len(s), dtype=np.float64) for s in seqs])
    return Dataset(np.array([f"u{k}" for k in range(len(seqs))], dtype=object),
                   np.array([f"i{k}" for k in range(n_items)], dtype=object), users, items, timestamps=times)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 9))
def test_windows_hold_every_transition_once(lengths, length):
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.arange(indptr[-1], dtype=np.int64)  # item = its position, so transitions are (p, p+1)
    w_ptr, w_items = windows(indptr, items, length)
    sizes = np.diff(w_ptr)
    assert sizes.max() <= length + 1
    pairs = [(a, b) for s, e in zip(w_ptr[:-1], w_ptr[1:]) for a, b in zip(w_items[s:e - 1], w_items[s + 1:e])]
    expected = [(p, p + 1) for s, e in zip(indptr[:-1], indptr[1:]) for p in range(s, e - 1)]
    assert sorted(pairs) == sorted(expected)


def test_pad_left_right_aligns_the_latest_items():
    indptr = np.array([0, 3, 3, 8])
    items = np.arange(8)
    out = pad_left(indptr, items, np.array([0, 1, 2]), 4, pad=-1)
    assert out.tolist() == [[-1, 0, 1, 2], [-1, -1, -1, -1], [4, 5, 6, 7]]


def test_markov_chain_by_hand():
    # transitions: 0→1 twice, 1→2 once, 0→2 once; item shares: 0: 3/8, 1: 2/8, 2: 3/8
    train = sequences_dataset([[0, 1, 2], [0, 1], [0, 2, 2]], 3)
    model = create("markov", smoothing=2.0).fit(train)
    prior = np.array([3, 2, 3]) / 8
    after_0 = (np.array([0, 2, 1]) + 2 * prior) / (3 + 2)
    after_2 = (np.array([0, 0, 1]) + 2 * prior) / (1 + 2)
    got = model.score_sessions([[2, 0], [1, 2]])
    assert np.allclose(got[0], after_0) and np.allclose(got[1], after_2)


def test_partial_fit_extends_histories_and_seen_items():
    train = sequences_dataset([[0, 1, 2], [3, 4]], 6)
    later = sequences_dataset([[5]], 6, offset=10.0)  # user 0 only
    model = create("lastitemknn", recent=3).fit(train)
    model.partial_fit(later)
    assert np.allclose(model.score(np.array([0])), model.score_sessions([[0, 1, 2, 5]]))
    assert np.allclose(model.score(np.array([1])), model.score_sessions([[3, 4]]))
    assert model.train_[0].toarray().ravel().tolist() == [1, 1, 1, 0, 0, 1]


def planted_cycles(n_users: int = 300, n_items: int = 40, length: int = 25, seed: int = 0) -> Dataset:
    """Each user walks the cycle i → i+1 (mod n) from a random start: the next item is certain."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    return sequences_dataset([list((s + np.arange(length)) % n_items) for s in starts], n_items)


@pytest.mark.parametrize("name,params", [("sasrec", {"blocks": 1}), ("gru4rec", {}),
                                         ("gru4rec", {"loss": "bpr-max", "negatives": 16}),
                                         ("sasrec", {"blocks": 1, "loss": "bce"}), ("markov", {})])
def test_learns_a_planted_successor(name, params):
    data = planted_cycles()
    model = create(name, **({"epochs": 30, "max_len": 10, "factors": 32} | params if name != "markov" else params))
    model.fit(data)
    sessions = [[(s + t) % 40 for t in range(5)] for s in range(40)]
    top = model.recommend_sessions(sessions, k=1)[0][:, 0]
    expected = [(s + 5) % 40 for s in range(40)]
    assert np.mean(top == expected) >= 0.95


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_training_is_deterministic_and_saves_exactly(name, tmp_path):
    data = planted_cycles(n_users=80, seed=1)
    params = {"epochs": 3, "max_len": 8, "factors": 16, "seed": 7}
    a = create(name, **params).fit(data)
    b = create(name, **params).fit(data)
    users = np.arange(80)
    assert np.array_equal(a.score(users), b.score(users))
    restored = Recommender.load(a.save(tmp_path / "m.npz"))
    assert np.array_equal(restored.score(users), a.score(users))
    assert np.array_equal(restored.score_sessions([[1, 2, 3]]), a.score_sessions([[1, 2, 3]]))


def test_session_items_outside_the_catalogue_are_an_error():
    model = create("markov").fit(sequences_dataset([[0, 1]], 2))
    with pytest.raises(Exception, match="outside"):
        model.score_sessions([[0, 5]])


def test_gru4rec_beats_markov_and_ease_on_movielens_leave_last_out(ml100k):
    """ML-100K, leave-last-one-out by time, full ranking: a 40-epoch GRU4Rec clears the
    Markov chain and EASE (the best non-sequential model here) by 10%."""
    from penchant.data.split import leave_last_out
    from penchant.eval.evaluate import build_target
    from penchant.eval.experiment import run

    split = leave_last_out(ml100k, n_test=1, n_valid=1)
    target = build_target(split.train, split.test, (split.valid,))
    ndcg = {name: run(name, params, split.train, split.valid, split.test, ks=[10], target=target).metrics()["ndcg@10"]
            for name, params in (("markov", {}), ("ease", {"lam": 400.0}), ("gru4rec", {"epochs": 40}))}
    assert ndcg["gru4rec"] > 1.1 * max(ndcg["markov"], ndcg["ease"]), ndcg
