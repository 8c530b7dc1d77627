"""Learning a writer's preference from edits (CIPHER): the writer's rules by hand and as invariants,
the learner against no learning and the oracle with a capable scripted model over HTTP (the cost of
later drafts must fall to the oracle's), and the embedded model end to end."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penchant.llm import Endpoint, LLMClient
from penchant.llm.edits import PREFERENCES, WRITER, Context, EditLearner, curve, edit, edit_cost, run_edits
from tests.conftest import cli
from tests.llm.scripted import ScriptedServer, completion

BASE = "I'm sure you'll love this film! It's funny and warm. The cast is great. Don't miss it."


def test_the_writer_edits_by_hand():
    assert edit(BASE, ("concise", "formal")) == "I am sure you will love this film. It is funny and warm."
    assert edit(BASE, ("bullet points", "ends with a question")) == (
        "- I'm sure you'll love this film!\n- It's funny and warm.\n- The cast is great.\n- Don't miss it.\n"
        "- Would you watch it?")
    assert edit_cost("kitten", "sitting") == 3


sentence = st.text(alphabet="abc xyz'", min_size=1, max_size=12).map(lambda s: s.strip() or "a").flatmap(
    lambda s: st.sampled_from([s + ".", s + "!", s + "?", "I'm " + s + "."]))


@given(st.lists(sentence, min_size=1, max_size=5),
       st.sets(st.sampled_from(list(PREFERENCES)), max_size=4))
def test_an_edited_draft_needs_no_further_edit(parts, preference):
    once = edit(" ".join(parts), preference)
    assert edit(once, preference) == once and edit_cost(once, edit(once, preference)) == 0


def capable_model(n: int, body: dict):
    """A model that follows preference instructions exactly and reads edits correctly."""
    text = body["messages"][-1]["content"]
    if "The writer's edit:" in text:
        draft, edited = re.search(r"Draft:\n(.*)\n\nThe writer's edit:\n(.*)\n\nWhich", text, re.S).groups()
        named = []
        if "'" in draft and "'" not in edited or "!" in draft and "!" not in edited:
            named.append("formal")
        if edited.startswith("- "):
            named.append("bullet points")
        if edited.endswith("?") and not draft.endswith("?"):
            named.append("ends with a question")
        if edited.count(".") + edited.count("!") < draft.count(".") + draft.count("!"):
            named.append("concise")
        return 200, completion(json.dumps({"preferences": named or ["detailed"]})), 0
    asked = text.split("preferences: ")[1] if "preferences: " in text else ""
    chosen = [name for name, (describe, _) in PREFERENCES.items() if describe in asked]
    return 200, completion(edit(BASE, chosen)), 0


def test_cipher_learns_the_writer_with_a_capable_model(tmp_path):
    kinds = list(WRITER)
    contexts = [Context(f"Write a short note recommending film {t}, a {kinds[t % 4].lower()}.", kinds[t % 4],
                        WRITER[kinds[t % 4]]) for t in range(24)]
    with ScriptedServer(capable_model) as server:
        client = LLMClient(Endpoint(server.url, "scripted"), cache=False)
        runs = {name: run_edits(contexts, EditLearner(name, client)) for name in ("none", "oracle", "cipher")}
    got = {name: curve(r, window=8) for name, r in runs.items()}
    assert got["oracle"]["mean_cost"] == 0
    assert got["none"]["last_cost"] > 20
    assert got["cipher"]["first_cost"] > got["cipher"]["last_cost"] == 0  # later drafts need no edit
    assert got["cipher"]["true_preference_used"] >= 0.5
    assert all(r["used_matches_true"] for r in runs["cipher"][-8:])


def test_every_kind_of_context_has_a_preference_the_writer_can_tell_apart():
    assert len({frozenset(p) for p in WRITER.values()}) == len(WRITER)
    for a, b in itertools.combinations(WRITER.values(), 2):
        assert edit(BASE, a) != edit(BASE, b)


@pytest.mark.xdist_group("llm")
def test_mechanics_of_llm_edits_end_to_end_with_the_embedded_model(llm, shared_data, monkeypatch, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    monkeypatch.setenv("PENCHANT_DATA", str(shared_data))
    code, out, err = cli("llm", "edits", "--rounds", "2", "--window", "1", "--learner", "none", "--learner", "cipher",
                         "--max-tokens", "40", "--json", tmp_path / "e.json")
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["learners"]) == {"none", "cipher"} and result["rounds"] == 2
    for r in result["learners"].values():
        assert len(r["per_round"]) == 2 and all(x["cost"] >= 0 for x in r["per_round"])
        assert r["mean_cost"] == sum(x["cost"] for x in r["per_round"]) / 2
    cipher = result["learners"]["cipher"]["per_round"]
    assert cipher[0]["used"] == [] and set(cipher[0]["inferred"]) <= set(PREFERENCES) | {"humorous", "detailed", "uses emojis", "first person"}
