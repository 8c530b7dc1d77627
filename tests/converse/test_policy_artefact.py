"""Conversation policy artefacts: every registered policy (oracles aside) trained cheaply on a tiny
setup, saved, loaded, and played on the same episodes gives the same actions; a file that is not an
artefact, a policy this penchant lacks, and another graph are each one DataError naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.converse.artefact import GraphMismatchError, graph_fingerprint, load_policy, policy_info, save_policy
from penchant.converse.policies import create_policy, policy_names
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import DataError
from penchant.models.registry import entry
from tests.conftest import tiny_log

#: every conversation policy a person can talk to (an oracle needs the target)
SERVED = [n for n in policy_names() if not getattr(entry(n, "conversation").cls, "oracle", False)]


def tiny_graph(n_items: int, *, extra: bool = False) -> AttributeGraph:
    """Genres (item % 4), decades (item % 5) and moods (multi-valued: item % 3 and item % 2 + 3) over
    ``n_items`` items; ``extra`` adds a value (another catalogue's graph)."""
    kinds = {"genre": [f"g{i % 4}" for i in range(n_items)], "decade": [f"{1960 + 10 * (i % 5)}s" for i in range(n_items)]}
    keys = sorted({("genre", v) for v in kinds["genre"]} | {("decade", v) for v in kinds["decade"]}
                  | {("mood", f"m{k}") for k in range(5 + extra)})
    rows, cols = [], []
    for j, (kind, value) in enumerate(keys):
        for i in range(n_items):
            held = (kinds[kind][i] == value if kind != "mood" else
                    value in (f"m{i % 3}", f"m{i % 2 + 3}") or (value == "m5" and i % 7 == 0))
            if held:
                rows.append(i)
                cols.append(j)
    types = ("genre", "decade", "mood")
    return AttributeGraph(sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n_items, len(keys))),
                          np.array([v for _, v in keys], dtype=object),
                          np.array([types.index(k) for k, _ in keys], dtype=np.int64), types,
                          np.array([f"{k}={v}" for k, v in keys], dtype=object))


@pytest.fixture(scope="module")
def setup():
    from penchant.converse.experiment import prepare

    ds = tiny_log()
    return prepare(ds, graph=tiny_graph(ds.n_items), episodes=40, valid_episodes=160, model="ease", seed=0)


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):
    """name -> (the trained policy, its saved artefact); trained on first use."""
    folder, cache = tmp_path_factory.mktemp("policies"), {}

    def get(name: str):
        if name not in cache:
            policy = create_policy(name, setup.graph)
            if policy.learned:
                policy.fit(setup.trainer(epochs=1))
            path = folder / f"{name}.npz"
            save_policy(policy, path, graph=setup.graph, meta={"note": "tiny", "episodes": 160})
            cache[name] = (policy, path)
        return cache[name]
    return get


def _played(setup, policy) -> list[tuple]:
    users, targets = setup.test
    return [(r.actions, r.asked, r.turn, r.rank) for r in setup.trainer().play(policy, users, targets, seed=5)]


@pytest.mark.parametrize("name", SERVED)
def test_a_saved_policy_loads_with_what_it_learned_and_acts_the_same(name, setup, trained, tmp_path):
    policy, path = trained(name)
    loaded = load_policy(path, setup.graph)
    assert type(loaded) is type(policy) and loaded.params() == policy.params()
    before, after = policy.state_arrays(), loaded.state_arrays()
    assert sorted(before) == sorted(after)
    assert all(np.array_equal(np.asarray(before[k]), np.asarray(after[k])) for k in before)
    if not policy.ready_untrained:  # it cannot act untrained, so it must keep what it learned
        assert before, f"{name} learned nothing it can save"
    assert _played(setup, loaded) == _played(setup, policy)
    if before:  # a state training could not have left as it found it: every float array 1.5 times over
        changed = {k: a * 1.5 if np.asarray(a).dtype.kind == "f" else a for k, a in before.items()}
        loaded.load_state_arrays(changed)
        save_policy(loaded, tmp_path / "changed.npz", graph=setup.graph, meta={})
        again = load_policy(tmp_path / "changed.npz", setup.graph)
        assert all(np.array_equal(np.asarray(changed[k]), np.asarray(a)) for k, a in again.state_arrays().items())
        assert _played(setup, again) == _played(setup, loaded)
    info = policy_info(path)
    assert info["policy"] == name and info["meta"] == {"note": "tiny", "episodes": 160}
    assert info["graph"] == graph_fingerprint(setup.graph) and info["params"] == json.loads(json.dumps(policy.params()))


def test_bad_artefacts_are_one_data_error_naming_the_file(setup, trained, tmp_path):
    _, path = trained(SERVED[0])
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:200])
    for bad in (junk, cut, tmp_path / "absent.npz"):
        with pytest.raises(DataError, match=str(bad)):
            load_policy(bad, setup.graph)
    with pytest.raises(DataError, match="junk.npz"):
        policy_info(junk)
    from penchant.models.artefact import ArtefactError, load

    with pytest.raises(ArtefactError, match=rf"holds a conversation policy \({SERVED[0]}\), not a model that loads alone"):
        load(path)  # where a model is loaded (penchant recommend, the service's model import)
    # a model artefact of another family
    from penchant.models.registry import create

    model = tmp_path / "model.npz"
    create("pop").fit(setup.split.train).save(model)
    with pytest.raises(DataError, match=r"model.npz: holds a ranking model \(pop\), not a conversation policy"):
        load_policy(model, setup.graph)
    # an artefact naming a policy this penchant does not have
    from penchant.models.artefact import Artefact

    art = Artefact.read(path)
    art.model = "no-such-policy"
    foreign = art.write(tmp_path / "foreign.npz")
    with pytest.raises(DataError, match=r"foreign.npz: names the policy 'no-such-policy'"):
        load_policy(foreign, setup.graph)


def test_another_graph_is_refused_saying_what_differs(setup, trained):
    _, path = trained(SERVED[0])
    n = setup.graph.n_items
    with pytest.raises(GraphMismatchError, match=r"values it was not trained over: mood=m5"):
        load_policy(path, tiny_graph(n, extra=True))
    with pytest.raises(GraphMismatchError, match=rf"trained over {n} items, this graph has {n - 1}"):
        load_policy(path, tiny_graph(n - 1))
    same = setup.graph
    flipped = AttributeGraph(same.items[::-1].tocsr(), same.names, same.types, same.type_names, same.source)
    with pytest.raises(GraphMismatchError, match=r"the same items and values, but other items hold them"):
        load_policy(path, flipped)
    subset = same.subset(["genre", "decade"])
    with pytest.raises(GraphMismatchError, match=r"attribute types genre, decade, mood, this graph has genre, decade"):
        load_policy(path, subset)
    import dataclasses

    assert type(load_policy(path, dataclasses.replace(same, noun="film"))).name == SERVED[0]  # wording is not the graph
