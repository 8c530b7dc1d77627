"""The embedded model behind its real OpenAI-compatible server, started once per test worker
(every test that talks to it is in one xdist group, so one worker starts it)."""

from __future__ import annotations

import pytest

from penchant.llm import Endpoint, LLMClient


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    from penchant.llm.embedded import start_server

    server = start_server(log=tmp_path_factory.mktemp("llm") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server, monkeypatch) -> LLMClient:
    """A client of the embedded server, which is also what PENCHANT_LLM_URL names for the CLI."""
    monkeypatch.setenv("PENCHANT_LLM_URL", llm_server.endpoint.url)
    monkeypatch.delenv("PENCHANT_LLM_MODEL", raising=False)
    return LLMClient(Endpoint(llm_server.endpoint.url))
