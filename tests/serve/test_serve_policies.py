"""Every learned conversation policy the registry holds, served over HTTP from its saved artefact, on
SQLite and PostgreSQL: trained from the store through the endpoint (tiny epochs and episodes), a
conversation played through with ``policy=``, the same policy served by a fresh app over the same
data folder and database, an artefact imported for another version, bad artefacts and oracles
refused with the field named. Generic over the registry: a policy registered later is covered."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

from penchant.converse.policies import create_policy, policy_names
from penchant.models.registry import entry
from tests.serve.server import ADMIN, clustered_events


def _cls(name: str) -> type:
    return entry(name, "conversation").cls


ORACLES = [n for n in policy_names() if getattr(_cls(n), "oracle", False)]
SERVED = [n for n in policy_names() if n not in ORACLES]
LEARNED = [n for n in SERVED if _cls(n).learned]
#: learned policies that cannot act before they are trained (409 until then)
NEED_TRAINING = [n for n in LEARNED if not _cls(n).ready_untrained]
GENRES = ["drama", "comedy", "horror", "scifi"]


def films() -> list[dict]:
    """40 items with a genre (in turn) and a decade (1960s–2000s in turn)."""
    return [{"id": f"i{i}", "title": f"Film {i}", "categories": [GENRES[i % 4]],
             "attributes": {"decade": f"{1960 + 10 * (i % 5)}s"}} for i in range(40)]


@dataclass
class Service:
    client: object
    folder: object
    url: str | None
    version: int
    events: list[dict]


def _app(folder, url):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    client = TestClient(create_app(load_settings(folder, database_url=url, env={}), admin_key=ADMIN))
    client.headers["Authorization"] = f"Bearer {ADMIN}"
    return client


def _listed(client) -> dict:
    return {p["policy"]: p for p in client.get("/v1/conversation-policies").json()}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, tmp_path_factory):
    """A service over a store of 40 films and two taste clusters, an itemknn version deployed, and
    every learned policy trained for it through the endpoint (1 epoch, 60 episodes)."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_server").database()
    folder = tmp_path_factory.mktemp(request.param) / "data"
    events = clustered_events()
    with _app(folder, url) as client:
        client.put("/v1/items", json=films())
        client.post("/v1/feedback", json=events)
        host = client.app.state.service.host
        version = host.wait(client.post("/v1/models/train", json={"model": "itemknn", "activate": True}).json()["id"])
        assert version["status"] == "ready", version
        listed = _listed(client)
        assert set(listed) == set(SERVED)
        for name in NEED_TRAINING:  # refused until trained, naming the route
            assert listed[name]["status"] == "untrained"
            refused = client.post("/v1/conversations", json={"policy": name})
            assert refused.status_code == 409 and f"POST /v1/conversation-policies/{name}/train" in refused.text
        for name in LEARNED:
            started = client.post(f"/v1/conversation-policies/{name}/train", json={"epochs": 1, "episodes": 60})
            assert started.status_code == 202, started.text
        end = time.time() + 240
        while time.time() < end and any(listed[n].get("trained") is not True and listed[n]["status"] != "failed"
                                        for n in LEARNED):
            time.sleep(0.2)
            listed = _listed(client)
        for name in LEARNED:
            assert listed[name]["status"] == "ready" and listed[name]["trained"] is True, listed[name]
        yield Service(client, folder, url, version["id"], events)


def _talk(client, name: str, user: str, wanted: dict, **extra) -> list[dict]:
    """Play a conversation with ``policy=name`` as ``user`` who wants ``wanted`` (answering truly);
    every answer the service gave, in order."""
    r = client.post("/v1/conversations", json={"user_id": user, "policy": name, **extra})
    assert r.status_code == 201, r.text
    talk = r.json()
    answers = [talk]
    for _ in range(20):
        move = talk["next"]
        if move is None:
            break
        if move["kind"] == "question":
            labels = [v["label"].split(": ", 1) for v in move["values"]]
            has = [value in wanted["categories"] if kind == "category" else wanted["attributes"].get(kind) == value
                   for kind, value in labels]
            body = {"yes": has[0]} if len(has) == 1 else {"values": [v["value"] for v, h in zip(move["values"], has) if h]}
        else:
            ids = [x["id"] for x in move["items"]]
            body = {"item": wanted["id"] if wanted["id"] in ids else None}
        talk = client.post(f"/v1/conversations/{talk['id']}/answer", json=body).json()
        answers.append(talk)
    assert talk["done"] and talk["policy"] == name
    return answers


def _moves(answers: list[dict]) -> list:
    """Each move the service made: (kind, values asked, items shown), None at the end."""
    return [None if a["next"] is None else (a["next"]["kind"], [v["value"] for v in a["next"]["values"]],
                                            [x["id"] for x in a["next"]["items"]]) for a in answers]


