"""Conversational recommendation: the simulator's rules by hand, the metrics by hand, the session
object, leakage checks and policies on MovieLens-100K, and a real conversation in a pseudo-terminal."""

from __future__ import annotations

import json
import math
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.converse.policies import MaxEntropy, create_policy, policy_names
from penchant.converse.session import Conversation
from penchant.converse.simulator import run_episode
from penchant.converse.state import ConversationState, Scorer
from penchant.converse.vocabulary import Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.eval.conversation import EpisodeResult, conversation_metrics, hdcg
from tests.conftest import ROOT, penchant

# six items; values: 0 genre A (items 0-2), 1 genre B (3-5), 2 decade X (0, 3), 3 decade Y (1, 2, 4, 5)
HAS = {0: [0, 1, 2], 1: [3, 4, 5], 2: [0, 3], 3: [1, 2, 4, 5]}


def small_graph() -> AttributeGraph:
    rows = [i for v in HAS for i in HAS[v]]
    cols = [v for v in HAS for _ in HAS[v]]
    items = sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(6, 4))
    return AttributeGraph(items, np.array(["A", "B", "1980s", "1990s"], dtype=object), np.array([0, 0, 1, 1]),
                          ("genre", "decade"), np.array(["g=A", "g=B", "y=X", "y=Y"], dtype=object))


class Scripted:
    """Plays the given actions in order, then repeats the last."""

    def __init__(self, *actions: Action) -> None:
        self.actions = list(actions)
        self.seen: list[ConversationState] = []

    def act(self, state, scorer):
        self.seen.append(ConversationState.from_dict(state.to_dict()))
        return self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]


BASE = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])


def test_simulator_rules_by_hand():
    """Opening accepted and filtering (turn 0); a rejected value lowers scores without filtering; a
    rejected list leaves the candidates; a hit ends the episode at its turn and rank."""
    g = small_graph()
    policy = Scripted(Action("ask", (1,)), Action("recommend", items=(0, 1)), Action("recommend", items=(5, 2)))
    result = run_episode(policy, Scorer(g, BASE), g, 0, 2, exclude=None, rng=np.random.default_rng(0))
    first = policy.seen[0]
    assert first.turn == 1 and len(first.accepted) == 1 and first.accepted[0] in (0, 3)  # the target's values
    assert set(np.flatnonzero(first.candidates)) == set(HAS[first.accepted[0]])
    second = policy.seen[1]
    assert second.rejected == [1] and (second.candidates == first.candidates).all()  # no filtering
    third = policy.seen[2]
    assert not third.candidates[[0, 1]].any() and third.rejected_items == [0, 1]
    assert (result.turn, result.rank) == (3, 2) and result.asked == [(1, False)]
    assert result.actions == ["ask", "recommend", "recommend"]


def test_rejected_values_lower_scores_and_excluded_items_never_appear():
    g = small_graph()
    state = ConversationState.start(0, 6, exclude=np.array([0]))
    scorer = Scorer(g, BASE, reject_weight=10.0)
    before = scorer.scores(state)
    state.reject(3)  # decade Y: items 1, 2, 4, 5 fall by 10 (standardised base), none leaves
    after = scorer.scores(state)
    assert np.isneginf(before[0]) and np.isneginf(after[0])
    np.testing.assert_allclose(before[1:] - after[1:], [10, 10, 0, 10, 10])
    assert list(scorer.top(state, 3)) == [3, 1, 2]


def test_turn_budget_is_fifteen_system_actions():
    """Every question and every list is one turn; the opening is not; at most 15 turns."""
    g = small_graph()
    asks = Scripted(Action("ask", (1,)))
    miss = run_episode(asks, Scorer(g, BASE), g, 0, 2, exclude=None, rng=np.random.default_rng(0))
    assert miss.turn is None and len(miss.actions) == 15 and len(asks.seen) == 15
    late = Scripted(*[Action("ask", (1,))] * 14, Action("recommend", items=(2,)))
    hit = run_episode(late, Scorer(g, BASE), g, 0, 2, exclude=None, rng=np.random.default_rng(0))
    assert hit.turn == 15 and hit.rank == 1
    m = conversation_metrics([hit, miss])
    assert m["sr@10"] == 0 and m["sr@15"] == 0.5 and m["avg_turns"] == 15


def test_hdcg_and_metrics_by_hand():
    assert hdcg(1, 1) == pytest.approx(1.0)
    assert hdcg(2, 1) == pytest.approx(1 / math.log2(3))
    lo, hi = 1 / math.log2(5), 1 / math.log2(4)
    assert hdcg(3, 4) == pytest.approx(lo + (hi - lo) / math.log2(5))
    assert hdcg(3, 10) > hdcg(4, 1) and hdcg(None, None) == 0
    results = [EpisodeResult(0, 0, 1, 1), EpisodeResult(0, 1, 7, 2), EpisodeResult(0, 2, None, None)]
    m = conversation_metrics(results)
    assert (m["sr@5"], m["sr@10"], m["sr@15"]) == (pytest.approx(1 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4),
                                                    pytest.approx(2 / 3, abs=1e-4))
    assert m["avg_turns"] == pytest.approx((1 + 7 + 15) / 3, abs=1e-4)
    assert m["hdcg"] == pytest.approx((1 + hdcg(7, 2)) / 3, abs=1e-4)


