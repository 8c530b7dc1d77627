"""The LLM judge of A-versus-B pairs: probabilities from token log-probabilities, both orders,
routing the least confident pairs to people (hand-computed), scripted judges whose agreement is
known, and the embedded judge end to end on real HH-RLHF pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from penchant.llm import Completion, Endpoint, LLMClient
from penchant.llm.client import LLMAnswerError
from penchant.llm.judge import Judgements, PairJudge, first_better, route, routing_report
from tests.conftest import cli, write
from tests.llm.scripted import ScriptedServer, completion


def test_first_better_reads_the_letters_probabilities():
    step = {"token": '"A', "logprob": math.log(0.6),
            "top_logprobs": [{"token": '"A', "logprob": math.log(0.6)}, {"token": '"B', "logprob": math.log(0.2)}]}
    lead = {"token": '{"better":', "logprob": 0.0, "top_logprobs": [{"token": '{"better":', "logprob": 0.0}]}
    assert first_better(Completion('{"better":"A"}', [lead, step])) == pytest.approx(0.75)
    assert first_better(Completion('{"better": "B"}')) == 0.0 and first_better(Completion('{"better": "A"}')) == 1.0


def test_routing_sends_the_least_confident_pairs_to_people_by_hand():
    forward = np.array([0.95, 0.55, 0.2, 0.5])   # the judge's P(people's choice better), order 1
    backward = np.array([0.85, 0.45, 0.4, 0.5])  # order 2
    judged = Judgements(forward, backward)
    np.testing.assert_allclose(judged.p, [0.9, 0.5, 0.3, 0.5])
    np.testing.assert_allclose(judged.confidence, [0.8, 0.0, 0.4, 0.0])
    assert judged.position_consistency() == 0.75  # pairs 0 and 2 agree across orders, pair 3 ties in both
    assert route(judged.confidence, 0.5).tolist() == [False, True, False, True]
    rows = routing_report(judged, [0.0, 0.5, 1.0])
    # agreement per pair: 1, 0.5 (tie), 0, 0.5 -> 0.5 overall
    assert rows[0] == {"human_share": 0.0, "routed": 0, "judge_agreement_kept": 0.5, "judge_agreement_routed": None,
                       "hybrid_agreement": 0.5, "random_routing_agreement": 0.5}
    assert rows[1]["hybrid_agreement"] == (2 + 1 + 0) / 4 and rows[1]["judge_agreement_kept"] == 0.5
    assert rows[1]["random_routing_agreement"] == 0.5 + 0.5 * 0.5
    assert rows[2]["hybrid_agreement"] == 1.0 and rows[2]["judge_agreement_kept"] is None


def _pairs_file(tmp_path):
    rows = [{"prompt": f"Human: question {i}?", "chosen": f"a kind answer {i}", "rejected": f"a rude answer {i}"}
            for i in range(6)]
    return write(tmp_path / "pairs.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")


def _verdict(rule):
    def answer(n, body):
        text = body["messages"][-1]["content"]
        a = text.split("Reply A:\n")[1].split("\n\nReply B:")[0]
        return 200, completion(json.dumps({"better": rule(a)})), 0
    return answer


@pytest.mark.parametrize(("rule", "agreement", "consistency"), [
    (lambda a: "A" if "kind" in a else "B", 1.0, 1.0),  # a judge that sees what people saw
    (lambda a: "A", 0.5, 0.0),                           # a judge that always takes the first reply
])
def test_scripted_judges_get_the_agreement_they_must(tmp_path, monkeypatch, rule, agreement, consistency):
    with ScriptedServer(_verdict(rule)) as server:
        monkeypatch.setenv("PENCHANT_LLM_URL", server.url)
        monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
        code, out, err = cli("llm", "judge", _pairs_file(tmp_path), "--no-logprobs", "--json", tmp_path / "j.json",
                             "--pairs-out", tmp_path / "p.jsonl")
        assert code == 0, err
        assert len(server.bodies) == 12  # 6 pairs in both orders
    result = json.loads((tmp_path / "j.json").read_text())
    assert result["pairs"] == 6 and result["agreement"] == agreement and result["position_consistency"] == consistency
    assert [r["human_share"] for r in result["routing"]] == pytest.approx([0.0, 1 / 6, 2 / 6, 0.5])
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and sum(x["to_people"] for x in lines) == 1


def test_a_judge_without_logprobs_is_told_to_use_the_written_verdict(tmp_path):
    with ScriptedServer(lambda n, body: (200, completion('{"better": "A"}'), 0)) as server:
        judge = PairJudge(LLMClient(Endpoint(server.url, "scripted"), cache=False))
        with pytest.raises(Exception, match="returned no logprobs"):
            judge.judge(["q"], ["x"], ["y"])


def test_an_answer_without_a_verdict_is_an_llm_answer_error():
    with ScriptedServer(lambda n, body: (200, completion("both replies are fine"), 0)) as server:
        judge = PairJudge(LLMClient(Endpoint(server.url, "scripted"), cache=False), logprobs=False)
        with pytest.raises(LLMAnswerError, match="gave no verdict") as caught:
            judge.judge(["q"], ["x"], ["y"])
    assert caught.value.answer == "both replies are fine" and '{"better": "A"}' in caught.value.expected


@pytest.mark.xdist_group("llm")
def test_mechanics_of_the_embedded_judge_on_real_hh_rlhf_pairs(llm, shared_data, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    code, out, err = cli("llm", "judge", shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "--limit", "4",
                         "--max-chars", "300", "--json", tmp_path / "j.json", "--pairs-out", tmp_path / "p.jsonl")
    assert code == 0, err
    result = json.loads((tmp_path / "j.json").read_text())
    assert result["pairs"] == 4 and result["sampled"] and result["pairs_in_file"] > 2000
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    p = np.array([x["p_chosen_better"] for x in lines])
    assert np.all((p > 0) & (p < 1))  # probabilities from the letters' log-probabilities, not 0/1 verdicts
    assert result["agreement"] == pytest.approx(np.mean(np.where(p > 0.5, 1, np.where(p < 0.5, 0, 0.5))))
    assert result["usage"]["requests"] + result["usage"]["cached"] == 8