@pytest.mark.parametrize("name", LEARNED)
def test_each_learned_policy_trains_from_the_store_and_converses(service, name):
    """Trained for the deployed version with its metrics; a conversation reaches a list that never
    shows what the user already has; the artefact is the one served."""
    from penchant.converse.artefact import graph_fingerprint, load_policy, policy_info

    client = service.client
    status = _listed(client)[name]
    assert status["version"] == service.version and status["model"] == "itemknn" and status["epochs"] == 1
    assert status["train_episodes"] >= 10 and 0 <= status["sr@15"] <= 1
    talks = client.app.state.service.talks
    graph = talks.graph(client.app.state.service.host.deployed)
    path = talks.learned.path(name, service.version)
    saved = load_policy(path, graph).state_arrays()
    served = talks.learned.policy(name, graph, service.version).state_arrays()
    assert sorted(saved) == sorted(served) and all(np.array_equal(saved[k], served[k]) for k in saved)
    assert policy_info(path)["graph"] == graph_fingerprint(graph)  # trained over the graph it serves
    wanted = films()[39]
    seen = {e["item_id"] for e in service.events if e["user_id"] == "u1"}
    answers = _talk(client, name, "u1", wanted)
    lists = [a["next"]["items"] for a in answers if a["next"] is not None and a["next"]["kind"] == "recommendation"]
    assert lists, f"{name} never recommended"
    assert all(len(items) <= 10 and not seen & {x["id"] for x in items} for items in lists)
    # a subset of the attributes is another graph: refused, naming the field
    subset = client.post("/v1/conversations", json={"policy": name, "attributes": ["category"]})
    assert subset.status_code == 422 and subset.json()["detail"].startswith("attributes:"), subset.text
    assert client.post("/v1/conversations", json={"policy": name, "attributes": ["decade", "category"]}).status_code == 201


def test_oracles_are_never_offered(service, tmp_path):
    from penchant.converse.artefact import save_policy

    client = service.client
    assert ORACLES, "the registry holds an oracle (oracle-asker)"
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ConversationIn"]
    assert schema["properties"]["policy"]["enum"] == SERVED
    talks = client.app.state.service.talks
    graph = talks.graph(client.app.state.service.host.deployed)
    for name in ORACLES:
        r = client.post("/v1/conversations", json={"policy": name})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "policy"]
        assert all(f"'{n}'" in r.json()["detail"][0]["msg"] for n in SERVED)
        assert client.post(f"/v1/conversation-policies/{name}/train", json={}).status_code == 422
        save_policy(create_policy(name, graph), tmp_path / "oracle.npz", graph=graph, meta={})
        r = client.post("/v1/conversation-policies/import", content=(tmp_path / "oracle.npz").read_bytes())
        assert r.status_code == 422 and "it is an oracle" in r.text, r.text
    assert client.post("/v1/conversation-policies/maxent/train", json={}).status_code == 422  # learns nothing
    r = client.post(f"/v1/conversation-policies/{LEARNED[0]}/train", json={"params": {"no_such": 1}})
    assert r.status_code == 422 and r.json()["detail"].startswith("params: ") and "no_such" in r.text


def test_bad_artefacts_are_refused_naming_the_problem(service, tmp_path):
    from penchant.converse.artefact import save_policy

    client = service.client
    before = _listed(client)

    def imported(data: bytes):
        return client.post("/v1/conversation-policies/import", content=data)

    r = imported(b"not an artefact")
    assert r.status_code == 422 and r.json()["detail"].startswith("body: not a readable policy artefact"), r.text
    model = service.folder / "models" / f"v{service.version}" / "model.npz"
    r = imported(model.read_bytes())
    assert r.status_code == 422 and "holds a ranking model (itemknn), not a conversation policy" in r.text, r.text
    graph = client.app.state.service.talks.graph(client.app.state.service.host.deployed)
    other = graph.subset(["category"])
    save_policy(create_policy(LEARNED[0], other), tmp_path / "other.npz", graph=other, meta={})
    r = imported((tmp_path / "other.npz").read_bytes())
    assert r.status_code == 422 and "not trained over the deployed version's attribute graph" in r.text, r.text
    assert "this graph has category, decade" in r.text
    assert str(tmp_path) not in r.text and str(service.folder) not in r.text  # no file names of ours
    assert _listed(client) == before  # nothing installed


def test_a_fresh_app_over_the_same_data_serves_the_same_saved_policies(service):
    """A restart: a new app over the same data folder and database reads the artefacts and converses
    exactly as the first one did."""
    wanted = films()[38]
    first = {name: _moves(_talk(service.client, name, "u2", wanted)) for name in LEARNED}
    old = _listed(service.client)
    with _app(service.folder, service.url) as again:
        assert _listed(again) == old
        for name in LEARNED:
            assert _moves(_talk(again, name, "u2", wanted)) == first[name]


def test_an_activation_asks_for_training_again_and_an_artefact_can_be_imported(service):
    """After a new version goes live, a policy that cannot act untrained is 409 again; importing the
    artefact trained for the previous version (the same items, so the same graph) serves it; once the
    stored items' attributes change the graph, it is 409 again, saying what differs."""
    client = service.client
    host = client.app.state.service.host
    v2 = host.wait(client.post("/v1/models/train", json={"model": "pop", "activate": True}).json()["id"])["id"]
    listed = _listed(client)
    for name in LEARNED:
        assert listed[name]["version"] == v2 and listed[name]["trained"] is False
    for name in NEED_TRAINING:
        assert client.post("/v1/conversations", json={"policy": name}).status_code == 409
    for name in LEARNED:
        data = client.app.state.service.talks.learned.path(name, service.version).read_bytes()
        r = client.post("/v1/conversation-policies/import", content=data)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "ready" and r.json()["imported"] is True and r.json()["version"] == v2
        _talk(client, name, "u3", films()[5])
    # the stored items' attributes change the graph: what a policy learned no longer fits it
    client.put("/v1/items", json=[dict(films()[i], categories=[GENRES[i % 4], "western"]) for i in (0, 1)])
    for name in LEARNED:
        r = client.post("/v1/conversations", json={"policy": name})
        assert r.status_code == 409 and "values it was not trained over: category=western" in r.text, r.text
        assert f"POST /v1/conversation-policies/{name}/train" in r.text
