"""``?explore=thompson``: lists ranked by a draw from ALS's posterior of the user's vector, their
Monte-Carlo propensities in the served-list log, and `penchant ope` estimating a Thompson policy's
value from the service's dump, against the value a planted click model gives it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import cli
from tests.serve.server import ADMIN, clustered_events

N_USERS, N_ITEMS, K = 400, 40, 3
LOG_NOISE, TARGET_NOISE = 2.0, 0.2  # σ² of the logging Thompson policy and of the target one
SEED = 7


def click_probability(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The planted click model, by user and item index (u{n}, i{n}): an item of the user's taste
    cluster (same parity) is clicked with probability 0.6 wherever it is shown, any other with 0.05."""
    return np.where(users % 2 == items % 2, 0.6, 0.05)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """An app over SQLite (built as tests/serve/conftest.py builds it) with ALS trained on two taste
    clusters of 400 users; its Thompson draws seeded."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    settings = load_settings(tmp_path_factory.mktemp("thompson") / "data", env={})
    with TestClient(create_app(settings, admin_key=ADMIN)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        client.put("/v1/items", json=[{"id": f"i{i}"} for i in range(N_ITEMS)])
        client.post("/v1/feedback", json=clustered_events(n_users=N_USERS, n_items=N_ITEMS))
        version = client.post("/v1/models/train", json={"model": "als", "activate": True, "params": {
            "factors": 8, "regularization": 1.0, "alpha": 2.0}}).json()["id"]
        host = client.app.state.service.host
        assert host.wait(version)["status"] == "ready"
        host._explore_rng = np.random.default_rng(SEED)
        yield client, version


def _thompson_settings(client, noise: float, draws: int = 1000) -> None:
    host = client.app.state.service.host
    host.settings = host.settings.model_copy(update={"thompson_noise": noise, "thompson_draws": draws})


@pytest.fixture(scope="module")
def logged(service, tmp_path_factory):
    """Every user is served one Thompson list (σ² = LOG_NOISE, k = 3) and clicks each item with its
    planted probability; the clicks arrive after all lists were shown; then the service's dump."""
    client, _ = service
    _thompson_settings(client, LOG_NOISE)
    rng = np.random.default_rng(SEED)
    rounds, clicks = [], []
    for u in range(N_USERS):
        answer = client.get(f"/v1/users/u{u}/recommendations", params={"k": K, "explore": "thompson"}).json()
        items = np.array([int(i["id"][1:]) for i in answer["items"]])
        rounds.append((answer["list_id"], u, items))
        for i in items[rng.random(K) < click_probability(np.full(K, u), items)]:
            clicks.append({"event_id": f"click-{u}-{i}", "user_id": f"u{u}", "item_id": f"i{i}", "type": "click"})
    assert client.post("/v1/feedback", json=clicks).json()["inserted"] == len(clicks)
    dump = tmp_path_factory.mktemp("dump") / "dump.jsonl"
    dump.write_text(client.get("/v1/admin/dump").text)
    return rounds, clicks, dump


def _marginals(model, user: int, noise: float, draws: int, rng) -> np.ndarray:
    """float64 (K, N_ITEMS): the Thompson policy's chance of each item at each slot for a user the
    model was fitted on, their training items banned (as the service bans them)."""
    from penchant.models.posterior import slot_marginals, thompson_lists

    banned = np.zeros(model.n_items_, dtype=bool)
    banned[model.train_[user].indices] = True
    lists, _ = thompson_lists(model, draws, K, rng, noise=noise, user=user, banned=banned)
    return slot_marginals(lists, model.n_items_)


def test_an_ope_estimate_of_a_thompson_policy_from_the_dump_covers_its_simulated_value(service, logged, tmp_path):
    """Logged under Thompson at σ² = 2 with the service's Monte-Carlo propensities, the value of
    Thompson at σ² = 0.2 (a target that exploits more) is estimated by `penchant ope` and its
    interval covers the value the planted click model gives it, while the logging policy's own value
    lies below the interval."""
    from penchant.models.artefact import load

    client, version = service
    rounds, clicks, dump = logged
    model = load(client.app.state.service.store.version(version)["path"] + "/model.npz")
    users = {str(u): k for k, u in enumerate(model.user_ids_)}
    item_number = np.array([int(str(i)[1:]) for i in model.item_ids_])
    rng = np.random.default_rng(SEED)
    lines, value, logger_value = ["round,item,position,probability"], 0.0, 0.0
    for list_id, u, shown in rounds:
        c = click_probability(np.full(len(item_number), u), item_number)
        target = _marginals(model, users[f"u{u}"], TARGET_NOISE, 2000, rng)
        value += float((target * c).sum()) / len(rounds)  # the target's expected clicks per list
        logger_value += float((_marginals(model, users[f"u{u}"], LOG_NOISE, 500, rng) * c).sum()) / len(rounds)
        slot, item = np.nonzero(target)
        lines += [f"{list_id},{model.item_ids_[a]},{p},{float(target[p, a])!r}" for p, a in zip(slot, item)]
    (tmp_path / "target.csv").write_text("\n".join(lines) + "\n")
    assert abs(len(clicks) / N_USERS - logger_value) < 0.12  # the clicks the logging policy earned: its value
    for estimator in ("iips", "dr"):
        code, out, err = cli("ope", "--logs", str(dump), "--target", str(tmp_path / "target.csv"), "--estimator",
                             estimator, "--bootstrap", "500", "--seed", str(SEED), "--json", str(tmp_path / "e.json"))
        assert code == 0, err
        assert f"{N_USERS} served lists, {N_USERS * K:,} shown items, {len(clicks)} rewarded" in out, out
        got = json.loads((tmp_path / "e.json").read_text())
        assert got["ci"][0] <= value <= got["ci"][1], (estimator, value, got)
        assert logger_value < got["ci"][0], (estimator, logger_value, got)



