"""Sequential recommenders: windows, histories, the Markov chain by hand, planted patterns, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset, PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models import Recommender, create, model_class
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
                                         ("sasrec", {"blocks": 1, "loss": "bce"}), ("markov", {}),
                                         ("gru4rec", {"loss": "sampled", "negatives": 8, "sampler": "popularity"})])
def test_learns_a_planted_successor(name, params):
    data = planted_cycles()
    model = create(name, **({"epochs": 30, "max_len": 10, "factors": 32} | params if name != "markov" else params))
    model.fit(data)
    sessions = [[(s + t) % 40 for t in range(5)] for s in range(40)]
    top = model.recommend_sessions(sessions, k=1)[0][:, 0]
    expected = [(s + 5) % 40 for s in range(40)]
    assert np.mean(top == expected) >= 0.95


@pytest.mark.parametrize("name,extra", [("sasrec", {}), ("gru4rec", {}), ("sasrec", {"item_text": "fuse"}),
                                        ("sasrec", {"long_len": 6}), ("sasrec", {"loss": "gbce", "negatives": 8})])
def test_training_is_deterministic_and_saves_exactly(name, extra, tmp_path):
    data = planted_cycles(n_users=80, seed=1)
    if "item_text" in extra:  # a text model needs item text to read
        titles = np.array([f"film {i} about {('cats', 'space', 'love', 'war')[i % 4]}" for i in range(data.n_items)], dtype=object)
        data = dataclasses.replace(data, item_text=titles)
    params = {"epochs": 3, "max_len": 8, "factors": 16, "seed": 7} | extra
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


@pytest.mark.slow
def test_gru4rec_beats_markov_and_ease_on_movielens_leave_last_out(ml100k):
    """ML-100K, leave-last-one-out by time, full ranking: a 20-epoch GRU4Rec clears the
    Markov chain and EASE (the best non-sequential model here) by 10% (NDCG@10 0.0935 against
    0.0769 and 0.0714; 0.0946 at 25 epochs, 0.1069 at 40)."""
    from penchant.data.split import leave_last_out
    from penchant.eval.evaluate import build_target
    from penchant.experiment.run import run

    split = leave_last_out(ml100k, n_test=1, n_valid=1)
    target = build_target(split.train, split.test, (split.valid,))
    ndcg = {name: run(name, params, split.train, split.valid, split.test, ks=[10], target=target).metrics()["ndcg@10"]
            for name, params in (("markov", {}), ("ease", {"lam": 400.0}), ("gru4rec", {"epochs": 20}))}
    assert ndcg["gru4rec"] > 1.1 * max(ndcg["markov"], ndcg["ease"]), ndcg


def test_dpo_loss_by_hand_and_its_robust_form():
    import torch

    from penchant.models.sequential.alignment.losses import dpo_loss

    pw, pl, rw, rl = (torch.tensor([v]) for v in (-1.0, -2.0, -1.5, -1.0))
    margin = 0.5 * ((-1.0 + 1.5) - (-2.0 + 1.0))  # 0.75
    plain = -np.log(1 / (1 + np.exp(-margin)))
    assert float(dpo_loss(pw, pl, rw, rl, beta=0.5)) == pytest.approx(plain)
    eps = 0.2
    flipped = -np.log(1 / (1 + np.exp(margin)))
    assert float(dpo_loss(pw, pl, rw, rl, beta=0.5, flip_rate=eps)) == pytest.approx(
        ((1 - eps) * plain - eps * flipped) / (1 - 2 * eps))


@pytest.mark.parametrize("flip_rate", [0.0, 0.2])
def test_dpo_moves_a_trained_model_towards_the_preferred_item(flip_rate):
    """SASRec learns s → s+1 on planted cycles; after DPO on pairs that prefer s+2 over s+1 (a share
    ε of them flipped, for the robust loss) the model ranks s+2 above s+1 almost everywhere."""
    from penchant.data import PreferencePairs
    from penchant.models.sequential.alignment.finetune import finetune_pairs

    data = planted_cycles()
    model = create("sasrec", epochs=30, max_len=10, factors=32, blocks=1).fit(data)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 40, 2000)
    contexts = np.stack([(s + np.arange(10)) % 40 for s in starts]).astype(np.int64)
    last = contexts[:, -1]
    chosen, rejected = (last + 2) % 40, (last + 1) % 40
    flip = rng.random(len(starts)) < flip_rate
    chosen, rejected = np.where(flip, rejected, chosen), np.where(flip, chosen, rejected)
    sessions = [list((s + np.arange(10)) % 40) for s in range(40)]
    nxt, after_next = np.array([(s + 10) % 40 for s in range(40)]), np.array([(s + 11) % 40 for s in range(40)])

    def prefers_after_next() -> float:
        scores = model.score_sessions(sessions)
        rows = np.arange(40)
        return float(np.mean(scores[rows, after_next] > scores[rows, nxt]))

    assert prefers_after_next() <= 0.05
    pairs = PreferencePairs(np.full(len(starts), -1), chosen, rejected, np.arange(len(starts)), np.array([], dtype=object),
                            data.item_ids, history=contexts)
    losses = finetune_pairs(model, pairs, loss="rdpo" if flip_rate else "dpo", beta=0.5, flip_rate=flip_rate,
                            lr=1e-3, epochs=15)
    assert losses[-1] < losses[0]
    assert prefers_after_next() >= (0.95 if flip_rate == 0 else 0.8)  # flipped labels: noisier gradients


def test_next_item_pairs_pair_liked_next_items_with_disliked_ones():
    from penchant.models.sequential.alignment.pairs import next_item_pairs

    users = np.array([0, 0, 0, 0, 1, 1], np.int32)
    items = np.array([0, 1, 2, 3, 0, 1], np.int32)
    ratings = np.array([5, 5, 1, 4, 5, 5], np.float32)
    times = np.array([0, 1, 2, 3, 0, 1], np.float64)
    ds = Dataset(np.array(["a", "b"], dtype=object), np.array(["i0", "i1", "i2", "i3"], dtype=object), users, items,
                 ratings=ratings, timestamps=times)
    pairs = next_item_pairs(ds, max_len=3)
    # user a: liked next items at positions 1 (i1) and 3 (i3); the only disliked item is i2; user b has none
    assert pairs.winner.tolist() == [1, 3] and pairs.loser.tolist() == [2, 2] and pairs.user.tolist() == [0, 0]
    assert pairs.history.tolist() == [[4, 4, 0], [0, 1, 2]]
    assert pairs.subset([1]).history.tolist() == [[0, 1, 2]] and list(pairs.option_ids) == ["i0", "i1", "i2", "i3"]


def test_hashed_long_term_scores_match_a_direct_computation():
    """SDIM by hand: each candidate averages, per hash, the past items sharing its bucket."""
    import torch

    from penchant.models.sequential.hashed import hashed_interest

    n_items, d, hashes, bits = 7, 4, 3, 2
    module = hashed_interest(n_items, d, hashes, bits, seed=3)
    torch.manual_seed(0)
    torch.nn.init.normal_(module.proj.weight)
    table = torch.cat([torch.randn(n_items, d), torch.zeros(1, d)])
    long = torch.tensor([[7, 7, 0, 3, 3, 5], [1, 2, 4, 6, 0, 2]])
    got = module(long, table).detach().numpy()
    planes = module.planes.numpy().reshape(hashes, bits, d)
    w, e = module.proj.weight.detach().numpy(), table.numpy()

    def code(v, h):
        return sum(int(planes[h, b] @ v > 0) << b for b in range(bits))

    for r, row in enumerate(long.numpy()):
        past = [x for x in row if x != n_items]
        for j in range(n_items):
            total = 0.0
            for h in range(hashes):
                same = [e[x] for x in past if code(e[x], h) == code(e[j], h)]
                if same:
                    total += (w @ np.mean(same, axis=0)) @ e[j]
            assert got[r, j] == pytest.approx(total / hashes, rel=1e-4, abs=1e-5)


def test_long_term_part_needs_the_full_softmax():
    with pytest.raises(ConfigError, match="loss='ce'"):
        create("sasrec", long_len=100, loss="bce")


def test_a_users_mistake_with_a_sequential_model_is_a_penchant_error():
    """Through the classes and functions themselves, not only the registry: a bad setting is a
    ConfigError naming it, data the model cannot use a DataError."""
    from penchant.models.sequential.alignment.finetune import finetune_pairs
    from penchant.models.sequential.alignment.losses import dpo_loss
    from penchant.models.sequential.alignment.pairs import next_item_pairs

    for name, bad in (("sasrec", {"factors": 0}), ("sasrec", {"heads": 3}), ("gru4rec", {"layers": 0}),
                      ("markov", {"smoothing": -1.0}), ("zeroshot", {"decay": 0.0}), ("lastitemknn", {"recent": 0})):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            model_class(name)(**bad)
    with pytest.raises(DataError, match="needs ratings"):
        next_item_pairs(sequences_dataset([[0, 1, 2]], 3), max_len=2)
    import torch

    with pytest.raises(ConfigError, match="flip_rate"):
        dpo_loss(*torch.zeros(4, 1), beta=0.1, flip_rate=0.5)
    n = 3
    pairs = PreferencePairs(np.full(n, -1), np.array([0, 1, 2]), np.array([1, 2, 0]), np.arange(n),
                            np.array([], dtype=object), np.array(["i0", "i1", "i2"], dtype=object))
    with pytest.raises(DataError, match="has no histories"):
        finetune_pairs(model_class("sasrec")(max_len=4), pairs)
    with pytest.raises(DataError, match="histories of 2 items, the model reads 4"):
        finetune_pairs(model_class("sasrec")(max_len=4), dataclasses.replace(pairs, history=np.zeros((n, 2), np.int64)))
    with pytest.raises(ConfigError, match="long_len > 0"):
        finetune_pairs(model_class("sasrec")(long_len=10), pairs)


def _expected_sampled_gradient(s, target, q, k, correct):
    """The exact expectation, over every ordered draw of k negatives (with replacement) from q, of
    the gradient w.r.t. the scores ``s`` of the sampled softmax loss (hits on the target removed)."""
    import itertools

    import torch

    from penchant.models.sequential.neural import sampled_softmax_loss

    grad = np.zeros(len(s))
    for draw in itertools.product(range(len(s)), repeat=k):
        scores = torch.tensor(s, dtype=torch.float64, requires_grad=True)
        idx = torch.tensor(draw)
        neg = scores[idx] - (torch.log(k * torch.tensor(q)[idx]) if correct else 0)
        sampled_softmax_loss(scores[target][None], neg[None], (idx == target)[None]).backward()
        grad += np.prod(np.asarray(q)[list(draw)]) * scores.grad.numpy()
    return grad


def test_log_q_correction_brings_the_sampled_softmax_gradient_to_the_full_one():
    """On 5 items with skewed popularity sampling, enumerated exactly: with the log-Q correction
    the expected gradient of the sampled softmax is close to the full softmax's; without it, far."""
    s, target = np.array([2.0, 0.5, -1.0, 1.0, 0.0]), 3
    q = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    full = np.exp(s) / np.exp(s).sum()
    full[target] -= 1  # d(−log softmax_target)/ds
    corrected = _expected_sampled_gradient(s, target, q, 4, True)
    plain = _expected_sampled_gradient(s, target, q, 4, False)
    err_c, err_p = np.abs(corrected - full).max(), np.abs(plain - full).max()
    assert err_c < 0.04 and err_p > 0.1 and err_c < err_p / 4, (err_c, err_p)  # measured: 0.029 and 0.140


