"""``penchant prefs explain``: reply features pinned to hand counts, a planted preference found, and
the real HH-RLHF harmless-base file explained end to end in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.eval.explain import fit_logistic
from penchant.eval.reply_features import FEATURES, mtld, reply_features, sentences, syllables
from tests.conftest import cli

COL = {name: k for k, name in enumerate(FEATURES)}


def test_features_of_small_replies_match_hand_counts():
    replies = ["Hello there. I’m sorry, but I can’t do that. The U.S. is big!\n1. Eat food\n- Drink (water)",
               "Barack Obama went to Paris. Ok, thank you!", "", "the cat sat on the mat",
               "Please, thank you. Thanks! Sorry? Can I ask why?"]
    f = reply_features(replies, ["what", "who went to Paris", "", "The mat", ""])
    assert f.shape == (5, len(FEATURES))
    # 19 words (I'm and can't are one word each, U.S. two): 61 letters
    assert f[0, COL["words"]] == pytest.approx(np.log(20)) and f[0, COL["word_length"]] == pytest.approx(61 / 19)
    assert f[0, COL["refusal"]] == 1 and f[0, COL["politeness"]] == 1  # curly quotes straightened; "sorry"
    assert f[0, COL["list_lines"]] == 2 and f[0, COL["brackets"]] == 1
    # proper-noun runs: "U.S." counts; "Eat" opens a line-sentence and is a common word: it does not
    assert f[0, COL["entities"]] == pytest.approx(100 / 19)
    # Barack Obama (one run), Paris; "Ok" opens a sentence and is in the lexicon; nouns Barack, Obama, Paris, Ok
    assert f[1, COL["entities"]] == pytest.approx(100 * 2 / 8) and f[1, COL["nouns"]] == pytest.approx(4 / 8)
    assert f[1, COL["prompt_overlap"]] == pytest.approx(3 / 8)  # went, to, paris of 8 words
    assert f[1, COL["refusal"]] == 0 and f[1, COL["politeness"]] == 1
    assert np.array_equal(f[2], [0, 0, 206.835] + [0] * (len(FEATURES) - 3))
    # 6 words, 1 sentence, 6 syllables: 206.835 − 1.015·6 − 84.6; no type-token ratio falls to 0.72:
    # each pass is 6 words over a partial factor (1 − 5/6)/(1 − 0.72)
    assert f[3, COL["reading_ease"]] == pytest.approx(206.835 - 1.015 * 6 - 84.6)
    assert f[3, COL["diversity"]] == pytest.approx(6 * 0.28 * 6) and f[3, COL["prompt_overlap"]] == pytest.approx(3 / 6)
    assert f[4, COL["politeness"]] == 4 and f[4, COL["questions"]] == 2 and f[4, COL["refusal"]] == 0
    assert [syllables(w) for w in ("make", "table", "rhythm", "queue", "beautiful", "42")] == [1, 2, 1, 1, 3, 1]
    assert sentences("U.S. law is old. Is it? Yes") == 4  # "U.S" ends one and sentences("...") == 0
    assert mtld(["a", "a", "b", "b"]) == 2.0 and mtld([]) == 0.0


def test_newton_fit_matches_the_optimum_of_a_one_feature_logit():
    # one feature, z = ±1 with 30 and 10 pairs: Σ log σ(zβ) − β²/2 is maximal where 30(1−σ(β)) − 10σ(β) = β
    z = np.array([[1.0]] * 30 + [[-1.0]] * 10)
    beta, hess = fit_logistic(z, penalty=1.0)
    p = 1 / (1 + np.exp(-beta[0]))
    assert 30 * (1 - p) - 10 * p == pytest.approx(beta[0], abs=1e-8)
    assert hess[0, 0] == pytest.approx(40 * p * (1 - p) + 1)


@pytest.fixture(scope="module")
def harmless(shared_data):
    return shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def test_a_planted_list_preference_gets_the_largest_effect(harmless, tmp_path):
    """Real replies, a made-up choice: in every pair one reply (drawn at random) is given a two-line
    list and is the one chosen; the list feature must lead, its interval clear of 0."""
    from penchant.data.pair_files import read_pairs

    real = read_pairs(harmless).subset(np.arange(300))
    rng = np.random.default_rng(3)
    rows = []
    for prompt, a, b in zip(real.prompt, real.chosen_text, real.rejected_text):
        listed, other = (a, b) if rng.random() < 0.5 else (b, a)
        rows.append({"prompt": prompt, "chosen": listed + "\n1. one thing\n2. another", "rejected": other})
    path = tmp_path / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = cli("prefs", "explain", path, "--bootstrap", "200", "--json", tmp_path / "e.json")
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    effects = {r["feature"]: r for r in result["features"]}
    top = max(effects.values(), key=lambda r: r["effect"] or -np.inf)
    assert top["feature"] == "list_lines" and top["interval"][0] > 0
    assert result["accuracy"] > 0.95 and result["n_pairs"] == 300
    assert "list_lines" in out


def test_harmless_base_explained_end_to_end(harmless, tmp_path):
    code, out, err = cli("prefs", "explain", harmless, "--bootstrap", "200", "--json", tmp_path / "h.json")
    assert code == 0, err
    result = json.loads((tmp_path / "h.json").read_text())
    assert result["n_pairs"] == 2312 and [r["feature"] for r in result["features"]] == list(FEATURES)
    assert result["seconds"] < 60  # the bound on this machine
    for r in result["features"]:
        assert r["interval"][0] <= r["effect"] <= r["interval"][1]
        assert r["odds_ratio"] == pytest.approx(np.exp(r["effect"]), rel=1e-4)
    effects = {r["feature"]: r for r in result["features"]}
    # the less harmful reply is the shorter one: length's effect is negative, its interval clear of 0
    assert effects["words"]["interval"][1] < 0 and effects["words"]["chosen_mean"] < effects["words"]["rejected_mean"]
    assert result["accuracy"] > result["length_only_accuracy"] > 0.5
    assert "held-out accuracy" in out


def test_id_comparisons_are_refused_with_one_line(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("user,winner,loser\nu1,a,b\n")
    code, _, err = cli("prefs", "explain", path)
    assert code != 0 and "no reply text" in err and len(err.strip().splitlines()) == 1
