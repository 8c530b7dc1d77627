"""The real `penchant` command, end to end: contracts for scripts, and clean errors (exit 2, one line).

Commands run in this process through the command's own entry point (`cli`: no interpreter start);
the installed command as a process is tested in test_fit_recommend.py and by the missing extras below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, cli, write


@pytest.fixture(scope="module")
def split_files(ml100k_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split")
    r = cli("split", ml100k_dir, "--out", out, "--ratios", "0.8,0.1,0.1", "--seed", "2026")
    assert r.returncode == 0, r.stderr
    return out


def test_split_writes_three_parts_and_a_report(split_files):
    report = json.loads((split_files / "split.json").read_text())
    assert [report[p]["interactions"] for p in ("train", "valid", "test")] == [80000, 10009, 9991]
    header = (split_files / "train.tsv").read_text().splitlines()[0]
    assert header == "user\titem\trating\ttimestamp"


def test_evaluate_json_contract(split_files, tmp_path):
    out = tmp_path / "res.json"
    r = cli("evaluate", "--train", split_files / "train.tsv", "--valid", split_files / "valid.tsv",
            "--test", split_files / "test.tsv", "--model", "itemknn", "--param", "k=50", "--k", "10",
            "--k", "20", "--json", out)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    for key in ("model", "params", "metrics", "users_evaluated", "fit_seconds", "eval_seconds"):
        assert key in res
    assert res["model"] == "itemknn" and res["params"]["k"] == 50 and res["users_evaluated"] == 943
    for key in ("ndcg@10", "recall@10", "ndcg@20", "recall@20", "precision@10", "mrr@10", "hit@10", "map@10"):
        assert 0 < res["metrics"][key] < 1
    assert res["protocol"] == "full ranking"


def test_evaluate_recbole_files_with_min_rating(ml100k_dir, tmp_path):
    out = tmp_path / "split"
    assert cli("split", ml100k_dir, "--out", out, "--format", "inter", "--seed", "1").returncode == 0
    assert (out / "ml-100k.item").exists() and (out / "ml-100k.kg").exists()
    r = cli("data", "inspect", out / "ml-100k.train.inter")
    assert r.returncode == 0 and "class" in r.stdout and "kg:film.film.directed_by" in r.stdout
    res_path = tmp_path / "r.json"
    r = cli("evaluate", "--train", out / "ml-100k.train.inter", "--valid", out / "ml-100k.valid.inter",
                 "--test", out / "ml-100k.test.inter", "--model", "pop", "--min-rating", "4", "--json", res_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(res_path.read_text())
    assert res["users_evaluated"] < 943 and res["metrics"]["ndcg@10"] > 0


@pytest.mark.slow
def test_compare_ranks_ease_over_itemknn_over_pop(split_files, tmp_path):
    md, js = tmp_path / "board.md", tmp_path / "board.json"
    r = cli("compare", "--train", split_files / "train.tsv", "--valid", split_files / "valid.tsv",
            "--test", split_files / "test.tsv", "--model", "pop", "--model", "itemknn", "--model", "ease",
            "--markdown", md, "--json", js)
    assert r.returncode == 0, r.stderr
    board = json.loads(js.read_text())
    assert [row["model"] for row in board["rows"]] == ["ease", "itemknn", "pop"]
    assert all(row["p_vs_best"] < 0.05 for row in board["rows"][1:])
    assert "| 1 | `ease` |" in md.read_text() and "Holm" in md.read_text()


def test_data_inspect_and_models(ml100k_dir, tmp_path):
    r = cli("data", "inspect", ml100k_dir, "--json", tmp_path / "s.json")
    assert r.returncode == 0 and "100,000" in r.stdout
    assert json.loads((tmp_path / "s.json").read_text())["users"] == 943
    r = cli("models", "--json", tmp_path / "m.json")
    assert r.returncode == 0 and "itemknn" in r.stdout
    names = {m["name"] for m in json.loads((tmp_path / "m.json").read_text())}
    assert names >= {"pop", "itemknn", "ease"}


BROKEN = {
    "missing_column.csv": ("user,thing\n1,2\n", "line 1"),
    "bad_number.csv": ("user,item,rating\n1,2,4\n1,3,x\n", "line 3, column 'rating'"),
    "wrong_delimiter.tsv": ("user,item\n1,2\n", "delimiter"),
    "empty.csv": ("", "empty"),
    "bad_encoding.csv": (b"user,item\n1,\xff\xfe\n", "line 2"),
    "ragged.tsv": ("user\titem\n1\t2\t3\n", "line 2"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("command", ["evaluate", "inspect"])
def test_broken_files_give_one_line_and_exit_2(name, command, tmp_path, split_files):
    content, expected = BROKEN[name]
    bad = write(tmp_path / name, content)
    if command == "inspect":
        r = cli("data", "inspect", bad)
    else:
        r = cli("evaluate", "--train", bad, "--test", split_files / "test.tsv", "--model", "pop")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("penchant: error: ") and name in lines[0] and expected in lines[0]


def test_unknown_side_file_id_gives_exit_2(tmp_path):
    write(tmp_path / "d" / "d.inter", "user_id:token\titem_id:token\n1\t10\n2\t99\n")
    write(tmp_path / "d" / "d.item", "item_id:token\tclass:token_seq\n10\tA\n")
    r = cli("data", "inspect", tmp_path / "d")
    assert r.returncode == 2 and "d.inter, line 3" in r.stderr and "'99'" in r.stderr


def test_bad_parameters_give_exit_2(split_files):
    r = cli("evaluate", "--train", split_files / "train.tsv", "--test", split_files / "test.tsv",
                 "--model", "itemknn", "--param", "neighbours=3")
    assert r.returncode == 2 and "no parameter 'neighbours'" in r.stderr
    r = cli("evaluate", "--train", split_files / "train.tsv", "--test", split_files / "test.tsv", "--model", "nope")
    assert r.returncode == 2 and "unknown model" in r.stderr


@pytest.mark.slow
def test_quickstart_writes_a_report(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PENCHANT_DATA", str(shared_data))
    r = cli("quickstart", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "rep" / "quickstart.md").read_text()
    board = json.loads((tmp_path / "rep" / "quickstart.json").read_text())
    assert [row["model"] for row in board["rows"]] == ["ease", "itemknn", "pop"]
    assert "full ranking" in text and "seed 0" in text


def test_encoding_option(tmp_path):
    f = write(tmp_path / "latin.csv", "user,item\n1,caf\xe9\n2,caf\xe9\n".encode("latin-1"))
    assert cli("data", "inspect", f).returncode == 2
    r = cli("data", "inspect", f, "--encoding", "latin-1")
    assert r.returncode == 0, r.stderr


def test_ratings_cv_command(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["user,item,rating"] + [f"u{u},i{i},{rng.integers(1, 6)}" for u in range(40) for i in rng.choice(30, 10, replace=False)]
    data = write(tmp_path / "r.csv", "\n".join(rows) + "\n")
    r = cli("ratings", "cv", data, "--model", "biasedmf", "--folds", "3", "--param", "epochs=4",
            "--json", tmp_path / "cv.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "cv.json").read_text())
    assert len(res["folds"]) == 3 and 0.5 < res["rmse"] < 3
    r = cli("ratings", "cv", data, "--model", "ease")
    assert r.returncode == 2 and "is a ranking model; here a rating model is needed: biasedmf, fm" in r.stderr


def test_kcore_and_min_rating_in_inspect(ml100k_dir, tmp_path):
    r = cli("data", "inspect", ml100k_dir, "--min-rating", "4", "--kcore", "10", "--json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["per_user"]["min"] >= 10 and s["per_item"]["min"] >= 10
    names = [step["name"] for step in s["steps"]]
    assert names[-3:] == ["below min rating", "k-core", "unused ids"]


def test_prefs_compare_json_and_bad_parameter(tmp_path):
    from penchant.data.preference_worlds import cyclic_world

    world = cyclic_world(n_triples=6, n_pairs=4000, cycle_share=0.8, seed=1)
    rows = "\n".join(f"o{w},o{l}" for w, l in zip(world.pairs.winner, world.pairs.loser))
    data = write(tmp_path / "pairs.csv", "winner,loser\n" + rows + "\n")
    r = cli("prefs", "compare", "--data", data, "--source", "ids", "--model", "gpm:blocks=2,epochs=60",
            "--json", tmp_path / "out.json")
    assert r.returncode == 0, r.stderr
    payload = json.loads((tmp_path / "out.json").read_text())
    assert payload["train"] + payload["valid"] + payload["test"] == 4000
    acc = {row["model"]: row["accuracy"] for row in payload["results"]}
    assert set(acc) == {"winrate", "bt", "gpm blocks=2 epochs=60"}
    assert acc["gpm blocks=2 epochs=60"] > acc["bt"] + 0.1, acc
    assert all(row["user_macro"] is None for row in payload["results"])  # no users in these pairs
    bad = cli("prefs", "compare", "--data", data, "--source", "ids", "--model", "gpm:width=3")
    assert bad.returncode == 2 and "model 'gpm' has no parameter 'width'" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_prefs_evaluate_contract_on_separate_train_and_test_files(tmp_path):
    """``penchant prefs evaluate --train F --test F --model NAME --param k=v --json OUT``: files read
    apart share one vocabulary, OUT holds the contract's fields, baselines sit beside the model;
    ``fit`` saves a model that loads; a bad parameter is one clear line and exit 2."""
    from penchant.data.preference_worlds import plural_world
    from penchant.models.preference import PreferenceModel

    p = plural_world(n_users=200, seed=0).pairs
    test = np.random.default_rng(0).random(len(p)) < 0.2
    files = {}
    for name, mask in (("train", ~test), ("test", test)):
        rows = [f"{p.user_ids[u]},{p.option_ids[a]},{p.option_ids[b]}" for u, a, b in zip(p.user[mask], p.winner[mask], p.loser[mask])]
        files[name] = write(tmp_path / f"{name}.csv", "user,winner,loser\n" + "\n".join(rows) + "\n")
    r = cli("prefs", "evaluate", "--train", files["train"], "--test", files["test"], "--model", "pbt",
            "--param", "loss=robust", "--param", "epsilon=0.05", "--json", tmp_path / "out.json")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert {"model", "params", "accuracy", "user_macro_accuracy", "log_loss", "pairs_evaluated", "fit_seconds"} <= set(out)
    assert out["model"] == "pbt" and out["params"] == {"loss": "robust", "epsilon": 0.05}
    assert out["pairs_evaluated"] == int(test.sum()) and out["fit_seconds"] > 0
    base = {b["model"]: b["accuracy"] for b in out["baselines"]}
    assert set(base) == {"winrate", "bt"} and out["accuracy"] > base["bt"] + 0.1, (out["accuracy"], base)
    r = cli("prefs", "fit", "--train", files["train"], "--model", "vpl", "--param", "epochs=5", "--out", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert PreferenceModel.load(tmp_path / "m.npz").name == "vpl"
    bad = cli("prefs", "evaluate", "--train", files["train"], "--test", files["test"], "--model", "pbt",
                   "--param", "loss=fancy")
    assert bad.returncode == 2 and "loss must be one of plain, smooth, robust, forward" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_prefs_export_writes_the_trl_layout_from_ratings(tmp_path):
    data = write(tmp_path / "r.csv", "user,item,rating\na,x,5\na,y,2\nb,x,1\nb,y,4\nb,z,4\n")
    r = cli("prefs", "export", "--data", data, "--source", "ratings", "--out", tmp_path / "out.jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    got = sorted((row["user"], row["chosen"], row["rejected"]) for row in rows)  # items without titles: by id
    assert got == [("a", "item x", "item y"), ("b", "item y", "item x"), ("b", "item z", "item x")]
    assert "ties dropped: 1" in r.stdout


def test_every_help_text_is_plain():
    """`--help` of every command and group: exit 0, value types in the command line's words
    (PATH, TEXT, INTEGER), never Python's (<str>, <int>, <bool>), and no markup left in."""
    import re

    import typer

    from penchant.cli.main import app

    def walk(command, path):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    paths = list(walk(typer.main.get_command(app), []))
    assert ["converse", "evaluate"] in paths and ["prefs", "score"] in paths and len(paths) > 25
    for path in paths:
        code, out, err = cli(*path, "--help")
        assert code == 0 and "Usage:" in out, (path, err)
        assert not re.search(r"<(str|int|float|bool|path)>|\[/?(bold|yellow|red|green)\]|list\[", out), (path, out)
    assert "PATH" in cli("fit", "--help").stdout and "INTEGER" in cli("compare", "--help").stdout