def test_gbce_beta_and_loss_by_hand():
    """β by the paper's formula (α = k/(N−1)); the loss equals BCE on the transformed positive logit
    log(1/(σ(s)^−β − 1)) as the reference code computes it, in float64."""
    import torch

    from penchant.models.sequential.neural import gbce_loss

    model = create("sasrec", loss="gbce", negatives=4, gbce_t=0.5)
    model._pool_size = 9  # α = 4/8 = 0.5, β = 0.5·(0.5·(1 − 2) + 2) = 0.75
    assert model._gbce_beta() == pytest.approx(0.75)
    pos, neg = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([[0.1, 2.0, -0.5, 0.0], [1.0, -1.0, 0.2, 0.4]],
                                                                             dtype=torch.float64)
    hit = torch.tensor([[False, False, False, False], [False, True, False, False]])
    transformed = torch.log(1 / (torch.sigmoid(pos) ** -0.75 - 1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    by_hand = [(bce(transformed[r], torch.tensor(1.0, dtype=torch.float64))
                + sum(bce(neg[r, j], torch.tensor(0.0, dtype=torch.float64)) for j in range(4) if not hit[r, j])) / 5
               for r in range(2)]
    assert float(gbce_loss(pos, neg, hit, 0.75)) == pytest.approx(float(sum(by_hand) / 2), rel=1e-10)
    with pytest.raises(ConfigError, match="gbce_t"):
        create("sasrec", loss="gbce", gbce_t=1.5)
    with pytest.raises(ConfigError, match="sampler"):
        create("gru4rec", sampler="hard")
