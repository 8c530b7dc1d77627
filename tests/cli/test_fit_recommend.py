"""``penchant fit`` then ``penchant recommend``: from a log to answers for external ids (in-process,
with one subprocess smoke test per command)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from penchant.models import Recommender, create
from tests.conftest import cli, penchant, tiny_log, write


@pytest.fixture(scope="module")
def als_artefact(ml100k_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "als.npz"
    code, out, err = cli("fit", "--train", ml100k_dir / "ml-100k.inter", "--model", "als", "--param", "factors=32",
                         "--out", path)
    assert code == 0, err
    assert "als fitted on 100,000 interactions" in out
    return path


def test_recommend_answers_external_ids_like_the_fitted_model(als_artefact, ml100k, tmp_path):
    users = ["1", "42", "943"]
    out = tmp_path / "recs.json"
    code, stdout, err = cli("recommend", "--model-path", als_artefact, "--user", "1", "--user", "42", "--user", "943",
                            "--k", "10", "--json", out)
    assert code == 0, err
    got = json.loads(out.read_text())
    assert got["model"] == "als" and got["k"] == 10 and got["fallback"] == {} and list(got["users"]) == users
    memory = create("als", factors=32).fit(ml100k)  # the same fit, in memory
    idx = ml100k.user_index(users)
    items, scores = memory.recommend(idx, k=10)
    for r, user in enumerate(users):
        rows = got["users"][user]
        assert [row["item"] for row in rows] == [str(i) for i in ml100k.item_ids[items[r]]]
        assert np.allclose([row["score"] for row in rows], scores[r], atol=1e-6)
        assert not set(row["item"] for row in rows) & set(ml100k.item_ids[ml100k.csr[idx[r]].indices])


def test_unknown_user_is_folded_in_from_history_and_history_is_excluded(als_artefact, ml100k, tmp_path):
    seen_by_1 = [str(i) for i in ml100k.item_ids[ml100k.csr[0].indices]]
    rows = [f"walk-in,{i}" for i in seen_by_1[:20]] + ["walk-in,not-an-item", "1,50", "1,181"]
    history = write(tmp_path / "history.csv", "user_id,item_id\n" + "\n".join(rows) + "\n")
    users = write(tmp_path / "users.txt", "1\n\nwalk-in\n  ghost  \n")
    out = tmp_path / "recs.json"
    code, stdout, err = cli("recommend", "--model-path", als_artefact, "--users-file", users, "--k", "10",
                            "--history", history, "--json", out)
    assert code == 0, err
    got = json.loads(out.read_text())
    assert got["fallback"] == {"walk-in": "fold-in", "ghost": "popular"}
    assert "1 of 23 events name items the model was not fitted on" in " ".join(err.split())
    walk_in = [r["item"] for r in got["users"]["walk-in"]]
    assert len(walk_in) == 10 and not set(walk_in) & set(seen_by_1[:20])
    model = Recommender.load(als_artefact)
    scores = model.score_history(model.item_index(seen_by_1[:20]))
    scores[model.item_index(seen_by_1[:20])] = -np.inf
    assert walk_in == [str(model.item_ids_[i]) for i in np.argsort(-scores, kind="stable")[:10]]
    popular = np.bincount(model.train_.indices, minlength=model.n_items_)
    assert [r["item"] for r in got["users"]["ghost"]] == [str(model.item_ids_[i]) for i in np.argsort(-popular, kind="stable")[:10]]
    assert not {"50", "181"} & {r["item"] for r in got["users"]["1"]}  # known user: history excluded too


def test_fit_selects_on_validation_and_keeps_parameters(tmp_path):
    from penchant.data.split import random_holdout
    from penchant.data.write import write_log

    split = random_holdout(tiny_log(), (0.8, 0.2, 0.0), seed=0)
    train, valid = write_log(split.train, tmp_path / "train.csv"), write_log(split.valid, tmp_path / "valid.csv")
    code, out, err = cli("fit", "--train", train, "--valid", valid, "--model", "ease", "--out", tmp_path / "ease.npz")
    assert code == 0, err
    assert "selected on validation: {'lam'" in out
    model = Recommender.load(tmp_path / "ease.npz")
    assert model.name == "ease" and model.item_ids_[0].startswith("item-")


@pytest.mark.parametrize("args, message", [
    (["recommend", "--model-path", "{tmp}/missing.npz", "--user", "1", "--json", "{tmp}/o.json"], "no such model file"),
    (["recommend", "--model-path", "{tmp}/text.npz", "--user", "1", "--json", "{tmp}/o.json"], "not a model artefact"),
    (["recommend", "--model-path", "{tmp}/text.npz", "--json", "{tmp}/o.json"], "at least one --user"),
    (["fit", "--train", "{tmp}/log.csv", "--model", "als", "--param", "values=banana", "--out", "{tmp}/m.npz"], "is not a boolean"),
    (["fit", "--train", "{tmp}/log.csv", "--model", "maxent", "--out", "{tmp}/m.npz"], "is a conversation model"),
    (["fit", "--train", "{tmp}/log.csv", "--model", "svd", "--out", "{tmp}/m.npz"], "unknown model 'svd'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    write(tmp_path / "text.npz", "not a model")
    write(tmp_path / "log.csv", "user,item\na,b\n")
    code, out, err = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_fit_and_recommend_as_processes(tmp_path):
    log = write(tmp_path / "log.csv", "user,item\n" + "\n".join(f"u{u},i{(u * 7 + j) % 30}" for u in range(40)
                                                               for j in range(6)) + "\n")
    assert penchant("fit", "--train", log, "--model", "itemknn", "--out", tmp_path / "m.npz").returncode == 0
    r = penchant("recommend", "--model-path", tmp_path / "m.npz", "--user", "u3", "--k", "4", "--json", tmp_path / "o.json")
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "o.json").read_text())
    assert len(got["users"]["u3"]) == 4 and got["fallback"] == {}


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    from penchant.data.preference_worlds import plural_world
    from penchant.data.preferences import split_pairs

    folder = tmp_path_factory.mktemp("pairs")
    world = plural_world(n_users=60, n_items=20, pairs_per_user=30, seed=0)
    parts = split_pairs(world.pairs, (0.7, 0.15, 0.15), seed=0)
    paths = []
    for name, part in zip(("train", "valid", "test"), (parts.train, parts.valid, parts.test)):
        rows = [f"{part.user_ids[u]},{part.option_ids[a]},{part.option_ids[b]}" for u, a, b in zip(part.user, part.winner, part.loser)]
        paths.append(write(folder / f"{name}.csv", "user,winner,loser\n" + "\n".join(rows) + "\n"))
    return paths


def test_one_model_syntax_and_every_family_through_fit_and_tune(pair_files, tmp_path):
    train, valid, test = pair_files
    # `penchant fit` takes a preference model too, NAME:key=value and --param alike (--param wins)
    code, out, err = cli("fit", "--train", train, "--valid", valid, "--model", "personal-bt:factors=4,epochs=3",
                         "--param", "epochs=30", "--out", tmp_path / "pbt.npz")
    assert code == 0, err
    from penchant.models.preference import PreferenceModel

    model = PreferenceModel.load(tmp_path / "pbt.npz")
    assert model.name == "pbt" and (model.factors, model.epochs) == (4, 30)
    code, out, err = cli("prefs", "score", "--model-path", tmp_path / "pbt.npz", "--pairs", test, "--json", tmp_path / "s.json")
    assert code == 0, err
    scored = json.loads((tmp_path / "s.json").read_text())
    assert scored["pairs_scored"] == len(test.read_text().splitlines()) - 1 and scored["accuracy"] > 0.75
    # `penchant tune` searches a preference model's space on the validation pairs
    code, out, err = cli("tune", "--train", train, "--valid", valid, "--test", test, "--model", "bt", "--trials", "3",
                         "--json", tmp_path / "t.json")
    assert code == 0, err
    tuned = json.loads((tmp_path / "t.json").read_text())
    assert tuned["metric"] == "accuracy" and len(tuned["trials"]) == 3 and set(tuned["best_params"]) == {"alpha"}
    assert 0.5 < tuned["test"]["accuracy"] <= 1
    code, _, err = cli("tune", "--train", train, "--valid", valid, "--model", "maxent")
    assert code == 2 and "is a conversation model" in err


def test_one_data_set_is_a_positional_path_everywhere(pair_files, tmp_path):
    """`prefs compare` and `prefs export` (like `data inspect`, `split`, `ratings cv`) take the data
    set as a path; `--data PATH` still works; two different ones are an error."""
    train = pair_files[0]
    by_path = cli("prefs", "compare", train, "--source", "ids", "--json", tmp_path / "a.json")
    by_option = cli("prefs", "compare", "--data", train, "--source", "ids", "--json", tmp_path / "b.json")
    assert by_path.returncode == by_option.returncode == 0, by_path.stderr + by_option.stderr
    a, b = ([{k: v for k, v in row.items() if k != "fit_seconds"} for row in json.loads((tmp_path / f).read_text())["results"]]
            for f in ("a.json", "b.json"))
    assert a == b
    both = cli("prefs", "export", train, "--data", pair_files[1], "--source", "ids", "--out", tmp_path / "x.jsonl")
    assert both.returncode == 2 and "two data sets given" in both.stderr
    none = cli("compare", "--model", "pop")
    assert none.returncode == 2 and "or a data set to split" in none.stderr
