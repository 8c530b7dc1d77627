"""Conversations in words: with a model that phrases, answers and reads faithfully (scripted, over
HTTP) the text conversations must reach exactly the attribute conversations' results on the same
episodes; with the embedded model, `converse evaluate --text` runs end to end and reports how many
answers it read right."""

from __future__ import annotations

import json
import re

import pytest

from penchant.converse.experiment import evaluate_policy, prepare
from penchant.llm import Endpoint, LLMClient
from penchant.llm.conversation import TextUser
from tests.conftest import cli
from tests.llm.scripted import ScriptedServer, completion


def faithful(n: int, body: dict):
    system, text = body["messages"][0]["content"], body["messages"][-1]["content"]
    if system.startswith("You are a film recommender"):
        return 200, completion("Would you like a film with " + text.split("with: ")[1]), 0
    if system.startswith("You are a person"):
        wanted = set(system.split("whose attributes are: ")[1].split(". Answer")[0].split(", "))
        asked = text.split("Would you like a film with ")[1].rstrip(".").split("; ")
        return 200, completion("I want: " + "; ".join(a for a in asked if a in wanted) + ".|"), 0
    keys = re.search(r"for the keys (.*)\.$", text).group(1).split(", ")
    asked = text.split("asked about: ")[1].split(".\n")[0].split("; ")
    said = text.split("I want: ")[1].split(".|")[0].split("; ")
    return 200, completion(json.dumps({k: a in said for k, a in zip(keys, asked)})), 0


def test_faithful_text_conversations_match_attribute_conversations(ml100k):
    setup = prepare(ml100k, episodes=6, valid_episodes=2, seed=3)
    plain = evaluate_policy(setup, "maxent")
    titles = ml100k.item_text.astype(str)
    with ScriptedServer(faithful) as server:
        client = LLMClient(Endpoint(server.url, "scripted"), cache=False)
        worded = evaluate_policy(setup, "maxent", simulated_user=lambda g, t, rng: TextUser(g, t, rng, client=client,
                                                                                             title=titles[t]))
    for key in ("sr@15", "avg_turns", "questions_per_episode", "lists_per_episode"):
        assert worded[key] == plain[key]
    assert worded["understood"] == 1.0 and worded["answers_read"] == pytest.approx(plain["values_offered_per_episode"] * 6, abs=0.01)
    assert len(worded["transcripts"]) == 6 and "transcripts" not in plain


@pytest.mark.xdist_group("llm")
def test_mechanics_of_converse_evaluate_in_words_with_the_embedded_model(llm, ml100k_dir, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    code, out, err = cli("converse", "evaluate", ml100k_dir, "--policy", "maxent", "--episodes", "1", "--text",
                         "--json", tmp_path / "c.json")
    assert code == 0, err
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["text"] and result["episodes"] == 1 and 0 <= result["understood"] <= 1
    turns = result["transcripts"][0]
    assert len(turns) == result["answers_read"] and all(t["question"] and t["reply"] for t in turns)
    assert "answers read as the attribute user would have given them" in out
