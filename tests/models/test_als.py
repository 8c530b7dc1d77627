"""ALS through `implicit`: accuracy on MovieLens and fold-in of users without refitting."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.eval import build_target, evaluate
from penchant.models import Recommender, create


def test_als_beats_itemknn_and_pop(ml100k_split):
    sp = ml100k_split
    target = build_target(sp.train, sp.test, (sp.valid,))
    ndcg = {name: evaluate(create(name).fit(sp.train), sp.train, sp.test, ks=[10], target=target,
                           beyond_accuracy=False).metrics()["ndcg@10"] for name in ("als", "itemknn", "pop")}
    assert ndcg["als"] > ndcg["itemknn"] > ndcg["pop"]


def test_fold_in_is_close_to_a_full_refit(ml100k_split):
    """Users absent at fit time, folded in from their events, get nearly the refit's lists."""
    sp = ml100k_split
    train = sp.train
    held = np.arange(0, train.n_users, 47)  # 21 users
    keep = ~np.isin(train.users, held)
    without = train.subset(keep)
    folded = create("als", seed=3).fit(without)
    history = train.csr[held]
    folded.partial_fit(train.subset(np.isin(train.users, held)))
    full = create("als", seed=3).fit(train)
    a, _ = folded.recommend(held, k=10)
    b, _ = full.recommend(held, k=10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)])
    # the two fits differ in their item factors (21 users fewer), so lists agree largely, not exactly
    print(f"fold-in vs refit: top-10 overlap {overlap:.3f}")
    assert overlap >= 0.85, overlap
    sa, sb = folded.score(held), full.score(held)
    corr = np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(sa, sb)])
    print(f"fold-in vs refit: mean score correlation {corr:.4f}")
    assert corr >= 0.98, corr
    # folded-in users' own items are excluded from their recommendations
    assert all(history[r, a[r]].nnz == 0 for r in range(len(held)))


def test_fold_in_solves_the_system_implicit_fits(ml100k_split):
    """A fitted user's own history folded in gives back their fitted factor: fold-in reads the
    confidence as `implicit` does (α·r), not 1 + α·r, which put it 1.5× off in norm."""
    model = create("als", iterations=30).fit(ml100k_split.train)
    users = np.arange(0, ml100k_split.train.n_users, 60)
    gap = [np.linalg.norm(model.fold_in(model.train_[u].indices) - model.user_factors_[u])
           / np.linalg.norm(model.user_factors_[u]) for u in users]
    assert max(gap) < 0.03, gap


def test_fold_in_adds_a_new_user(ml100k_split):
    train = ml100k_split.train
    model = create("als").fit(train)
    n = model.n_users_
    items = train.csr[5].indices
    events = Dataset(np.array(["newcomer"]), train.item_ids, np.zeros(len(items), np.int32), items.astype(np.int32))
    anonymous = model.score_history(items)  # the model is unchanged by it
    assert model.n_users_ == n and model.user_index(["newcomer"])[0] == -1
    model.partial_fit(events)
    assert model.n_users_ == n + 1 and model.user_index(["newcomer"])[0] == n
    assert np.allclose(model.score(np.array([n]))[0], anonymous, atol=1e-4)
    rec_new, _ = model.recommend(np.array([n]), k=10)
    rec_old, _ = model.recommend(np.array([5]), k=10)
    assert not set(rec_new[0]) & set(items)  # the newcomer's items count as seen
    assert len(set(rec_new[0]) & set(rec_old[0])) >= 7  # same history, nearly the same list
    before = model.score(np.array([n]))[0]
    model.partial_fit(events.subset(np.arange(3)))  # adding events changes the user's answer, not replaces
    assert model.train_[n].nnz == len(items) and np.allclose(model.score(np.array([n]))[0], before, atol=1e-4)


def test_als_save_load(ml100k_split, tmp_path):
    model = create("als", factors=16).fit(ml100k_split.train)
    back = Recommender.load(model.save(tmp_path / "als.npz"))
    users = np.arange(0, 943, 29)
    assert np.array_equal(back.score(users), model.score(users))
    back.partial_fit(ml100k_split.train.subset(ml100k_split.train.users == 0))  # fold-in works after loading
    assert list(back.user_ids_[:3]) == list(ml100k_split.train.user_ids[:3].astype(str))
