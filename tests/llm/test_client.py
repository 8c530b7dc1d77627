"""The language-model client over real HTTP: retries with backoff, timeouts, the concurrency limit,
the key kept out of errors, JSON answers with a corrective retry, and the answer cache."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penchant.llm import Endpoint, LLMAnswerError, LLMClient, LLMError
from penchant.llm.answers import AnswerFormatError, check, extract_json
from penchant.llm.cache import request_key
from tests.llm.scripted import ScriptedServer, completion

RATING = {"type": "object", "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["rating"]}


def client(server: ScriptedServer, tmp_path, **kwargs) -> LLMClient:
    kwargs.setdefault("backoff", 0.01)
    return LLMClient(Endpoint(server.url, "scripted", kwargs.pop("key", None)), cache=kwargs.pop("cache", tmp_path / "cache"),
                     **kwargs)


def test_retries_server_errors_with_backoff_then_answers(tmp_path):
    script = lambda n, body: (503, {"error": "busy"}, 0) if n < 2 else (200, completion("hello"), 0)  # noqa: E731
    with ScriptedServer(script) as server:
        c = client(server, tmp_path, retries=3, backoff=0.05)
        started = time.perf_counter()
        assert c.chat("hi") == "hello"
        assert time.perf_counter() - started >= 0.05 + 0.1  # two waits, the second twice the first
        assert c.usage.retries == 2 and c.usage.requests == 1 and len(server.bodies) == 3


def test_gives_up_after_the_retries_and_does_not_retry_a_refusal(tmp_path):
    with ScriptedServer(lambda n, body: (503, {"error": "down"}, 0)) as server:
        with pytest.raises(LLMError, match="failed after 3 attempts: HTTP 503"):
            client(server, tmp_path, retries=2).chat("hi")
        assert len(server.bodies) == 3
    with ScriptedServer(lambda n, body: (400, {"error": "bad model"}, 0)) as server:
        with pytest.raises(LLMError, match="was refused: HTTP 400"):
            client(server, tmp_path, retries=2).chat("hi")
        assert len(server.bodies) == 1


def test_the_key_is_sent_as_a_bearer_token_and_never_appears_in_errors_or_repr(tmp_path):
    secret = "sk-very-secret-123"
    with ScriptedServer(lambda n, body: (500, {"error": "boom"}, 0)) as server:
        c = client(server, tmp_path, retries=0, key=secret)
        with pytest.raises(LLMError) as raised:
            c.chat("hi")
        assert server.headers[0]["Authorization"] == f"Bearer {secret}"
        assert secret not in str(raised.value) and secret not in repr(c.endpoint)


def test_a_slow_answer_times_out(tmp_path):
    with ScriptedServer(lambda n, body: (200, completion("late"), 1.5)) as server:
        started = time.perf_counter()
        with pytest.raises(LLMError, match="Timeout"):
            client(server, tmp_path, retries=0, timeout=0.3).chat("hi")
        assert time.perf_counter() - started < 1.4


def test_at_most_concurrency_requests_are_in_flight_and_results_keep_their_order(tmp_path):
    echo = lambda n, body: (200, completion(body["messages"][0]["content"].upper()), 0.15)  # noqa: E731
    with ScriptedServer(echo) as server:
        c = client(server, tmp_path, concurrency=2, cache=False)
        words = [f"word{i}" for i in range(6)]
        assert c.map(c.chat, words) == [w.upper() for w in words]
        assert server.max_in_flight == 2


def test_requests_are_deterministic_by_default_and_cached_by_model_prompt_and_settings(tmp_path):
    with ScriptedServer(lambda n, body: (200, completion(f"answer {n}"), 0)) as server:
        c = client(server, tmp_path)
        assert c.chat("same") == "answer 0"
        assert server.bodies[0]["temperature"] == 0.0 and server.bodies[0]["seed"] == c.settings["seed"]
        assert client(server, tmp_path).chat("same") == "answer 0"  # a new client, the same disk cache
        assert len(server.bodies) == 1
        assert c.chat("same", temperature=0.7) == "answer 1"  # another setting is another request
        assert LLMClient(Endpoint(server.url, "another-model"), cache=tmp_path / "cache").chat("same") == "answer 2"


@given(st.dictionaries(st.sampled_from(["temperature", "seed", "max_tokens", "top_p"]), st.integers(0, 9), min_size=2))
def test_the_cache_key_does_not_depend_on_the_order_of_settings(settings):
    messages = [{"role": "user", "content": "x"}]
    reordered = dict(reversed(list(settings.items())))
    assert request_key("m", messages, settings) == request_key("m", messages, reordered)
    assert request_key("m", messages, settings) != request_key("m2", messages, settings)


def test_a_malformed_json_answer_is_sent_back_once_then_reported(tmp_path):
    answers = iter(["I think a four", '{"rating": 4}'])
    with ScriptedServer(lambda n, body: (200, completion(next(answers)), 0)) as server:
        c = client(server, tmp_path, cache=False)
        assert c.chat_json("rate it", RATING) == {"rating": 4}
        assert c.usage.corrections == 1
        assert "not valid" in server.bodies[1]["messages"][-1]["content"]
        assert server.bodies[0]["response_format"]["json_schema"]["schema"] == RATING
    with ScriptedServer(lambda n, body: (200, completion('{"rating": 9}'), 0)) as server:
        with pytest.raises(LLMAnswerError, match=r"expected at most 5, got 9") as raised:
            client(server, tmp_path, cache=False).chat_json("rate it", RATING)
        assert raised.value.answer == '{"rating": 9}'


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": 1}', {"a": 1}),
    ('Sure! ```json\n{"a": [1, 2]}\n``` hope that helps', {"a": [1, 2]}),
    ('{broken {"a": 2}', {"a": 2}),
    ('[3, 4] and {"b": 1}', [3, 4]),
])
def test_extract_json_takes_the_first_json_value(text, value):
    assert extract_json(text) == value


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.booleans()), max_size=4),
       st.text(alphabet="abc .!", max_size=10), st.text(alphabet="xyz .!", max_size=10))
def test_extract_json_finds_any_object_between_words(obj, before, after):
    assert extract_json(before + json.dumps(obj) + after) == obj


@pytest.mark.parametrize(("value", "message"), [
    ({}, "missing field 'rating'"),
    ({"rating": "4"}, "expected integer"),
    ({"rating": True}, "expected integer"),
    ({"rating": 0}, "at least 1"),
])
def test_check_names_the_first_mismatch(value, message):
    with pytest.raises(AnswerFormatError, match=message):
        check(value, RATING)
    assert check({"rating": 4.0}, RATING) == {"rating": 4.0}
    with pytest.raises(AnswerFormatError, match=r"\$\.tags\[1\]: expected one of"):
        check({"tags": ["a", "z"]}, {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b"]}}}})


def test_structured_output_is_sent_in_the_endpoint_s_dialect(tmp_path, monkeypatch):
    def strict(n, body):  # refuses OpenAI's json_schema, as llama-cpp-python's server does
        if body.get("response_format", {}).get("type") == "json_schema":
            return 422, {"detail": [{"loc": ["body", "response_format", "type"], "msg": "unexpected value"}]}, 0
        return 200, completion('{"rating": 3}'), 0

    with ScriptedServer(strict) as server:
        with pytest.raises(LLMError, match="set PENCHANT_LLM_STRUCTURED=json_object or none"):
            client(server, tmp_path, cache=False).chat_json("rate", RATING)
        monkeypatch.setenv("PENCHANT_LLM_STRUCTURED", "json_object")
        assert client(server, tmp_path, cache=False).chat_json("rate", RATING) == {"rating": 3}
        assert server.bodies[-1]["response_format"] == {"type": "json_object", "schema": RATING}
        assert client(server, tmp_path, cache=False, structured="none").chat_json("rate", RATING) == {"rating": 3}
        assert "response_format" not in server.bodies[-1]
