"""Preference following: the rules by hand, a scripted assistant that keeps preferences only when
told (follow rate 1 stated, 0 unstated), and `penchant llm prefeval` with the embedded model."""

from __future__ import annotations

import json

import pytest

from penchant.llm import Endpoint, LLMClient
from penchant.llm.prefeval import CASES, Case, conversation, evaluate
from tests.conftest import cli
from tests.llm.scripted import ScriptedServer, completion

VEG = next(c for c in CASES if c.name == "vegetarian")


@pytest.mark.parametrize(("answer", "follows"), [
    ("Try a mushroom risotto.", True),
    ("Try roast chicken with potatoes.", False),
    ("Grilled sausages are great.", False),            # a plural is still the thing
    ("A hamper of vegetables works.", True),           # 'ham' only as a word
    ("Make a chilli without meat. Add beans.", True),  # named in a negated sentence
    ("You can't go wrong with lentils. Add bacon.", False),
])
def test_avoid_rules_by_hand(answer, follows):
    assert VEG.follows(answer) is follows


def test_word_limit_and_the_conversation_layout():
    short = Case("short", "Be brief.", "Explain tides.", max_words=3)
    assert short.follows("Moon pulls water.") and not short.follows("The moon pulls the water.")
    chat = conversation(VEG, 2, stated=True)
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert chat[0]["content"] == VEG.preference and chat[-1]["content"] == VEG.request
    assert conversation(VEG, 2, stated=False) == chat[2:]


def test_an_assistant_that_keeps_stated_preferences_scores_one_and_zero_unstated():
    def keeps(n, body):
        told = any(c.preference == m["content"] for c in CASES for m in body["messages"])
        return 200, completion("A short plain answer." if told else
                               "Have chicken, fly there, serve wine, pack peanuts, watch horror, drink coffee, "
                               "use facebook, and here is a long explanation of how a bicycle works: " + "the pedals turn the chain " * 4), 0

    with ScriptedServer(keeps) as server:
        result = evaluate(LLMClient(Endpoint(server.url, "scripted"), cache=False), distances=(0, 3))
    assert [r["follow_rate"] for r in result["by_distance"]] == [1.0, 1.0]
    assert [r["follow_rate_unstated"] for r in result["by_distance"]] == [0.0, 0.0]
    assert len(result["answers"]) == 2 * len(CASES) * 2


@pytest.mark.xdist_group("llm")
def test_mechanics_of_prefeval_end_to_end_with_the_embedded_model(llm, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    code, out, err = cli("llm", "prefeval", "--case", "vegetarian", "--case", "short answers", "--distance", "1",
                         "--max-tokens", "30", "--json", tmp_path / "p.json")
    assert code == 0, err
    result = json.loads((tmp_path / "p.json").read_text())
    (row,) = result["by_distance"]
    assert row["distance"] == 1 and row["cases"] == 2 and 0 <= row["follow_rate"] <= 1
    assert len(result["answers"]) == 4 and all(a["answer"] for a in result["answers"])
    code, _, err = cli("llm", "prefeval", "--case", "nonsense", "--json", tmp_path / "x.json")
    assert code == 2 and "unknown case 'nonsense'" in err
