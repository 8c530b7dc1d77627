"""Two replicas (apps with their own data folders) on one PostgreSQL database: a version imported
through one is served by the other from the database's copy; activation and rollback through one
are what the other answers with on its next request, even with its listener stopped; a key revoked
through one is refused by the other at once; a damaged file in a replica's cache is fetched again;
an event through one changes the other's (cached) answer; the listener alone loads a new version."""

from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa

from tests.serve.server import ADMIN, clustered_events


@pytest.fixture(scope="module")
def fleet(postgres_server, tmp_path_factory):
    """Replicas ``a`` and ``b`` (TestClients) over one fresh database, versions stored in 512-byte
    chunks (so every file is several), catalogues of 8 items or more served through an approximate
    index, and the ids of four ready versions: v_pop (active), v_knn, v_als (with its index) and
    v_imp (v_knn's artefact imported through ``a``)."""
    from fastapi.testclient import TestClient

    import penchant.serve.fleet as fleet_module
    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    url, root = postgres_server.database(), tmp_path_factory.mktemp("fleet")
    config = root / "service.toml"
    config.write_text("[service]\nann_min_items = 8\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fleet_module, "CHUNK_BYTES", 512)
        apps = {name: create_app(load_settings(root / name, database_url=url, config_file=config, env={}),
                                 admin_key=ADMIN) for name in ("a", "b")}
        with TestClient(apps["a"]) as a, TestClient(apps["b"]) as b:
            for c in (a, b):
                c.headers["Authorization"] = f"Bearer {ADMIN}"
            assert a.post("/v1/feedback", json=clustered_events(n_users=20, n_items=16, per_user=4)).status_code == 200
            ids = {}
            for model, activate, params in (("pop", True, {}), ("itemknn", False, {}),
                                            ("als", False, {"factors": 4, "iterations": 2})):
                v = a.post("/v1/models/train", json={"model": model, "activate": activate, "params": params}).json()["id"]
                assert apps["a"].state.service.host.wait(v, 60)["status"] == "ready"
                ids[model] = v
            artefact = (root / "a" / "models" / f"v{ids['itemknn']}" / "model.npz").read_bytes()
            imported = a.post("/v1/models/import", content=artefact)
            assert imported.status_code == 201, imported.text
            yield {"a": a, "b": b, "apps": apps, "root": root, "pop": ids["pop"], "knn": ids["itemknn"],
                   "als": ids["als"], "imp": imported.json()["id"]}


def _manifest(fleet, version: int) -> dict:
    with fleet["apps"]["a"].state.service.store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT files FROM model_versions WHERE id = :v"), {"v": version}).scalar()


def _model(client, user: str = "u0") -> str:
    r = client.get(f"/v1/users/{user}/recommendations?k=3")
    assert r.status_code == 200, r.text
    return r.json()["model"]


def test_a_version_imported_through_one_replica_is_served_by_the_other(fleet):
    a, b, imp = fleet["a"], fleet["b"], fleet["imp"]
    folder = fleet["root"] / "b" / "models" / f"v{imp}"
    assert not folder.exists()  # nothing of it on b's disk yet
    store = fleet["apps"]["a"].state.service.store
    with store.engine.connect() as conn:
        chunks = conn.execute(sa.select(sa.func.count()).select_from(sa.table("version_chunks"))
                              .where(sa.column("version") == imp, sa.column("path") == "model.npz")).scalar()
    manifest = _manifest(fleet, imp)
    assert chunks == -(-manifest["model.npz"]["size"] // 512) > 1  # stored in pieces
    assert a.post(f"/v1/models/{imp}/activate").status_code == 200
    assert _model(b).startswith(f"itemknn:v{imp}")  # b's very next answer: fetched from the database
    assert hashlib.sha256((folder / "model.npz").read_bytes()).hexdigest() == manifest["model.npz"]["sha256"]
    assert _model(a).startswith(f"itemknn:v{imp}")


def test_activation_and_rollback_through_one_replica_reach_the_other_before_the_call_returns(fleet):
    from penchant.serve.fleet import Listener

    a, b, app_b = fleet["a"], fleet["b"], fleet["apps"]["b"]
    app_b.state.listener.stop()  # b hears nothing: each answer's own check must catch up
    try:
        for through, other, version, model in ((a, b, fleet["knn"], "itemknn"), (b, a, fleet["pop"], "pop"),
                                               (a, b, fleet["knn"], "itemknn")):
            assert through.post(f"/v1/models/{version}/activate").status_code == 200
            assert _model(other).startswith(f"{model}:v{version}")  # the other's first answer after the call
            assert _model(through).startswith(f"{model}:v{version}")
        back = a.post("/v1/models/rollback").json()["id"]  # the ready version before knn: pop
        assert back == fleet["pop"] and _model(b).startswith(f"pop:v{back}") and _model(b, "u1").startswith("pop:")
    finally:
        app_b.state.listener = Listener(app_b.state.service.store, app_b.state.service.host.refresh).start()


def test_a_key_revoked_through_one_replica_is_refused_by_the_other_at_once(fleet):
    a, b = fleet["a"], fleet["b"]
    key = a.post("/v1/admin/keys", json={"name": "reader", "scope": "read"}).json()
    auth = {"Authorization": f"Bearer {key['key']}"}
    for _ in range(2):  # the second answer comes from b's key cache
        assert b.get("/v1/users/u0/recommendations?k=3", headers=auth).status_code == 200
        assert b.get("/v1/models", headers=auth).status_code == 200
    assert a.post(f"/v1/admin/keys/{key['id']}/revoke").json()["revoked"] is True
    assert b.get("/v1/users/u0/recommendations?k=3", headers=auth).status_code == 401  # the hot path
    assert b.get("/v1/models", headers=auth).status_code == 401  # a routed request


def test_a_hot_path_answer_reads_the_fleet_counters_once(fleet, monkeypatch):
    """The key check and the answer share the request's one read of the counters (one round trip)."""
    import threading

    store = fleet["apps"]["b"].state.service.store
    reads, read = [], store.fleet_read

    def counted(*args):
        if threading.current_thread().name != "penchant-fleet-listener":  # the listener's own ticks aside
            reads.append(args)
        return read(*args)

    monkeypatch.setattr(store, "fleet_read", counted)
    assert fleet["b"].get("/v1/users/u2/recommendations?k=3").status_code == 200
    assert reads == [("u2",)]


def test_a_damaged_cache_file_is_fetched_again(fleet):
    a, b, imp = fleet["a"], fleet["b"], fleet["imp"]
    assert a.post(f"/v1/models/{fleet['pop']}/activate").status_code == 200
    assert _model(b).startswith("pop:")
    host = fleet["apps"]["b"].state.service.host
    path = fleet["root"] / "b" / "models" / f"v{imp}" / "model.npz"
    if not path.exists():  # b fetches it once, so the damage below is to a file b has used
        assert a.post(f"/v1/models/{imp}/activate").status_code == 200 and _model(b).startswith(f"itemknn:v{imp}")
        assert a.post(f"/v1/models/{fleet['pop']}/activate").status_code == 200 and _model(b).startswith("pop:")
    good = path.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF  # same size, one byte flipped: only the SHA-256 tells
    path.write_bytes(bytes(damaged))
    before = host.files.fetched
    assert a.post(f"/v1/models/{imp}/activate").status_code == 200
    assert _model(b).startswith(f"itemknn:v{imp}")
    assert host.files.fetched == before + 1 and path.read_bytes() == good


def test_an_event_through_one_replica_changes_the_others_cached_answer(fleet):
    a, b = fleet["a"], fleet["b"]
    rec = "/v1/users/u3/recommendations?k=3"
    first = b.get(rec).json()["items"]
    cache = fleet["apps"]["b"].state.service.host.answers
    hits = cache.hits
    assert b.get(rec).json()["items"] == first and cache.hits == hits + 1  # b answers from its cache
    top = first[0]["id"]
    assert a.post("/v1/feedback", json=[{"event_id": "fleet-e1", "user_id": "u3", "item_id": top,
                                         "type": "click"}]).json()["inserted"] == 1
    after = b.get(rec).json()["items"]
    assert top not in [x["id"] for x in after]  # the clicked item is seen now, so never recommended


def test_the_listener_alone_loads_a_version_activated_elsewhere(fleet):
    a, b = fleet["a"], fleet["b"]
    host_b = fleet["apps"]["b"].state.service.host
    target = fleet["knn"] if host_b._deployed.version != fleet["knn"] else fleet["pop"]
    heard = fleet["apps"]["b"].state.listener.heard
    assert a.post(f"/v1/models/{target}/activate").status_code == 200
    deadline = time.time() + 10
    while host_b._deployed.version != target:  # no request reaches b: its listener reloads
        assert time.time() < deadline, "the listener did not load the activated version"
        time.sleep(0.02)
    assert fleet["apps"]["b"].state.listener.heard > heard
    assert _model(b).split(":v")[1].startswith(str(target))


def test_the_approximate_index_is_stored_with_its_version_and_fetched_not_rebuilt(fleet):
    a, b, als = fleet["a"], fleet["b"], fleet["als"]
    manifest = _manifest(fleet, als)
    assert set(manifest) == {"model.npz", "items.usearch"}  # built by a at training, stored beside the artefact
    host = fleet["apps"]["b"].state.service.host
    before = host.files.fetched
    assert a.post(f"/v1/models/{als}/activate").status_code == 200
    assert _model(b).startswith(f"als:v{als}") and host._deployed.core.index is not None  # b serves the index
    index = fleet["root"] / "b" / "models" / f"v{als}" / "items.usearch"
    assert host.files.fetched == before + 2
    assert hashlib.sha256(index.read_bytes()).hexdigest() == manifest["items.usearch"]["sha256"]
    assert a.post(f"/v1/models/{fleet['pop']}/activate").status_code == 200


def test_a_replica_that_cannot_load_the_active_version_refuses_to_answer_from_its_old_one(fleet):
    a, b, imp = fleet["a"], fleet["b"], fleet["imp"]
    assert a.post(f"/v1/models/{fleet['pop']}/activate").status_code == 200 and _model(b).startswith("pop:")
    (fleet["root"] / "b" / "models" / f"v{imp}" / "model.npz").unlink(missing_ok=True)  # b must fetch it
    with fleet["apps"]["a"].state.service.store.engine.begin() as conn:  # the database's copy damaged
        conn.execute(sa.text("UPDATE version_chunks SET data = :d WHERE version = :v AND path = 'model.npz' AND chunk = 0"),
                     {"d": b"\0" * 512, "v": imp})
    assert a.post(f"/v1/models/{imp}/activate").status_code == 200  # a serves its own checked copy
    r = b.get("/v1/users/u0/recommendations?k=3")
    assert r.status_code == 503 and f"model version {imp} is active but could not be loaded" in r.json()["detail"]
    assert not (fleet["root"] / "b" / "models" / f"v{imp}" / "model.npz").exists()  # nothing half-fetched kept
    assert a.post(f"/v1/models/{fleet['pop']}/activate").status_code == 200 and _model(b).startswith("pop:")