def test_session_multi_choice_and_json_round_trip():
    """A multi-choice question offers values of one type; the session's state survives JSON and
    the restored conversation makes the same next move."""
    g = small_graph()
    policy = MaxEntropy(g, multi_choice=2, list_size=2)
    conv = Conversation(g, Scorer(g, BASE), policy, 0)
    move = conv.ask()
    assert move.kind == "question" and len(move.values) == 2 and len(set(g.types[list(move.values)])) == 1
    with pytest.raises(ValueError, match="not offered"):
        conv.answer([99])
    conv.answer([move.values[0]])
    restored = Conversation.from_dict(json.loads(json.dumps(conv.to_dict())), g, Scorer(g, BASE), policy)
    assert restored.ask() == conv.ask()
    assert restored.state.accepted == [move.values[0]] and restored.state.rejected == [move.values[1]]


@pytest.fixture(scope="module")
def ml_setup(shared_data):
    from penchant.converse.experiment import prepare
    from penchant.data import load

    return prepare(load(shared_data / "ml-100k"), "coarse", episodes=300, valid_episodes=300, seed=0)


def test_no_leakage_into_scorer_or_lists(ml_setup):
    """The scorer is the model fitted on the training part; test targets come from the test part;
    no list ever shows a user's training or validation item."""
    from penchant.models.registry import create

    s = ml_setup
    np.testing.assert_allclose(s.base[:5], create("ease").fit(s.split.train).score(np.arange(5)), rtol=1e-5)
    users, targets = s.test
    assert all(s.split.test.csr[u, t] for u, t in zip(users[:50], targets[:50]))
    assert not any(s.test_exclude[u, t] for u, t in zip(users, targets))
    greedy = create_policy("greedy", s.graph)
    shown = []

    class Spy:
        def act(self, state, scorer):
            action = greedy.act(state, scorer)
            shown.append((state.user, action.items))
            return action

    scorer = Scorer(s.graph, s.base)
    rng = np.random.default_rng(0)
    for u, t in zip(users[:40], targets[:40]):
        run_episode(Spy(), scorer, s.graph, int(u), int(t), exclude=s.test_exclude[u].indices, rng=rng)
    assert shown and not any(s.test_exclude[u, i] for u, items in shown for i in items)


def test_converse_evaluate_json_contract(tmp_path, shared_data):
    r = penchant("converse", "evaluate", shared_data / "ml-100k", "--policy", "greedy", "--episodes", "60",
                 "--seed", "3", "--json", tmp_path / "out.json")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert {"policy", "episodes", "sr@5", "sr@10", "sr@15", "avg_turns", "hdcg"} <= set(out)
    assert out["policy"] == "greedy" and out["episodes"] == 60 and 0 <= out["sr@5"] <= out["sr@10"] <= out["sr@15"] <= 1
    bad = penchant("converse", "evaluate", "--data", shared_data / "ml-100k", "--policy", "nonesuch")
    known = ", ".join(policy_names())  # the registry's, as policies land
    assert bad.returncode == 2 and f"unknown model 'nonesuch'; known models: {known}" in bad.stderr


def test_conversation_in_a_pseudo_terminal_finds_the_planted_target(tmp_path, shared_data):
    """User 1's 5-star rating of Star Wars is held out of the data; answering the questions as
    someone who wants Star Wars (opening with Sci-Fi) leads to it within 15 turns."""
    from penchant.data import load
    from penchant.data.attribute_graph import attribute_graph

    src = shared_data / "ml-100k"
    for f in src.iterdir():
        if f.name.endswith(".inter"):
            kept = [line for line in f.read_text().splitlines(keepends=True) if not line.startswith("1\t50\t")]
            (tmp_path / f.name).write_text("".join(kept))
        elif f.suffix in (".item", ".kg", ".link", ".user"):
            shutil.copy(f, tmp_path / f.name)
    ds = load(tmp_path)
    graph = attribute_graph(ds, "coarse")
    target = int(np.flatnonzero(ds.item_ids.astype(str) == "50")[0])
    wanted = set(graph.item_values(target).tolist())
    questions = {graph.question(v): v for v in range(graph.n_values)}
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "penchant", "converse", str(tmp_path), "--user", "1",
                             "--policy", "maxent"], stdin=slave, stdout=slave, stderr=slave, close_fds=True, env=env)
    os.close(slave)
    buffer = ""

    def read_until(pattern: str, timeout: float = 180) -> tuple[str, re.Match]:
        nonlocal buffer
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, buffer)
            if m:
                text, buffer = buffer[:m.end()], buffer[m.end():]
                return text, m
            if select.select([master], [], [], 1)[0]:
                try:
                    buffer += os.read(master, 4096).decode()
                except OSError:
                    break
        raise AssertionError(f"no {pattern!r} in: {buffer[-1500:]}")

    def send(line: str) -> None:
        os.write(master, (line + "\n").encode())

    try:
        read_until(r"Enter to skip\): ")
        send("Sci-Fi")
        answered = lists = 0
        while True:
            text, m = read_until(r"\[y/n\] |none: |Enjoy .*!|could not find it")
            if m.group(0) == "[y/n] ":
                question = re.search(r"Q\d+: (.*) \[y/n\] $", text).group(1)
                send("y" if questions[question] in wanted else "n")
                answered += 1
            elif m.group(0) == "none: ":
                titles = dict((t.strip(), n) for n, t in re.findall(r"^\s+(\d+)\. (.*?)\r?$", text, re.M))
                lists += 1
                send(titles.get("Star Wars", "n"))
            else:
                break
        assert m.group(0) == "Enjoy Star Wars!" and answered >= 1 and lists >= 1
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(master)
