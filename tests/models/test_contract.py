"""The contract every registered model keeps, parametrised over the one registry.

In the spirit of implicit's ``RecommenderBaseTestMixin`` and LensKit's ``ScorerTests``: each model is
fitted once on a tiny synthetic log (shared fits), then its answers are checked for shape, exclusion
of seen items, identical answers for external ids after save → load, seed determinism, the one
meaning of ``partial_fit`` and fold-in, and the registry's parameter errors. The simulators' policies
(families ``slate`` and ``long-term``, built for a world rather than fitted on a log) keep theirs in
tests/simulate/test_policy_contract.py.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.data.preference_worlds import plural_world
from penchant.errors import ConfigError
from penchant.experiment import recommend_for
from penchant.models import artefact
from penchant.models.artefact import ArtefactError, load
from penchant.models.preference import PreferenceModel
from penchant.models.protocols import FoldIn, Incremental, ItemVectors, PairwiseModel, Persistent, Ranker, SessionScorer
from penchant.models.registry import FAMILIES, create, entry, model_names
from tests.conftest import tiny_log

#: settings that keep each fit on the tiny fixture to about a second; everything else is the default
QUICK = {
    "bpr": {"epochs": 3, "factors": 8}, "lightgcn": {"epochs": 3, "factors": 8}, "multvae": {"epochs": 3, "hidden": 16},
    "relmf": {"epochs": 3, "factors": 8}, "ubpr": {"epochs": 3, "factors": 8}, "biasedmf": {"epochs": 3, "factors": 8},
    "fm": {"epochs": 3, "factors": 8}, "gru4rec": {"epochs": 2, "factors": 8}, "sasrec": {"epochs": 2, "factors": 8},
    "als": {"factors": 8, "iterations": 5}, "recvae": {"epochs": 3, "hidden": 16, "latent": 8},
    "dpa": {"epochs": 3}, "gpm": {"epochs": 3}, "pal": {"epochs": 3}, "pal-latent": {"epochs": 30}, "pbt": {"epochs": 3},
    "vpl": {"epochs": 3},
}
#: models that cost a language-model request per (user, item) score: their contract test is
#: tests/llm/test_llm_rating.py::test_llm_rating_keeps_the_model_contract, on a catalogue small enough for that
LLM_MODELS = {"llmrating"}
LOG_MODELS = [n for f in ("ranking", "rating", "sequential") for n in model_names(f) if n not in LLM_MODELS]
PAIR_MODELS = model_names("preference")


@lru_cache(maxsize=None)
def fitted(name: str):
    return create(name, **QUICK.get(name, {})).fit(tiny_log())


def test_every_family_is_registered_and_named_once():
    assert set(FAMILIES) == {entry(n).family for n in model_names()}
    assert len(model_names("conversation")) >= 5 and len(PAIR_MODELS) >= 8 and len(LOG_MODELS) >= 19
    assert entry("personal-bt").name == "pbt"  # aliases resolve to one entry


@pytest.mark.parametrize("name", LOG_MODELS)
def test_log_model_contract(name, tmp_path, monkeypatch):
    ds = tiny_log()
    model = fitted(name)
    assert isinstance(model, Ranker) and isinstance(model, Persistent)
    users = np.arange(ds.n_users)
    scores = model.score(users)
    assert scores.shape == (ds.n_users, ds.n_items) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert model.score(users[:3], np.array([4, 1])).shape == (3, 2)
    items, _ = model.recommend(users, k=5)
    assert not any(ds.csr[u, items[u]].nnz for u in users)  # seen items never come back
    # save -> load: the same answers, asked for by external ids
    back = load(model.save(tmp_path / f"{name}.npz"))
    assert type(back) is type(model) and back.params() == model.params()
    assert np.array_equal(back.score(users), scores)
    ids = ["u007", "u042", "stranger"]
    assert recommend_for(back, ids, 5).lists == recommend_for(model, ids, 5).lists
    assert recommend_for(back, ids, 5).fallback == {"stranger": "popular"}
    # memory-mapped (as the service's workers load it; every numeric array mapped here): read-only
    # state answers the same, the first load writing the arrays out, the second mapping them
    monkeypatch.setattr(artefact, "MAP_MIN_BYTES", 0)
    for _ in range(2):
        mapped = load(tmp_path / f"{name}.npz", mapped=tmp_path / "arrays")
        assert np.array_equal(mapped.score(users), scores)
        assert recommend_for(mapped, ids, 5).lists == recommend_for(model, ids, 5).lists
    assert (tmp_path / "arrays" / "complete").exists() and any((tmp_path / "arrays").glob("*.npy"))
    with pytest.raises(ConfigError, match="no parameter 'bogus'"):
        create(name, bogus=1)


@pytest.mark.parametrize("name", [n for n in LOG_MODELS if any(p.name == "seed" for p in entry(n).params())])
def test_same_seed_gives_the_same_model(name):
    again = create(name, **QUICK.get(name, {})).fit(tiny_log())
    assert np.array_equal(again.score(np.arange(10)), fitted(name).score(np.arange(10)))


@pytest.mark.parametrize("name", [n for n in LOG_MODELS if issubclass(entry(n).cls, Incremental)])
def test_partial_fit_adds_events_and_users(name):
    """partial_fit has one meaning: the events are added to what the model knows about their users."""
    ds = tiny_log()
    model = create(name, **QUICK.get(name, {})).fit(ds.subset(ds.users != 3))  # u003 is known but has no events
    history = ds.items[ds.users == 3]  # in time order
    newcomer = Dataset(np.array(["u003", "newcomer"], dtype=object), ds.item_ids,
                       np.repeat(np.array([0, 1], np.int32), len(history)), np.tile(history, 2).astype(np.int32),
                       timestamps=np.tile(np.arange(len(history), dtype=np.float64), 2))
    if isinstance(model, FoldIn):
        anonymous = model.score_history(history)
    n = model.n_users_
    model.partial_fit(newcomer)
    new = int(model.user_index(["newcomer"])[0])
    assert new == n and model.n_users_ == n + 1 and model.user_index(["u003"])[0] == 3
    items, _ = model.recommend(np.array([3, new]), k=5)
    assert not set(items.ravel()) & set(history)  # added events count as seen
    assert np.allclose(model.score(np.array([new]))[0], model.score(np.array([3]))[0], atol=1e-5)
    if isinstance(model, FoldIn):  # fold-in answers a user as partial_fit would, without changing the model
        assert np.allclose(model.score(np.array([new]))[0], anonymous, atol=1e-4)


def test_fold_in_answers_an_unknown_user_from_history():
    ds = tiny_log()
    model = fitted("als")
    history = Dataset(np.array(["walk-in"], dtype=object), np.array(["item-3", "item-5", "no-such-item"], dtype=object),
                      np.zeros(3, np.int32), np.array([0, 1, 2], np.int32))
    answers = recommend_for(model, ["walk-in", "u001"], 5, history)
    assert answers.fallback == {"walk-in": "fold-in"} and answers.unknown_items == 1
    got = [i for i, _ in answers.lists["walk-in"]]
    assert "item-3" not in got and "item-5" not in got
    scores = model.score_history(model.item_index(["item-3", "item-5"]))
    scores[model.item_index(["item-3", "item-5"])] = -np.inf
    assert got == [str(model.item_ids_[i]) for i in np.argsort(-scores, kind="stable")[:5]]
    known = [i for i, _ in answers.lists["u001"]]
    assert not set(known) & set(ds.item_ids[ds.csr[1].indices])


def test_capabilities_are_found_by_isinstance():
    als, ease, sasrec = fitted("als"), fitted("ease"), fitted("sasrec")
    assert isinstance(als, ItemVectors) and als.item_vectors().shape == (als.n_items_, 8)
    assert not isinstance(ease, ItemVectors) and isinstance(ease, FoldIn) and isinstance(ease, Incremental)
    assert isinstance(sasrec, SessionScorer) and not isinstance(als, SessionScorer)
    assert not isinstance(fitted("bpr"), FoldIn) and not isinstance(fitted("pop"), Incremental)


@lru_cache(maxsize=None)
def pair_world():
    return plural_world(n_users=40, n_items=12, pairs_per_user=20, seed=0)


@pytest.mark.parametrize("name", PAIR_MODELS)
def test_preference_model_contract(name, tmp_path):
    pairs = pair_world().pairs
    model = create(name, **QUICK.get(name, {})).fit(pairs)
    assert isinstance(model, PairwiseModel) and isinstance(model, PreferenceModel)
    users, a, b = pairs.user[:50], pairs.winner[:50], pairs.loser[:50]
    p = model.prob(users, a, b)
    assert p.shape == (50,) and ((p >= 0) & (p <= 1)).all()
    assert np.allclose(model.margin(users, a, b), -model.margin(users, b, a))
    back = load(model.save(tmp_path / f"{name}.npz"))
    assert np.array_equal(back.prob(users, a, b), p)
    assert list(back.option_ids_) == list(pairs.option_ids.astype(str)) and list(back.user_ids_) == list(pairs.user_ids.astype(str))
    with pytest.raises(ConfigError, match="no parameter 'bogus'"):
        create(name, bogus=1)


@pytest.mark.parametrize("name", PAIR_MODELS)
def test_preference_models_score_new_text_through_their_own_pipeline(name, tmp_path):
    """Options with text (bag-of-words features): a reply given as text is scored exactly as the
    same option by id, for each user, before and after save → load; a model fitted on ids, or one
    that reads no text, says so in one ConfigError."""
    from dataclasses import replace

    pairs = pair_world().pairs
    words = np.array([f"reply{i % 6} tone{i % 3} size{i % 4} mood{i % 5}" for i in range(pairs.n_options)], dtype=object)
    texty = replace(pairs, option_text=words)
    users, a, b = pairs.user[:40], pairs.winner[:40], pairs.loser[:40]
    if "features" not in {p.name for p in entry(name).params()}:
        model = create(name, **QUICK.get(name, {})).fit(texty)
        with pytest.raises(ConfigError, match="option ids"):
            model.prob_text(words[a], words[b], users=users)
        return
    model = create(name, features="bow", **QUICK.get(name, {})).fit(texty)
    by_text = model.prob_text(words[a], words[b], users=users)
    np.testing.assert_allclose(by_text, model.prob(users, a, b), rtol=1e-5, atol=1e-6)
    back = load(model.save(tmp_path / f"{name}.npz"))
    np.testing.assert_allclose(back.prob_text(words[a], words[b], users=users), by_text, rtol=1e-6)
    assert back.n_options_ == pairs.n_options  # the new options were never kept
    fresh = np.array(["reply9 tone1 size2", "mood4 reply0"], dtype=object)
    assert np.isfinite(back.prob_text(fresh, fresh[::-1])).all()
    with pytest.raises(ConfigError, match="option ids"):
        create(name, **QUICK.get(name, {})).fit(texty).prob_text(words[a], words[b])


def test_one_converter_with_one_set_of_rules():
    assert create("als", values="yes").values is True and create("dpa", given="off").given is False
    for name, key in (("als", "values"), ("dpa", "given")):  # both families: a bad boolean is an error
        with pytest.raises(ConfigError, match=f"{key}='banana' is not a boolean"):
            create(name, **{key: "banana"})
    with pytest.raises(ConfigError, match="not a valid"):
        create("pbt", factors="many")
    with pytest.raises(ConfigError, match="is a preference model"):
        create("bt", family="ranking")
    with pytest.raises(ConfigError, match="unknown model 'svd'"):
        create("svd")


def test_artefact_errors_name_the_file(tmp_path):
    path = fitted("pop").save(tmp_path / "pop.npz")
    raw = bytearray(path.read_bytes())
    (tmp_path / "text.npz").write_text("not a model")
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    flipped = raw.copy()
    middle = len(raw) // 2
    flipped[middle:middle + 16] = bytes(16)
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    for bad in ("text.npz", "cut.npz", "flipped.npz", "missing.npz"):
        with pytest.raises(ArtefactError, match=bad):
            load(tmp_path / bad)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__meta__"] = np.array(str(arrays["__meta__"]).replace('"format_version": 2', '"format_version": 99'))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ArtefactError, match="format version 99"):
        load(tmp_path / "future.npz")


def test_training_by_epochs_reports_epochs_validation_and_an_eta():
    from penchant.data.split import random_holdout
    from penchant.eval import validator
    from penchant.models.training import training_progress

    split = random_holdout(tiny_log(), (0.8, 0.2, 0.0), seed=0)
    seen = []
    with training_progress(seen.append):
        create("bpr", epochs=4, factors=8, eval_every=1, patience=10).fit(split.train, validator(split.train, split.valid))
    assert [s.epoch for s in seen] == [1, 2, 3, 4] and all(s.epochs == 4 for s in seen)
    assert np.isfinite([s.value for s in seen]).all()
    assert seen[-1].best == max(s.value for s in seen) and seen[-1].eta_seconds == 0
    assert str(seen[0]).startswith("epoch 1/4 · valid ") and "ETA ≤ " in str(seen[0])


def test_a_model_that_reads_given_attributes_refuses_new_text():
    """DPA with given=True reads each option's known attribute scores, which a new reply lacks."""
    from dataclasses import replace

    from penchant.data.preference_worlds import directional_world

    world = directional_world(seed=0)
    pairs = replace(world.pairs, option_text=np.array([f"opt{i} w{i % 3}" for i in range(world.pairs.n_options)],
                                                      dtype=object))
    model = create("dpa", attributes=0, given=True, features="bow", epochs=2).fit(pairs)
    with pytest.raises(ConfigError, match="given attributes"):
        model.prob_text(["opt1 w1"], ["opt2 w2"])
    assert model.n_options_ == pairs.n_options
