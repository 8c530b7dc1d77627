"""Item text: the cached sentence encoder, item descriptions, the cold-item split, and text-aware
sequential models that rank items nobody has clicked."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Attribute, Dataset
from penchant.data.coldstart import cold_item_split
from penchant.embed import SentenceEncoder, item_descriptions
from penchant.errors import ConfigError
from penchant.eval.cold import chance_ndcg, cold_item_ndcg
from penchant.models import Recommender, create


def test_encoder_caches_by_content_and_model(tmp_path):
    enc = SentenceEncoder(cache=tmp_path)
    texts = ["a space opera with robots", "a quiet romantic comedy", "a space opera with robots"]
    first = enc.encode(texts)
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert enc.encoded_ == 2  # the repeated text is encoded once
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first[0], first[2])
    # similar meaning, closer vectors
    more = enc.encode(["robots fight in outer space"])
    assert more[0] @ first[0] > more[0] @ first[1]
    again = SentenceEncoder(cache=tmp_path)
    assert np.array_equal(again.encode(texts[:2]), first[:2]) and again.encoded_ == 0
    other = SentenceEncoder("some/other-model", cache=tmp_path)
    assert other.cache_path != enc.cache_path


def test_layer_states_are_cached_and_end_in_the_sentence_vector(tmp_path):
    enc = SentenceEncoder(cache=tmp_path)
    texts = ["I'm sorry, I can't help with that.", "Sure, here is how you pick a lock: first", "I'm sorry, I can't help with that."]
    layers = enc.encode_layers(texts)
    assert layers.shape == (3, 6 * 384) and enc.encoded_ == 2
    last = layers[:, -384:] / np.linalg.norm(layers[:, -384:], axis=1, keepdims=True)
    np.testing.assert_allclose(last, enc.encode(texts), atol=1e-4)  # the sentence vector is the last layer, pooled
    again = SentenceEncoder(cache=tmp_path)
    assert np.array_equal(again.encode_layers(texts[:2]), layers[:2]) and again.encoded_ == 0
    assert enc.encode_layers([]).shape == (0, 6 * 384)


def test_layer_states_do_not_depend_on_how_texts_share_a_pass(monkeypatch):
    """Passes are cut by tokens (long texts fewer to a pass): a text encoded alone, or in one padded
    pass with the rest, or in passes of a few tokens, has the same states, in the input's order."""
    from penchant.embed import encoder

    texts = ["Sure.", "word " * 300, "I'm sorry, I can't help with that.", "a b c " * 40, "No.", "Sure."]
    alone = np.stack([SentenceEncoder(cache=False).encode_layers([t])[0] for t in texts])
    monkeypatch.setattr(encoder, "LAYER_PASS_TOKENS", 10**6)
    together = SentenceEncoder(cache=False).encode_layers(texts)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    monkeypatch.setattr(encoder, "LAYER_PASS_TOKENS", 64)
    np.testing.assert_allclose(SentenceEncoder(cache=False).encode_layers(texts), alone, atol=1e-4)
    assert np.array_equal(alone[0], alone[5]) and not np.allclose(alone[0], alone[4], atol=1e-2)
    assert encoder._token_batches(np.array([3, 3, 3, 5, 300]), 64, 10) == [(0, 3), (3, 4), (4, 5)]
    assert encoder._token_batches(np.array([1] * 5), 2, 100) == [(0, 2), (2, 4), (4, 5)]


def test_item_descriptions_read_text_and_item_file_attributes():
    values = np.array(["Comedy", "Drama"], dtype=object)
    genres = Attribute(values, sp.csr_matrix(np.array([[1, 1], [0, 0]], np.float32)))
    ds = Dataset(np.array(["u"], dtype=object), np.array(["a", "b"], dtype=object), np.array([0], np.int32),
                 np.array([0], np.int32), item_attributes={"genre": genres, "kg:actor": genres},
                 item_text=np.array(["Heat", ""], dtype=object))
    assert item_descriptions(ds) == ["Heat. genre: Comedy, Drama", "item b"]
    with pytest.raises(ConfigError, match="no item attribute 'year'"):
        item_descriptions(ds, ["year"])