def test_one_default_seed_for_every_command_and_model():
    """Every `--seed` and every registered model's `seed` default to penchant.DEFAULT_SEED."""
    import typer

    from penchant import DEFAULT_SEED
    from penchant.cli.main import app
    from penchant.models.registry import entry, model_names

    def seeds(command):
        yield from (p.default for p in command.params if p.name == "seed")
        for sub in getattr(command, "commands", {}).values():
            yield from seeds(sub)

    found = list(seeds(typer.main.get_command(app)))
    assert len(found) >= 10 and set(found) == {DEFAULT_SEED}, found
    models = [p.default for name in model_names() for p in entry(name).params() if p.name == "seed"]
    assert len(models) >= 15 and set(models) == {DEFAULT_SEED}


@pytest.mark.parametrize("missing, args, extra", [
    ("uvicorn", ["serve", "--data-dir", "svc"], "serve"),
    ("fastapi", ["keys", "list", "--data-dir", "svc"], "serve"),
    ("sqlalchemy", ["versions", "import", "m.npz", "--data-dir", "svc"], "serve"),
    ("sentence_transformers", ["prefs", "fit", "--train", "pairs.jsonl", "--model", "bt", "--param", "features=text",
                               "--out", "m.npz"], "text"),
    ("ray", ["evaluate", "--train", "pairs.jsonl", "--test", "pairs.jsonl", "--model", "pop", "--backend", "ray"], "ray"),
])
def test_a_part_without_its_extra_names_the_extra(tmp_path, missing, args, extra):
    """The core install leaves the service, the sentence encoder and Ray out: using one without its
    extra (the module made unimportable here) is one line naming `pip install 'penchant[...]'`, exit 2."""
    write(tmp_path / "pairs.jsonl", '{"prompt": "p", "chosen": "yes", "rejected": "no"}\n' * 3)
    code = ("import sys; sys.modules[%r] = None\nfrom penchant.cli.main import main\nmain(%r)" % (missing, args))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"pip install 'penchant[{extra}]'" in r.stderr and missing in r.stderr, r.stderr


def test_prefs_fit_says_when_no_pairs_were_left_for_validation(tmp_path):
    pairs = write(tmp_path / "p.jsonl", '{"prompt": "p", "chosen": "yes please", "rejected": "no"}\n'
                                        '{"prompt": "q", "chosen": "sure thing", "rejected": "nah"}\n')
    code, out, err = cli("prefs", "fit", "--train", pairs, "--model", "bt", "--param", "features=bow", "--out", tmp_path / "m.npz")
    assert code == 0 and "no validation pairs" in out, err
