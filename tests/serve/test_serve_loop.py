"""The service closes the loop: it records what it shows with propensities, explores when asked,
and `penchant ope` estimates a candidate version's value from its dump."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import cli, write
from tests.serve.server import clustered_events


def _train(client, **params) -> int:
    version = client.post("/v1/models/train", json={"model": "als", "params": {"factors": 8, **params},
                                                      "activate": True}).json()["id"]
    client.app.state.service.host.wait(version)
    return version


def test_served_lists_carry_propensities_and_exploration_changes_them(client):
    client.put("/v1/items", json=[{"id": f"i{i}"} for i in range(40)])
    events = clustered_events()
    client.post("/v1/feedback", json=events)
    _train(client)
    seen = {e["item_id"] for e in events if e["user_id"] == "u0"}
    pool = 40 - len(seen) - 5  # M: eligible items outside the greedy list of 5

    greedy = client.get("/v1/users/u0/recommendations", params={"k": 5}).json()
    assert [i["propensity"] for i in greedy["items"]] == [1.0] * 5
    top = [i["id"] for i in greedy["items"]]
    explored, ids = 0, set()
    for _ in range(200):
        answer = client.get("/v1/users/u0/recommendations", params={"k": 5, "epsilon": 0.5}).json()
        ids.add(answer["list_id"])
        for pos, item in enumerate(answer["items"]):
            assert item["id"] not in seen
            if item["id"] == top[pos]:
                assert item["propensity"] == pytest.approx(0.5)
            else:
                assert item["id"] not in top and item["propensity"] == pytest.approx(0.5 / pool)
                explored += 1
        assert len({i["id"] for i in answer["items"]}) == 5  # explored slots never repeat an item
    assert len(ids) == 200 and abs(explored / 1000 - 0.5) < 0.07

    # the service's own setting explores every request that does not say otherwise
    host = client.app.state.service.host
    host.settings = host.settings.model_copy(update={"exploration_epsilon": 1.0})
    answer = client.get("/v1/users/u0/recommendations", params={"k": 5}).json()
    assert all(i["id"] not in top and i["propensity"] == pytest.approx(1 / pool) for i in answer["items"])
    assert client.get("/v1/users/u0/recommendations", params={"k": 5, "epsilon": 0}).json()["items"][0]["id"] == top[0]


def test_penchant_ope_reads_the_service_dump(client, tmp_path):
    client.put("/v1/items", json=[{"id": f"i{i}"} for i in range(40)])
    client.post("/v1/feedback", json=clustered_events())
    version = _train(client)
    served = 0
    for k in range(40):
        user = f"u{k % 20}"
        answer = client.get(f"/v1/users/{user}/recommendations", params={"k": 4, "epsilon": 0.3}).json()
        served += 1
        if k % 2 == 0:  # every other list earns a click on its top slot, after it was shown
            client.post("/v1/feedback", json=[{"event_id": f"c{k}", "user_id": user, "item_id": answer["items"][0]["id"],
                                               "type": "click"}])
    dump = tmp_path / "dump.jsonl"
    dump.write_text(client.get("/v1/admin/dump").text)
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    shown = [r for r in rows if r["kind"] == "served"]
    assert len(shown) == served and {r["version"] for r in shown} == {version}
    assert {r["policy"] for r in shown} == {"epsilon-greedy:0.3"} and {len(r["items"]) for r in shown} == {4}
    for r in shown:
        assert all(0 < p <= 1 for p in r["propensities"])
        if all(p == pytest.approx(0.7) for p in r["propensities"]):  # nothing explored: (1 − ε)^4
            assert r["slate_propensity"] == pytest.approx(0.7 ** 4)
        assert 0 < r["slate_propensity"] <= min(r["propensities"])

    artefact = client.app.state.service.store.version(version)["path"]
    for estimator in ("ips", "dr", "iips"):
        code, out, err = cli("ope", "--logs", str(dump), "--target", artefact, "--estimator", estimator,
                             "--bootstrap", "200", "--json", str(tmp_path / f"{estimator}.json"))
        assert code == 0, err
        assert "40 served lists, 160 shown items, 20 rewarded" in out, out
        got = json.loads((tmp_path / f"{estimator}.json").read_text())
        assert got["rounds"] == 40 and got["ci"][0] <= got["value"] <= got["ci"][1]
        assert np.isfinite(got["effective_sample_size"]) and got["effective_sample_size"] > 0
    # only clicks count when asked; the dump's 480 training events came before anything was shown
    code, out, err = cli("ope", "--logs", str(dump), "--target", artefact, "--reward-types", "like")
    assert code == 0 and "0 rewarded" in out, err

    # a restore of the dump brings the served lists back (here: all already stored, counted once)
    restored = client.post("/v1/admin/restore", content=dump.read_bytes()).json()
    assert restored["served_lists"] == 0 and restored["duplicate_served_lists"] == 40


def test_impressions_can_be_switched_off_and_the_setting_is_read(tmp_path):
    from penchant.errors import ConfigError
    from penchant.serve.config import load_settings

    config = write(tmp_path / "c.toml", "[service]\nexploration_epsilon = 0.2\nlog_impressions = false\n")
    settings = load_settings(tmp_path / "d", config_file=config, env={})
    assert settings.exploration_epsilon == 0.2 and settings.log_impressions is False
    with pytest.raises(ConfigError, match="exploration_epsilon"):
        load_settings(tmp_path / "d", config_file=write(tmp_path / "bad.toml", "[service]\nexploration_epsilon = 2\n"), env={})
    with pytest.raises(ConfigError, match="log_impressions must be a bool"):
        load_settings(tmp_path / "d", config_file=write(tmp_path / "bad2.toml", "[service]\nlog_impressions = 1\n"), env={})


def test_a_service_without_impression_logging_stores_none(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from tests.serve.server import ADMIN

    settings = load_settings(tmp_path / "data", database_url=database_url, env={}).model_copy(update={"log_impressions": False})
    with TestClient(create_app(settings, admin_key=ADMIN)) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        c.post("/v1/feedback", json=clustered_events(n_users=6))
        answer = c.get("/v1/users/u0/recommendations", params={"k": 3}).json()
        assert len(answer["list_id"]) == 32 and [i["propensity"] for i in answer["items"]] == [1.0] * 3
        assert '"kind": "served"' not in c.get("/v1/admin/dump").text
