"""Browsing what engine users expect: users and items listed a page at a time, one user or item,
popular and latest items with category filters, a user's neighbours, ISO 8601 times beside unix
seconds, and feedback for unknown users/items governed by a setting (on SQLite and PostgreSQL)."""

from __future__ import annotations

import math

import pytest

from tests.conftest import write
from tests.serve.server import ADMIN

JAN_1_2024 = 1704067200.0


def _pages(client, path: str, limit: int) -> list[list[str]]:
    pages, url = [], f"{path}?limit={limit}"
    while url:
        r = client.get(url)
        assert r.status_code == 200
        pages.append([row["id"] for row in r.json()])
        link = r.headers.get("link")
        url = link[1:link.index(">")] if link else None
    return pages


def test_users_and_items_are_listed_a_page_at_a_time(client):
    client.put("/v1/users", json=[{"id": f"u{k:02d}", "attributes": {"k": k}} for k in range(23)])
    client.put("/v1/items", json=[{"id": f"i{k:02d}", "title": f"T{k}"} for k in range(7)])
    pages = _pages(client, "/v1/users", 10)
    assert [len(p) for p in pages] == [10, 10, 3] and sum(pages, []) == [f"u{k:02d}" for k in range(23)]
    assert _pages(client, "/v1/items", 7) == [[f"i{k:02d}" for k in range(7)], []]  # a full last page: one empty page after
    assert client.get("/v1/users", params={"after": "u20"}).json() == [
        {"id": f"u{k}", "attributes": {"k": k}, "events": None} for k in (21, 22)]
    client.post("/v1/feedback", json=[{"event_id": f"e{k}", "user_id": "u03", "item_id": "i01", "type": "click"}
                                      for k in range(4)])
    assert client.get("/v1/users/u03").json() == {"id": "u03", "attributes": {"k": 3}, "events": 4}
    assert client.get("/v1/items/i01").json()["title"] == "T1"
    assert client.get("/v1/users/nobody").status_code == 404 and client.get("/v1/items/nothing").status_code == 404
    assert client.get("/v1/items", params={"ids": ["i02", "zz"]}).json()[0]["id"] == "i02"  # lookup by ids as before


def test_iso_8601_times_are_accepted_beside_unix_seconds(client):
    stamps = ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00", JAN_1_2024]
    r = client.post("/v1/feedback", json=[{"event_id": f"t{k}", "user_id": "u", "item_id": "i", "type": "click",
                                           "timestamp": t} for k, t in enumerate(stamps)])
    assert r.status_code == 200, r.text
    assert [e["timestamp"] for e in client.get("/v1/users/u/feedback").json()] == [JAN_1_2024] * 4
    bad = client.post("/v1/feedback", json=[{"event_id": "x", "user_id": "u", "item_id": "i", "type": "click",
                                             "timestamp": "1969-12-31T00:00:00Z"}])
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", 0, "timestamp"]
    assert client.post("/v1/feedback", json=[{"event_id": "y", "user_id": "u", "item_id": "i", "type": "click",
                                              "timestamp": "yesterday"}]).status_code == 422


def test_popular_and_latest_items_with_category_filters(client):
    client.put("/v1/items", json=[
        {"id": "a", "categories": ["sf"], "timestamp": "2024-03-01T00:00:00Z"},
        {"id": "b", "categories": ["drama"], "timestamp": JAN_1_2024},
        {"id": "c", "categories": ["sf"], "timestamp": "2023-06-01T00:00:00Z"},
        {"id": "d", "categories": ["sf"]}])  # no timestamp: when it was stored (now), so the newest
    now = __import__("time").time()
    events = [("a", "click", now - 3 * 86400)] * 3 + [("b", "like", now - 1000)] * 2 + [("c", "click", now - 100),
                                                                                       ("c", "read", now - 50), ("c", "read", now)]
    client.post("/v1/feedback", json=[{"event_id": f"e{k}", "user_id": f"u{k}", "item_id": i, "type": t, "timestamp": ts}
                                      for k, (i, t, ts) in enumerate(events)])
    popular = client.get("/v1/items/popular", params={"k": 5}).json()
    assert popular["items"] == [{"id": "a", "score": 3.0}, {"id": "b", "score": 2.0}, {"id": "c", "score": 1.0}]
    assert [x["id"] for x in client.get("/v1/items/popular", params={"category": "sf"}).json()["items"]] == ["a", "c"]
    recent = client.get("/v1/items/popular", params={"days": 1}).json()  # a's clicks are three days old
    assert recent["items"] == [{"id": "b", "score": 2.0}, {"id": "c", "score": 1.0}] and recent["model"] == "popular (last 1 days)"
    latest = client.get("/v1/items/latest", params={"k": 3}).json()
    assert [x["id"] for x in latest] == ["d", "a", "b"] and latest[1]["timestamp"] == 1709251200.0
    assert [x["id"] for x in client.get("/v1/items/latest", params={"category": "sf"}).json()] == ["d", "a", "c"]