def test_each_slot_s_propensities_are_the_shares_of_the_posterior_draws(service, logged):
    """One user asks 300 times: the 1,000 lists behind their answers are kept, so each (slot, item)
    always has one propensity; the propensities of what a slot showed sum to at most 1 (nearly 1
    after 300 answers), each matches how often it was shown, and the dump has the list's own
    probability, at most its smallest item's."""
    client, version = service
    _thompson_settings(client, LOG_NOISE)
    n, recorded, shown = 300, {}, {}
    for _ in range(n):
        answer = client.get("/v1/users/u0/recommendations", params={"k": K, "explore": "thompson"}).json()
        assert answer["model"] == f"als:v{version}+thompson" and len(answer["items"]) == K
        scores = [i["score"] for i in answer["items"]]
        assert scores == sorted(scores, reverse=True)  # ranked by the sampled scores
        assert len({i["id"] for i in answer["items"]}) == K
        for slot, item in enumerate(answer["items"]):
            assert 0 < item["propensity"] <= 1
            recorded.setdefault((slot, item["id"]), set()).add(item["propensity"])
            shown[slot, item["id"]] = shown.get((slot, item["id"]), 0) + 1
        shown[answer["list_id"]] = tuple(i["id"] for i in answer["items"])
    assert all(len(p) == 1 for p in recorded.values())
    p = {cell: values.pop() for cell, values in recorded.items()}
    for slot in range(K):
        total = sum(v for (s, _), v in p.items() if s == slot)
        assert 0.97 < total <= 1 + 1e-9, (slot, total)
    for cell, prob in p.items():  # 1,000 draws: a propensity is a multiple of 1/1,000
        assert prob * 1000 == pytest.approx(round(prob * 1000))
        assert abs(shown[cell] / n - prob) <= 4.5 * np.sqrt(prob * (1 - prob) / n) + 1 / n, (cell, shown[cell], prob)
    rows = [json.loads(line) for line in client.get("/v1/admin/dump").text.splitlines()]
    mine = [r for r in rows if r["kind"] == "served" and r["list_id"] in shown]
    assert len(mine) == n and {r["policy"] for r in mine} == {f"thompson:{LOG_NOISE:g}"}
    slates = {}
    for r in mine:
        assert r["propensities"] == [p[slot, item] for slot, item in enumerate(r["items"])]
        assert 0 < r["slate_propensity"] <= min(r["propensities"])
        slates.setdefault(tuple(r["items"]), set()).add(r["slate_propensity"])
    assert all(len(v) == 1 for v in slates.values()) and sum(v.pop() for v in slates.values()) <= 1 + 1e-9


def test_the_explore_parameter_is_checked_and_epsilon_greedy_still_works(service, logged):
    client, version = service
    bad = client.get("/v1/users/u0/recommendations", params={"explore": "ucb"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "explore"], bad.json()
    both = client.get("/v1/users/u0/recommendations", params={"explore": "thompson", "epsilon": 0.2})
    assert both.status_code == 422 and both.json()["detail"].startswith("explore: thompson takes no epsilon"), both.json()
    greedy = [i["id"] for i in client.get("/v1/users/u0/recommendations", params={"k": K}).json()["items"]]
    for params in ({"explore": "epsilon-greedy", "epsilon": 0.5}, {"epsilon": 0.5}):
        answer = client.get("/v1/users/u0/recommendations", params={"k": K, **params}).json()
        for slot, item in enumerate(answer["items"]):
            assert item["propensity"] == pytest.approx(0.5 if item["id"] == greedy[slot] else 0.5 / (N_ITEMS - 8 - K))

    # a user with no events draws from the posterior of an empty history; a filter that leaves nothing, nothing
    stranger = client.get("/v1/users/stranger/recommendations", params={"k": K, "explore": "thompson"}).json()
    assert len(stranger["items"]) == K and all(0 < i["propensity"] <= 1 for i in stranger["items"])
    empty = client.get("/v1/users/u0/recommendations", params={"k": K, "explore": "thompson", "category": "none"})
    assert empty.status_code == 200 and empty.json()["items"] == []

    # a model with no posterior over user vectors is refused, naming the parameter and the reason
    pop = client.post("/v1/models/train", json={"model": "pop", "activate": True}).json()["id"]
    client.app.state.service.host.wait(pop)
    try:
        refused = client.get("/v1/users/u0/recommendations", params={"explore": "thompson"})
        assert refused.status_code == 409, refused.json()
        assert refused.json()["detail"] == (f"explore: thompson samples the posterior of a user's vector, which the "
                                            f"deployed model pop:v{pop} does not have (als has one); use "
                                            "explore=epsilon-greedy")
    finally:
        client.post(f"/v1/models/{version}/activate")