@pytest.mark.parametrize("name, params", [("zeroshot", {}), ("sasrec", {"item_text": "fuse", "epochs": 1}), ("llmrating", {})])
def test_text_models_refuse_a_log_without_item_text(name, params, monkeypatch):
    from penchant.embed import encoder
    from penchant.errors import DataError

    rng = np.random.default_rng(0)
    ds = Dataset(np.array([f"u{u}" for u in range(50)], dtype=object), np.array([f"i{i}" for i in range(30)], dtype=object),
                 rng.integers(0, 50, 400).astype(np.int32), rng.integers(0, 30, 400).astype(np.int32),
                 ratings=rng.integers(1, 6, 400).astype(np.float32), timestamps=np.arange(400, dtype=np.float64), name="ids-only")
    monkeypatch.setattr(encoder.SentenceEncoder, "__init__", lambda *a, **k: pytest.fail("the encoder was loaded"))
    with pytest.raises(DataError, match="ids-only has no item text and no item attributes, so there is nothing to read"):
        create(name, **params).fit(ds)  # refused before the encoder loads or anything trains


def test_chance_ndcg_by_hand():
    assert chance_ndcg(3, 10) == pytest.approx((1 + 1 / np.log2(3) + 0.5) / 3)
    assert chance_ndcg(100, 1) == pytest.approx(0.01)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 0.5), st.integers(1, 4))
def test_cold_split_never_trains_on_cold_items_and_histories_precede_targets(seed, fraction, min_history):
    rng = np.random.default_rng(seed)
    n_users, n_items, n = 12, 15, 160
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    keep = np.unique(users.astype(np.int64) * n_items + items, return_index=True)[1]
    users, items = users[keep], items[keep]
    times = rng.permutation(len(users)).astype(np.float64)
    ds = Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                 np.array([f"i{i}" for i in range(n_items)], dtype=object), users, items, timestamps=times)
    cs = cold_item_split(ds, fraction=fraction, seed=seed, min_history=min_history)
    cold = set(cs.cold_items.tolist())
    for part in (cs.warm.train, cs.warm.valid):
        assert not cold & set(part.items.tolist())
    assert cs.warm.train.n_interactions + cs.warm.valid.n_interactions + cs.counts["cold_interactions_removed"] == len(ds)
    for e, (u, target, hist) in enumerate(zip(cs.users, cs.targets, cs.sessions())):
        assert target in cold and len(hist) >= min_history
        mine = users == u
        first_cold = min(times[mine & (items == c)].min() for c in cold if (mine & (items == c)).any())
        assert times[mine & (items == target)][0] == first_cold
        expected = items[mine & (times < first_cold)][np.argsort(times[mine & (times < first_cold)])]
        assert np.array_equal(hist, expected)
    assert len(cs.users) + cs.counts["users_with_short_history"] + cs.counts["users_without_cold_items"] == \
        int((np.bincount(users, minlength=n_users) > 0).sum())


@pytest.fixture(scope="module")
def cold_split(ml100k):
    return cold_item_split(ml100k, fraction=0.2, seed=0)


def test_zero_shot_ranks_cold_items_by_text(cold_split):
    model = create("zeroshot").fit(cold_split.warm.train)
    result = cold_item_ndcg(model, cold_split)
    assert result.mean > 2.5 * result.chance, (result.mean, result.chance)


@pytest.mark.slow
def test_text_aware_sasrec_ranks_items_held_out_of_training(cold_split, tmp_path):
    """Items never seen in training get scores from their text: a 6-epoch SASRec with fused
    text ranks the held-out target far above chance among the cold items (0.0796, 5.9× chance
    0.0135); without text it cannot (0.0023: its cold items keep their initial embeddings however
    long it trains, so 2 epochs show it)."""
    fused = create("sasrec", item_text="fuse", epochs=6).fit(cold_split.warm.train)
    plain = create("sasrec", epochs=2).fit(cold_split.warm.train)
    text = cold_item_ndcg(fused, cold_split)
    ids = cold_item_ndcg(plain, cold_split)
    assert text.mean > 3 * text.chance and text.mean > 3 * ids.mean, (text.mean, ids.mean, text.chance)
    restored = Recommender.load(fused.save(tmp_path / "fused.npz"))
    sessions = cold_split.sessions()[:5]
    assert np.array_equal(restored.score_sessions(sessions), fused.score_sessions(sessions))
