"""UltraFeedback's multi-aspect ratings and PRISM's individualised conversations as pairs, on small
files written here in the published layouts (openbmb/UltraFeedback, HannahRoseKirk/prism-alignment),
and a context-aware model that reads the aspect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.data.pair_files import comparison_layout, read_pair_files, read_pairs
from penchant.data.prism import read_prism
from penchant.data.ultrafeedback import ASPECTS, read_ultrafeedback
from penchant.errors import DataError
from tests.conftest import cli, write


def completion(response: str, ratings: dict[str, object], fine: float | None = None, overall: object = None) -> dict:
    """One completion as UltraFeedback publishes it (ratings as strings, "N/A" where none)."""
    return {"model": "m", "response": response, "custom_system_prompt": "", "principle": "helpfulness",
            "critique": "...", "fine-grained_score": fine, "overall_score": overall,
            "annotations": {a: {"Rating": str(r), "Rationale": "..."} for a, r in ratings.items()}}


def jsonl(path, rows):
    return write(path, "\n".join(json.dumps(r) for r in rows) + "\n")


def rating(h, o, i, t):
    return dict(zip(ASPECTS, (h, o, i, t)))


@pytest.fixture(scope="module")
def uf_file(tmp_path_factory):
    rows = [{"source": "flan", "instruction": "Name a colour.", "models": ["a", "b", "c"],
             "completions": [completion("Red.", rating(5, 2, 4, "N/A"), 11 / 3, 7),
                             completion("Blue, I think.", rating(3, 4, 4, 3), 3.5, 8),
                             completion("Green!", rating(3, 5, 1, 5), 3.5, 8)]},
            {"source": "flan", "instruction": "Say hi.", "models": ["d"],
             "completions": [completion("Hi.", rating(4, 4, 4, 4), 4.0, 6)]}]
    return jsonl(tmp_path_factory.mktemp("uf") / "uf.jsonl", rows)


def test_ultrafeedback_pairs_per_aspect_by_hand(uf_file):
    assert comparison_layout(uf_file) == "ultrafeedback"
    pairs = read_pairs(uf_file)
    got = sorted(zip(pairs.user_ids[pairs.user], pairs.chosen_text, pairs.rejected_text))
    # A=Red (5,2,4,N/A), B=Blue (3,4,4,3), C=Green (3,5,1,5): ties and N/A dropped
    assert got == sorted([("helpfulness", "Red.", "Blue, I think."), ("helpfulness", "Red.", "Green!"),
                          ("honesty", "Blue, I think.", "Red."), ("honesty", "Green!", "Red."),
                          ("honesty", "Green!", "Blue, I think."),
                          ("instruction_following", "Red.", "Green!"),
                          ("instruction_following", "Blue, I think.", "Green!"),
                          ("truthfulness", "Green!", "Blue, I think.")])
    assert all(p == f"[aspect: {u}] Name a colour." for p, u in zip(pairs.prompt, pairs.user_ids[pairs.user]))
    counts = {s.name: s.count for s in pairs.steps}
    assert counts["UltraFeedback prompts read"] == 2
    assert counts["prompts with fewer than two completions dropped"] == 1
    assert counts["pairs with equal ratings dropped"] == 2 and counts["pairs with an N/A rating or score dropped"] == 2
    assert counts["N/A ratings filled in option attributes"] == 1
    # each option carries its four ratings; Red's N/A truthfulness is the mean of 3, 5 and 4 (Hi.)
    red = pairs.option_attributes[pairs.option_text == "Red."]
    assert list(pairs.attribute_names) == list(ASPECTS) and len(red) == 3  # one option per aspect it is compared on
    np.testing.assert_allclose(red, [[5, 2, 4, 4]] * 3)


def test_ultrafeedback_overall_modes(uf_file):
    fine = read_ultrafeedback(uf_file, mode="fine-grained")
    assert sorted(zip(fine.chosen_text, fine.rejected_text)) == [("Red.", "Blue, I think."), ("Red.", "Green!")]
    assert (fine.user == -1).all() and set(fine.prompt) == {"Name a colour."}
    overall = read_ultrafeedback(uf_file, mode="overall")
    assert sorted(zip(overall.chosen_text, overall.rejected_text)) == [("Blue, I think.", "Red."), ("Green!", "Red.")]
    assert {s.name: s.count for s in overall.steps}["pairs with equal overall scores dropped"] == 1


def test_ultrafeedback_bad_records_name_line_and_field(tmp_path):
    good = {"instruction": "x", "completions": [completion("a", rating(1, 2, 3, 4)), completion("b", rating(2, 2, 2, 2))]}
    bad = {"instruction": "y", "completions": [completion("a", rating(1, 2, 3, 4)),
                                               completion("b", rating(2, "excellent", 2, 2))]}
    with pytest.raises(DataError, match=r"line 2, column 'completions\[1\]\.annotations\.honesty\.Rating'"):
        read_pairs(jsonl(tmp_path / "bad.jsonl", [good, bad]))
    no_aspect = {"instruction": "y", "completions": [{"response": "a", "annotations": {"helpfulness": {"Rating": "3"}}}]}
    with pytest.raises(DataError, match=r"line 2, column 'completions\[0\]\.annotations\.honesty'"):
        read_pairs(jsonl(tmp_path / "bad2.jsonl", [good, no_aspect]))
    with pytest.raises(DataError, match=r"line 1, column 'instruction'"):
        read_ultrafeedback(jsonl(tmp_path / "bad3.jsonl", [{"instruction": 3, "completions": []}]))


CONVERSATION = {
    "conversation_id": "c0", "user_id": "u1", "conversation_type": "unguided", "open_feedback": "fine",
    "conversation_history": [
        {"turn": 0, "role": "user", "content": "Hi", "within_turn_id": None},
        *({"turn": 0, "role": "model", "content": text, "model_provider": "p", "model_name": "n", "score": score,
           "if_chosen": chosen, "within_turn_id": k}
          for k, (text, score, chosen) in enumerate([("m0", 80, True), ("m1", 50, False), ("m2", 80, False),
                                                     ("m3", 20, False)])),
        {"turn": 1, "role": "user", "content": "Tell me more"},
        {"turn": 1, "role": "model", "content": "a", "score": 60, "if_chosen": True, "within_turn_id": 0},
        {"turn": 1, "role": "model", "content": "b", "score": 40, "if_chosen": False, "within_turn_id": 1},
        {"turn": 2, "role": "user", "content": "Bye"},
        {"turn": 2, "role": "model", "content": "x", "score": 70, "if_chosen": True, "within_turn_id": 0}]}
UNCHOSEN = {"conversation_id": "c1", "user_id": "u2", "conversation_history": [
    {"turn": 0, "role": "user", "content": "Q"},
    {"turn": 0, "role": "model", "content": "r0", "score": 50, "if_chosen": False, "within_turn_id": 0},
    {"turn": 0, "role": "model", "content": "r1", "score": 50, "if_chosen": False, "within_turn_id": 1}]}


@pytest.fixture(scope="module")
def prism_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prism")
    jsonl(folder / "conversations.jsonl", [CONVERSATION, UNCHOSEN])
    jsonl(folder / "survey.jsonl", [{"user_id": "u1", "system_string": "Be  brief.", "self_description": "...",
                                     "stated_prefs": {"factuality": 90, "safety": 80, "values": 70, "creativity": 10},
                                     "order_stated_prefs": {"factuality": 1, "safety": 2, "values": 3, "creativity": 4,
                                                            "other": 5}}])
    return folder


def test_prism_chosen_against_each_other_reply(prism_dir):
    pairs = read_prism(prism_dir / "conversations.jsonl")
    first, second = "\n\nHuman: Hi\n\nAssistant:", "\n\nHuman: Hi\n\nAssistant: m0\n\nHuman: Tell me more\n\nAssistant:"
    assert sorted(zip(pairs.prompt, pairs.chosen_text, pairs.rejected_text)) == sorted(
        [(first, "m0", "m1"), (first, "m0", "m2"), (first, "m0", "m3"), (second, "a", "b")])
    assert set(pairs.user_ids[pairs.user]) == {"u1"}  # u2's turn names no chosen reply
    counts = {s.name: s.count for s in pairs.steps}
    assert counts["turns with fewer than two replies dropped"] == 1
    assert counts["turns without exactly one chosen reply dropped"] == 1
    assert counts["chosen replies level in score with the other kept"] == 1


def test_prism_score_ordered_pairs_and_stated_criterion(prism_dir):
    pairs = read_prism(prism_dir / "conversations.jsonl", prism_dir / "survey.jsonl", pairs="scores")
    assert sorted(zip(pairs.chosen_text, pairs.rejected_text)) == sorted(
        [("m0", "m1"), ("m0", "m3"), ("m2", "m1"), ("m2", "m3"), ("m1", "m3"), ("a", "b")])
    counts = {s.name: s.count for s in pairs.steps}
    assert counts["pairs with equal scores dropped"] == 2  # m0 = m2, r0 = r1
    assert counts["conversations whose participant is not in the survey"] == 1
    assert all(p.startswith("[stated: factuality, safety, values; Be brief.] \n\nHuman: Hi") for p in pairs.prompt)
    # read_pairs finds the survey beside the conversations, by the file's fields
    assert comparison_layout(prism_dir / "conversations.jsonl") == "prism"
    assert read_pairs(prism_dir / "conversations.jsonl").prompt[0].startswith("[stated: factuality")


def test_prism_bad_records_name_line_and_field(tmp_path):
    bad = json.loads(json.dumps(CONVERSATION))
    bad["conversation_history"][2]["score"] = "high"
    with pytest.raises(DataError, match=r"line 2, column 'conversation_history\[2\]\.score'"):
        read_prism(jsonl(tmp_path / "c.jsonl", [UNCHOSEN, bad]))
    bad["conversation_history"][2].update(score=3, role="assistant")
    with pytest.raises(DataError, match=r"line 1, column 'conversation_history\[2\]\.role'"):
        read_prism(jsonl(tmp_path / "c2.jsonl", [bad]))
    with pytest.raises(DataError, match=r"line 1, column 'order_stated_prefs\.safety'"):
        read_prism(jsonl(tmp_path / "c3.jsonl", [UNCHOSEN]),
                   jsonl(tmp_path / "s.jsonl", [{"user_id": "u2", "order_stated_prefs": {"safety": "first"}}]))


def disagreeing_file(path, prompts: int, seed: int):
    """Four completions a prompt whose honesty and truthfulness run against helpfulness and
    instruction following (6 − h, ±1): on pooled pairs the aspects cancel out."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(prompts):
        h = rng.integers(1, 6, size=4)
        o = np.clip(6 - h + rng.integers(-1, 2, size=4), 1, 5)
        i = np.clip(h + rng.integers(-1, 2, size=4), 1, 5)
        t = np.clip(6 - h + rng.integers(-1, 2, size=4), 1, 5)
        rows.append({"source": "synthetic", "instruction": f"prompt {seed}-{p}", "models": list("abcd"),
                     "completions": [completion(f"reply {seed}-{p}-{k}", rating(h[k], o[k], i[k], t[k]))
                                     for k in range(4)]})
    return jsonl(path, rows)


