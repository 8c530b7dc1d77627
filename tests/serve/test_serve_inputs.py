"""What the service stores is what it says it stored: an event id is stored once and counted once,
however many batches carry it at the same time; a request the database cannot take (a NUL
character, a number that is not finite) is a 422 naming the field, never a 500; on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

import threading

from tests.serve.server import ADMIN


def _app_client(data_dir, database_url):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    app = create_app(load_settings(data_dir, database_url=database_url, env={}), admin_key=ADMIN)
    c = TestClient(app)
    c.headers["Authorization"] = f"Bearer {ADMIN}"
    return c


def _event(event_id: str, user: str = "u", item: str = "i") -> dict:
    return {"event_id": event_id, "user_id": user, "item_id": item, "type": "click"}


# --- one event id, one stored event, one count --------------------------------------------------------------------


def test_an_event_id_repeated_in_a_batch_is_stored_and_counted_once(client):
    batch = [_event("e1"), _event("e1", item="j"), _event("e2"), _event("e1")]
    assert client.post("/v1/feedback", json=batch).json() == {"inserted": 2, "duplicates": 2, "new_users": 1,
                                                              "new_items": 1}  # "j" came only with a repeated id
    stored = client.get("/v1/users/u/feedback").json()
    assert sorted((e["event_id"], e["item_id"]) for e in stored) == [("e1", "i"), ("e2", "i")]  # the first one wins
    assert client.app.state.service.store.counts() == {"users": 1, "items": 1, "events": 2}
    again = [{"event_id": "c1", "winner": "a", "loser": "b"}, {"event_id": "c1", "winner": "b", "loser": "a"}]
    assert client.post("/v1/comparisons", json=again).json() == {"inserted": 1, "duplicates": 1}


def test_concurrent_identical_batches_insert_each_event_once(tmp_path, database_url):
    """Threads post the same batches at once through two app instances over one store (as two
    workers would): over every answer, the sum of ``inserted`` is the number of events stored, and
    users and items are counted new once."""
    clients = [_app_client(tmp_path / "data", database_url) for _ in range(2)]
    store = clients[0].app.state.service.store
    threads_per_round, rounds = 8, 3
    answers: list[dict] = []
    failures: list[BaseException] = []
    for r in range(rounds):
        batch = [_event(f"r{r}-{k}", user=f"u{r}-{k % 7}", item=f"i{k % 11}") for k in range(300)]
        batch += batch[:20]  # and repeats inside the batch
        start = threading.Barrier(threads_per_round)

        def post(c, batch=batch, start=start) -> None:
            try:
                start.wait()
                resp = c.post("/v1/feedback", json=batch)
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
            except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(e)

        threads = [threading.Thread(target=post, args=(clients[t % 2],)) for t in range(threads_per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in clients:
        c.close()
    assert not failures, failures[0]
    assert len(answers) == threads_per_round * rounds
    stored = store.counts()
    assert stored["events"] == 300 * rounds
    assert sum(a["inserted"] for a in answers) == stored["events"]
    assert sum(a["inserted"] + a["duplicates"] for a in answers) == 320 * threads_per_round * rounds
    assert sum(a["new_users"] for a in answers) == stored["users"] == 7 * rounds
    assert sum(a["new_items"] for a in answers) == stored["items"] == 11