def test_a_users_neighbours_are_the_users_with_the_closest_interactions(client):
    rows = {"u0": ["i0", "i2"], "u1": ["i0", "i2"], "u2": ["i0", "i4"], "u3": ["i1", "i3"], "u4": ["i2", "i4", "i6", "i8"]}
    client.post("/v1/feedback", json=[{"event_id": f"{u}-{i}", "user_id": u, "item_id": i, "type": "click"}
                                      for u, items in rows.items() for i in items])
    assert client.get("/v1/users/u0/neighbours").status_code == 409  # no model yet
    version = client.post("/v1/models/train", json={"model": "pop", "activate": True}).json()["id"]
    client.app.state.service.host.wait(version)
    got = client.get("/v1/users/u0/neighbours", params={"k": 4}).json()
    # cosine of binary rows: u1 shares both (1), u2 and u4 share one (1/2 and 1/sqrt(8)), u3 none (left out)
    assert [n["id"] for n in got["users"]] == ["u1", "u2", "u4"] and got["model"] == f"pop:v{version}"
    assert [n["score"] for n in got["users"]] == pytest.approx([1.0, 0.5, 1 / math.sqrt(8)])
    client.post("/v1/feedback", json=[{"event_id": "new-1", "user_id": "new", "item_id": "i1", "type": "click"}])
    assert client.get("/v1/users/new/neighbours").json()["users"] == [{"id": "u3", "score": pytest.approx(1 / math.sqrt(2))}]
    assert client.get("/v1/users/ghost/neighbours").status_code == 404