@pytest.fixture(scope="module")
def disagreeing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aspects")
    return disagreeing_file(folder / "uf.jsonl", 40, 1), disagreeing_file(folder / "uf_test.jsonl", 20, 2)


def test_dpa_reads_the_aspect_and_predicts_held_out_pairs_better(disagreeing):
    from dataclasses import replace

    from penchant.models.preference.dpa import DirectionalPreference

    _, (train, test) = read_pair_files(disagreeing)
    assert train.option_attributes is not None and set(test.user_ids[test.user]) == set(ASPECTS)

    def accuracy(pairs_train, pairs_test):
        model = DirectionalPreference(attributes=0, given=True, epochs=60, seed=0).fit(pairs_train)
        return float((model.prob(pairs_test.user, pairs_test.winner, pairs_test.loser) > 0.5).mean())

    with_aspect = accuracy(train, test)
    blind = [replace(p, user=np.full(len(p), -1, np.int64)) for p in (train, test)]  # nobody named: no aspect
    without = accuracy(*blind)
    assert with_aspect > 0.9 and without < 0.7 and with_aspect - without > 0.25, (with_aspect, without)


def test_prefs_evaluate_reads_ultrafeedback_files(disagreeing, tmp_path):
    train, test = disagreeing
    ran = cli("prefs", "evaluate", "--train", train, "--test", test, "--model", "dpa", "--param", "given=true",
              "--param", "attributes=0", "--param", "epochs=40", "--json", tmp_path / "r.json")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    bt = next(b for b in result["baselines"] if b["model"] == "bt")
    assert result["accuracy"] > 0.9 and result["accuracy"] > bt["accuracy"] + 0.25, result


