"""Recurrent user summaries: the chain's structure over real HTTP, the zero-shot ranker reading a
summary (planted: a summary naming a film raises that film), artefacts keeping the summaries, and
`penchant llm summarize` end to end with the embedded model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.data.summaries import read_summaries
from penchant.errors import ConfigError, DataError
from penchant.llm import Endpoint, LLMClient
from penchant.llm.summaries import summarize
from penchant.models.registry import create
from tests.conftest import cli, tiny_log, write
from tests.llm.scripted import ScriptedServer, completion


def test_each_block_updates_the_previous_summary_and_only_the_last_blocks_are_read():
    with ScriptedServer(lambda n, body: (200, completion(f"summary {n}"), 0)) as server:
        client = LLMClient(Endpoint(server.url, "scripted"), cache=False)
        chain = summarize([f"film {i}" for i in range(23)], client, block=5, max_blocks=3)
        asked = [b["messages"][-1]["content"] for b in server.bodies]
    assert chain == ["summary 0", "summary 1", "summary 2"]
    # 23 items in blocks of 5 from the end: [18, 23), [13, 18), [8, 13); the oldest of those first
    assert "- film 8\n" in asked[0] and "- film 12\n" in asked[0] and "film 7" not in asked[0]
    assert asked[1].startswith("What we know of a viewer's taste:\nsummary 0") and "- film 13\n" in asked[1]
    assert "summary 1" in asked[2] and "- film 22\n" in asked[2]
    assert summarize([], client) == []


def test_a_summary_naming_a_film_raises_it_in_the_zero_shot_ranker(tmp_path):
    ds = tiny_log()
    user, film = 5, 17
    path = write(tmp_path / "s.json", json.dumps({"users": {str(ds.user_ids[user]): str(ds.item_text[film])}}))
    plain = create("zeroshot").fit(ds)
    summarised = create("zeroshot", summaries=str(path), summary_weight=0.7).fit(ds)
    before, after = plain.score(np.array([user, 6]))[0], summarised.score(np.array([user, 6]))
    assert np.argsort(-after[0]).tolist().index(film) < np.argsort(-before).tolist().index(film)
    np.testing.assert_allclose(after[1], plain.score(np.array([6]))[0], rtol=1e-6)  # no summary: unchanged
    np.testing.assert_allclose(create("zeroshot", summaries=str(path), summary_weight=0.0).fit(ds).score(np.array([user])),
                               plain.score(np.array([user])), rtol=1e-6)
    summarised.save(tmp_path / "m.npz")
    np.testing.assert_allclose(type(summarised).load(tmp_path / "m.npz").score(np.array([user])), after[:1], rtol=1e-6)


def test_a_file_that_is_not_summaries_is_named(tmp_path):
    with pytest.raises(DataError, match="x.json.*not a summaries file"):
        read_summaries(write(tmp_path / "x.json", '{"users": [1]}'))


@pytest.mark.xdist_group("llm")
def test_mechanics_of_llm_summarize_end_to_end(llm, shared_data, monkeypatch, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    monkeypatch.setenv("PENCHANT_DATA", str(shared_data))
    code, out, err = cli("llm", "summarize", "--users", "2", "--block", "5", "--max-blocks", "2", "--max-tokens", "40",
                         "--summaries-out", tmp_path / "s.json", "--json", tmp_path / "r.json")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    chains = json.loads((tmp_path / "s.json").read_text())["chains"]
    assert result["users"] == 2 and len(chains) == 2 and all(len(c) == 2 and all(c) for c in chains.values())
    assert result["usage"]["requests"] + result["usage"]["cached"] == 4
    for part in ("with", "without"):
        assert 0 <= result[part]["ndcg@10"] <= 1


def test_the_service_serves_a_ranker_that_reads_summaries(tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from tests.serve.server import ADMIN

    ds = tiny_log()
    user = str(ds.user_ids[5])
    path = write(tmp_path / "s.json", json.dumps({"users": {user: str(ds.item_text[17]) + ", " + str(ds.item_text[21])}}))
    summarised = create("zeroshot", summaries=str(path), summary_weight=0.8).fit(ds)
    summarised.save(tmp_path / "zs.npz")
    code, out, err = cli("versions", "import", tmp_path / "zs.npz", "--data-dir", tmp_path / "data", "--activate")
    assert code == 0, err
    with TestClient(create_app(load_settings(tmp_path / "data", env={}), admin_key=ADMIN)) as c:
        got = c.get(f"/v1/users/{user}/recommendations", params={"k": 5},
                    headers={"Authorization": f"Bearer {ADMIN}"}).json()
    items, _ = summarised.recommend(np.array([5]), k=5)
    plain, _ = create("zeroshot").fit(ds).recommend(np.array([5]), k=5)
    assert [x["id"] for x in got["items"]] == [str(ds.item_ids[i]) for i in items[0]]
    assert items[0].tolist() != plain[0].tolist()


def _planted_summaries(tmp_path, n_train: int = 300, n_probe: int = 40, seed: int = 0):
    """Two genres of 10 films. A training user watches two films at random, then one of their genre;
    a probe user has watched only the two random films. Only the summary tells a user's genre."""
    from penchant.data import Dataset

    rng = np.random.default_rng(seed)
    titles = [f"a western about cowboys and outlaws on the frontier, part {i}" for i in range(10)]
    titles += [f"a romantic comedy about two people falling in love, part {i}" for i in range(10)]
    genre = np.arange(n_train + n_probe) % 2
    users, items = [], []
    for u, g in enumerate(genre):
        seen = list(rng.choice(20, size=2, replace=False))
        if u < n_train:
            seen.append(int(rng.choice([i for i in range(10 * g, 10 * g + 10) if i not in seen])))
        users += [u] * len(seen)
        items += seen
    ds = Dataset(np.array([f"u{u}" for u in range(len(genre))], dtype=object), np.array([f"f{i}" for i in range(20)], dtype=object),
                 np.array(users, np.int32), np.array(items, np.int32), timestamps=np.arange(len(users), dtype=np.float64),
                 item_text=np.array(titles, dtype=object), name="planted")
    says = ["This viewer loves westerns: cowboys, outlaws and the frontier.",
            "This viewer loves romantic comedies and love stories."]
    path = write(tmp_path / "planted.json", json.dumps({"users": {f"u{u}": says[g] for u, g in enumerate(genre)}}))
    return ds, path, genre, np.arange(n_train, n_train + n_probe)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_sequence_models_read_the_genre_only_a_summary_tells(tmp_path, name):
    ds, path, genre, probes = _planted_summaries(tmp_path)
    params = {"factors": 32, "max_len": 5, "epochs": 40, "dropout": 0.0, "lr": 3e-3, "item_text": "fuse", "seed": 0}

    def genre_share(model) -> float:  # share of the probe users' top 5 in their own genre
        top, _ = model.recommend(probes, k=5)
        return float(np.mean(top // 10 == genre[probes][:, None]))

    plain = create(name, **params).fit(ds)
    summarised = create(name, **params, summaries=str(path)).fit(ds)
    assert genre_share(summarised) > 0.9 and genre_share(plain) < 0.75
    summarised.save(tmp_path / "m.npz")
    again = type(summarised).load(tmp_path / "m.npz")
    np.testing.assert_allclose(again.score(probes), summarised.score(probes), rtol=1e-5, atol=1e-5)
    # an anonymous session or a user without a summary gets padding in the summary slot
    session = ds.sequences()[1][ds.sequences()[0][probes[0]]:ds.sequences()[0][probes[0] + 1]]
    assert summarised.score_sessions([session]).shape == (1, 20)


def test_summaries_need_the_item_text_projection(tmp_path):
    with pytest.raises(ConfigError, match="item_text='fuse' or 'text'"):
        create("sasrec", summaries=str(tmp_path / "s.json"))


def test_llm_summarize_measures_a_sequence_network_with_and_without_summaries(monkeypatch, tmp_path):
    from penchant.data.write import write_log

    # a scripted model that names the subjects of the films it is shown: the summaries are faithful
    def describe(n, body):
        asked = body["messages"][-1]["content"]
        return 200, completion("Likes films about " + ", ".join(w for w in ("cats", "space", "love", "war") if w in asked) + "."), 0

    ds = tiny_log()
    log = write_log(ds, tmp_path / "tiny" / "tiny.inter")
    write(tmp_path / "tiny" / "tiny.item", "item_id:token\ttitle:token_seq\n" +
          "".join(f"{i}\t{t}\n" for i, t in zip(ds.item_ids, ds.item_text)))
    with ScriptedServer(describe) as server:
        monkeypatch.setenv("PENCHANT_LLM_URL", server.url)
        monkeypatch.setenv("PENCHANT_LLM_MODEL", "scripted")
        code, out, err = cli("llm", "summarize", "--data", log, "--users", "30", "--block", "5", "--model", "gru4rec",
                             "--param", "epochs=2", "--param", "factors=16", "--summaries-out", tmp_path / "s.json",
                             "--json", tmp_path / "r.json")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["recommender"] == "gru4rec" and result["params"]["item_text"] == "fuse" and result["users"] == 30
    chains = json.loads((tmp_path / "s.json").read_text())["chains"]
    assert len(chains) == 30 and all(1 <= len(c) <= 2 for c in chains.values())
    assert result["usage"]["requests"] + result["usage"]["cached"] == sum(len(c) for c in chains.values())
    assert len(read_summaries(tmp_path / "s.json")) == 30 and "gru4rec on 30 users" in out
    assert result["ndcg_difference"] == pytest.approx(result["with"]["ndcg@10"] - result["without"]["ndcg@10"], abs=1e-9)
    code, _, err = cli("llm", "summarize", "--data", log, "--model", "ease", "--summaries-out", tmp_path / "x.json",
                       "--json", tmp_path / "x.json")
    assert code != 0 and "ease" in err