def test_feedback_for_unknown_users_and_items_is_counted_or_refused(client, tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    event = {"event_id": "e1", "user_id": "ann", "item_id": "alien", "type": "click"}
    assert client.post("/v1/feedback", json=[event]).json() == {"inserted": 1, "duplicates": 0, "new_users": 1, "new_items": 1}
    assert client.post("/v1/feedback", json=[dict(event, event_id="e2")]).json()["new_items"] == 0

    config = write(tmp_path / "s.toml", '[service]\nunknown_items = "reject"\n')
    settings = load_settings(tmp_path / "strict", config_file=config, env={})
    with TestClient(create_app(settings, admin_key=ADMIN)) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        c.put("/v1/items", json=[{"id": "alien"}])
        batch = [event, dict(event, event_id="e2", item_id="aliens"), dict(event, event_id="e3", item_id="heat")]
        r = c.post("/v1/feedback", json=batch)
        assert r.status_code == 422 and r.json()["detail"].startswith("body[1].item_id: unknown item 'aliens' (2 unknown")
        assert c.app.state.service.store.counts()["events"] == 0  # nothing of the batch was stored
        assert c.post("/v1/feedback", json=[event]).json()["new_users"] == 1  # users are still created
    with pytest.raises(Exception, match='service.unknown_users must be "create" or "reject"'):
        load_settings(tmp_path, config_file=write(tmp_path / "b.toml", '[service]\nunknown_users = "maybe"\n'), env={})


def test_many_users_and_items_are_forgotten_in_one_request(client):
    client.post("/v1/feedback", json=[{"event_id": f"e{k}", "user_id": f"u{k % 300}", "item_id": f"i{k % 7}", "type": "click"}
                                      for k in range(900)])
    ids = [f"u{k}" for k in range(0, 300, 2)] + [f"ghost{k}" for k in range(9850)]  # the largest batch: 10,000 ids
    assert client.post("/v1/users/delete", json={"ids": ids}).json() == {"users": 150, "events": 450}
    assert client.app.state.service.store.counts() == {"users": 150, "items": 7, "events": 450}
    assert client.post("/v1/items/delete", json={"ids": ["i0", "i1", "nope"]}).json() == {
        "items": 2, "events": sum(1 for k in range(900) if k % 300 % 2 == 1 and k % 7 in (0, 1))}


def test_answers_are_cached_until_something_they_depend_on_changes(client):
    from tests.serve.server import clustered_events

    cache = client.app.state.service.host.answers
    client.post("/v1/feedback", json=clustered_events())
    version = client.post("/v1/models/train", json={"model": "itemknn", "activate": True}).json()["id"]
    client.app.state.service.host.wait(version)

    def top(user="u0", **params):
        answer = client.get(f"/v1/users/{user}/recommendations", params={"k": 5, **params}).json()
        assert len(answer.pop("list_id")) == 32  # every served list has its own id, cached or not
        return answer

    first = top()
    hits = cache.hits
    assert top() == first and cache.hits == hits + 1  # the same request again: from the cache
    assert top(k=4) != first and cache.hits == hits + 1  # another request: computed
    client.post("/v1/feedback", json=[{"event_id": "x1", "user_id": "u0", "item_id": first["items"][0]["id"], "type": "click"}])
    after = top()
    assert cache.hits == hits + 1 and first["items"][0]["id"] not in [x["id"] for x in after["items"]]
    assert top(user="u2") and top(user="u2") and cache.hits == hits + 2  # another user's event left u2's answer valid
    client.put("/v1/items", json=[{"id": "i0", "categories": ["new"]}])  # items changed: every answer recomputed
    top(user="u2")
    assert cache.hits == hits + 2
    metrics = client.get("/metrics").text
    assert f"penchant_answer_cache_hits {cache.hits}" in metrics


def test_the_hot_path_answers_exactly_as_the_route(client, tmp_path, database_url):
    """`GET /v1/users/{id}/recommendations` skips FastAPI's routing when a request is plainly valid;
    every request, valid or not, gets the same status and body as from the route itself."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from penchant.serve.hot_path import FastRecommendations
    from tests.serve.server import clustered_events

    client.put("/v1/items", json=[{"id": f"i{i}", "categories": ["even" if i % 2 == 0 else "odd"]} for i in range(40)])
    client.post("/v1/feedback", json=clustered_events())
    version = client.post("/v1/models/train", json={"model": "als", "params": {"factors": 8}, "activate": True}).json()["id"]
    client.app.state.service.host.wait(version)
    plain = create_app(load_settings(tmp_path / "data", database_url=database_url, env={}), admin_key=ADMIN)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not FastRecommendations]
    queries = ["", "k=5", "k=1000", "k=0", "k=1001", "k=abc", "k=5&k=7", "k=+5", "category=odd", "category=",
               "exclude=i1&exclude=i3", "exclude_seen=false", "exclude_seen=yes", "exclude_seen=maybe", "foo=bar",
               "k=3&category=even&exclude_seen=0&exclude=i2", "epsilon=0", "epsilon=0.0", "epsilon=1.5", "epsilon=-1",
               "epsilon=", "epsilon=nan", "epsilon=0&epsilon=0"]
    with TestClient(plain) as route:
        for user in ("u0", "u1", "stranger", "%C3%A9t%C3%A9"):
            for q in queries:
                for auth in (f"Bearer {ADMIN}", "Bearer pk_nope_" + "x" * 40, None):
                    headers = {"Authorization": auth} if auth else {"Authorization": ""}
                    fast, slow = (c.get(f"/v1/users/{user}/recommendations?{q}", headers=headers) for c in (client, route))
                    ids = [answer.json().pop("list_id", None) for answer in (fast, slow)]
                    assert ids[0] != ids[1] or ids[0] is None, (user, q, auth)
                    assert (fast.status_code, _listless(fast.json())) == (slow.status_code, _listless(slow.json())), (user, q, auth)
    hits = client.get("/metrics").text
    assert 'penchant_http_requests_total{method="GET",path="/v1/users/{user_id}/recommendations",status="200"}' in hits


def _listless(body: object) -> object:
    """An answer without its list id (each served list has its own)."""
    return {k: v for k, v in body.items() if k != "list_id"} if isinstance(body, dict) else body