#: replies from curt to thorough: helpfulness and instruction following rise with the level,
#: honesty and truthfulness (rated 6 − level) fall
LEVELS = ("Sure.", "Sure, here it is.", "Sure, here it is with a short reason.",
          "Sure, here it is, with reasons and an example.",
          "Sure, here it is, with several reasons, two examples, and a detailed step-by-step explanation.")


def test_a_text_model_reads_the_aspect_in_the_prompt(tmp_path):
    """bt over [e(reply), e(prompt) ⊙ e(reply)] ranks held-out replies by the aspect named in the
    prompt; with the aspect cut from the prompts the same pairs contradict each other (P = ½)."""
    from dataclasses import replace

    from penchant.eval.prefs import pair_accuracy
    from penchant.models.registry import create

    def rows(prompts: int, seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)
        out = []
        for p in range(prompts):
            level = rng.permutation(5)[:4] + 1
            out.append({"instruction": f"Question {seed}-{p}?", "completions": [
                completion(LEVELS[v - 1], rating(v, 6 - v, v, 6 - v)) for v in level]})
        return out

    _, (train, test) = read_pair_files([jsonl(tmp_path / "a.jsonl", rows(8, 1)), jsonl(tmp_path / "b.jsonl", rows(4, 2))])

    def accuracy(fit_on, judge):
        model = create("bt", features="text").fit(fit_on)
        population = np.full(len(judge), -1)
        return float(pair_accuracy(model.prob(population, judge.winner, judge.loser)).mean())

    def cut(p):
        return replace(p, option_context=np.array([c.split("] ", 1)[1] for c in p.option_context], dtype=object))

    with_aspect, without = accuracy(train, test), accuracy(cut(train), cut(test))
    assert with_aspect > 0.9 and abs(without - 0.5) < 0.05, (with_aspect, without)


def test_scoring_a_rated_replies_file_points_to_export(disagreeing, tmp_path):
    train, test = disagreeing
    assert cli("prefs", "fit", "--train", train, "--model", "bt", "--out", tmp_path / "m.penchant").returncode == 0
    code, _, err = cli("prefs", "score", "--model-path", tmp_path / "m.penchant", "--pairs", test, "--json", tmp_path / "s")
    assert code == 2 and "holds rated replies (ultrafeedback)" in err and "prefs export" in err
    code, _, _ = cli("prefs", "export", test, "--source", "text", "--out", tmp_path / "trl.jsonl")
    first = json.loads((tmp_path / "trl.jsonl").read_text().splitlines()[0])
    assert code == 0 and first["prompt"].startswith("[aspect: ") and first["user"] in ASPECTS
