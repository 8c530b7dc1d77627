"""One client for OpenAI-compatible chat-completion endpoints (vLLM, llama.cpp's server, Ollama,
a hosted API, or penchant's embedded model).

Where it talks to: ``PENCHANT_LLM_URL`` (the base URL, e.g. ``http://localhost:8000/v1``), the model
``PENCHANT_LLM_MODEL`` (else the first the endpoint lists) and the key ``PENCHANT_LLM_KEY`` (sent as a
bearer token, never printed, logged or cached). Without ``PENCHANT_LLM_URL`` the embedded
SmolLM2-135M-Instruct is started behind a local OpenAI-compatible server (:mod:`penchant.llm.embedded`).

Every request has a timeout; connection errors, 429 and 5xx answers are retried with exponential
backoff; at most ``concurrency`` requests are in flight at once; answers are cached on disk by the
SHA-256 of (model, messages, settings) (:mod:`penchant.llm.cache`). Defaults are deterministic:
temperature 0 and a fixed seed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError, PenchantError
from penchant.extras import require
from penchant.llm.answers import AnswerFormatError, check, extract_json
from penchant.llm.cache import AnswerCache, request_key

T = TypeVar("T")
R = TypeVar("R")
Messages = list[dict[str, str]]


class LLMError(PenchantError, RuntimeError):
    """The endpoint could not be reached, or kept failing after the retries."""


class LLMAnswerError(LLMError):
    """The model's answer is not what the prompt asked for (after the corrective retries).

    Attributes:
        answer: the last answer text; ``expected``: what a valid answer looks like.
    """

    def __init__(self, message: str, *, answer: str, expected: str) -> None:
        self.answer = answer
        self.expected = expected
        super().__init__(f"{message} (expected {expected}); the model answered: {answer[:200]!r}")


@dataclass(frozen=True)
class Endpoint:
    """Where the client sends requests. ``key`` is kept out of ``repr``."""

    url: str
    model: str | None = None
    key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> Endpoint | None:
        """The endpoint named by ``PENCHANT_LLM_URL`` / ``_MODEL`` / ``_KEY``, or None when no URL is set."""
        url = os.environ.get("PENCHANT_LLM_URL")
        if not url:
            return None
        return cls(url.rstrip("/"), os.environ.get("PENCHANT_LLM_MODEL") or None, os.environ.get("PENCHANT_LLM_KEY") or None)


@dataclass
class Completion:
    """An answer's text and, when asked for, its tokens' log-probabilities
    (``[{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]``)."""

    text: str
    logprobs: list[dict[str, Any]] | None = None


@dataclass
class Usage:
    """What a client has done: requests sent, answers served from the cache, retries, tokens."""

    requests: int = 0
    cached: int = 0
    retries: int = 0
    corrections: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class LLMClient:
    """Chat completions with timeouts, retries, a concurrency limit, a disk cache and JSON answers.

    Args:
        endpoint: where to send requests; None reads the environment, and without
            ``PENCHANT_LLM_URL`` starts (once per process) the embedded model's server.
        timeout: seconds per request.
        retries: further attempts after a connection error, a 429 or a 5xx (backoff 0.5 s, doubling).
        concurrency: requests in flight at once (:meth:`map`).
        cache: a folder for the answer cache, None for the default, False for none.
        temperature, seed, max_tokens: default generation settings (deterministic by default).
        structured: how a JSON Schema is sent: ``json_schema`` (OpenAI's ``response_format``; vLLM,
            OpenAI, the embedded server), ``json_object`` (``{"type": "json_object", "schema": ...}``:
            llama-cpp-python's server) or ``none`` (the prompt asks, the answer is checked); default
            ``PENCHANT_LLM_STRUCTURED``, else ``json_schema``.
    """

    def __init__(self, endpoint: Endpoint | None = None, *, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, concurrency: int = 4, cache: str | Path | None | bool = None,
                 temperature: float = 0.0, seed: int = DEFAULT_SEED, max_tokens: int = 256,
                 structured: str | None = None) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        structured = structured or os.environ.get("PENCHANT_LLM_STRUCTURED") or "json_schema"
        if structured not in ("json_schema", "json_object", "none"):
            raise ConfigError(f"structured output must be json_schema, json_object or none, not {structured!r}")
        self.structured = structured
        self._endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.cache = None if cache is False else AnswerCache(None if cache in (None, True) else cache)  # type: ignore[arg-type]
        self.settings = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
        self.usage = Usage()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._http = None
        self._model: str | None = None

    # -- where ---------------------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        """The endpoint in use (the embedded server is started here when none was given)."""
        if self._endpoint is None:
            self._endpoint = Endpoint.from_env()
            if self._endpoint is None:
                from penchant.llm.embedded import shared_server

                self._endpoint = shared_server().endpoint
        return self._endpoint

    def _client(self):
        with self._lock:
            if self._http is None:
                require("llm", "the language-model client")
                import httpx

                headers = {"Authorization": f"Bearer {self.endpoint.key}"} if self.endpoint.key else {}
                self._http = httpx.Client(base_url=self.endpoint.url, headers=headers, timeout=self.timeout,
                                          limits=httpx.Limits(max_connections=self.concurrency))
            return self._http

    def models(self) -> list[str]:
        """The model ids the endpoint lists (``GET /models``)."""
        body = self._send("GET", "/models")
        return [m["id"] for m in body.get("data", [])]

    @property
    def model(self) -> str:
        """The model requests name: the endpoint's configured model, else the first it lists."""
        if self._model is None:
            chosen = self.endpoint.model
            if chosen is None:
                listed = self.models()
                if not listed:
                    raise LLMError(f"{self.endpoint.url}/models lists no model; set PENCHANT_LLM_MODEL")
                chosen = listed[0]
            self._model = chosen
        return self._model

    # -- requests ------------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                with self._slots:
                    response = self._client().request(method, path, json=body)
            except httpx.HTTPError as exc:  # connection refused, timeout, protocol error
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response.json()
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    hint = ""
                    if body and "response_format" in body and "response_format" in response.text:
                        hint = (f"; this endpoint does not take response_format {body['response_format']['type']}: "
                                "set PENCHANT_LLM_STRUCTURED=json_object or none")
                    raise LLMError(f"{method} {self.endpoint.url}{path} was refused: {problem}{hint}")
            if attempt < self.retries:
                with self._lock:
                    self.usage.retries += 1
                time.sleep(delay)
                delay *= 2
        raise LLMError(f"{method} {self.endpoint.url}{path} failed after {self.retries + 1} attempts: {problem}")

    def chat(self, messages: Messages | str, *, schema: dict[str, Any] | None = None, **settings: Any) -> str:
        """The assistant's answer text to ``messages`` (a string is one user message).

        ``schema`` (a JSON Schema) asks the endpoint for JSON of that shape (``response_format``
        ``json_schema``, which vLLM, llama.cpp's server and the embedded server constrain decoding to);
        ``settings`` override the client's generation settings for this request.
        """
        return self.complete(messages, schema=schema, **settings).text

    def complete(self, messages: Messages | str, *, schema: dict[str, Any] | None = None,
                 top_logprobs: int | None = None, **settings: Any) -> Completion:
        """:meth:`chat`'s answer with, when ``top_logprobs`` is given, each answer token's
        log-probability and the most likely alternatives (OpenAI's ``logprobs`` / ``top_logprobs``)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        chosen = {**self.settings, **settings}
        if schema is not None and self.structured == "json_schema":
            chosen["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        elif schema is not None and self.structured == "json_object":
            chosen["response_format"] = {"type": "json_object", "schema": schema}
        if top_logprobs is not None:
            chosen.update(logprobs=True, top_logprobs=top_logprobs)
        key = request_key(self.model, messages, chosen)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.usage.cached += 1
                return Completion(**json.loads(hit))
        body = self._send("POST", "/chat/completions", {"model": self.model, "messages": messages, **chosen})
        try:
            choice = body["choices"][0]
            answer = Completion(choice["message"]["content"] or "",
                                ((choice.get("logprobs") or {}).get("content")) if top_logprobs is not None else None)
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.endpoint.url}/chat/completions answered without choices[0].message.content: "
                           f"{str(body)[:200]}") from exc
        if top_logprobs is not None and answer.logprobs is None:
            raise LLMError(f"{self.model} at {self.endpoint.url} returned no logprobs; this endpoint does not "
                           "offer them (use an answer-based mode)")
        usage = body.get("usage") or {}
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
            self.usage.completion_tokens += int(usage.get("completion_tokens", 0) or 0)
        if self.cache is not None:
            self.cache.put(key, self.model, json.dumps({"text": answer.text, "logprobs": answer.logprobs}), usage)
        return answer

    def chat_json(self, messages: Messages | str, schema: dict[str, Any], *, corrections: int = 1,
                  **settings: Any) -> Any:
        """The answer parsed as JSON and checked against ``schema``.

        A malformed answer is sent back with what was wrong, up to ``corrections`` times; then
        :class:`LLMAnswerError` names what was expected and what the model said.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        convo = list(messages)
        for attempt in range(corrections + 1):
            text = self.chat(convo, schema=schema, **settings)
            try:
                return check(extract_json(text), schema)
            except AnswerFormatError as exc:
                problem = str(exc)
            if attempt < corrections:
                with self._lock:
                    self.usage.corrections += 1
                convo = convo + [{"role": "assistant", "content": text},
                                 {"role": "user", "content": f"That answer is not valid ({problem}). "
                                                             "Answer again with JSON only, matching the requested format."}]
        raise LLMAnswerError(f"{self.model} did not answer in the requested format ({problem})", answer=text,
                             expected=f"JSON matching {schema}")

    def map(self, fn: Callable[[T], R], items: Sequence[T] | Iterable[T], *,
            progress: Callable[[int], None] | None = None) -> list[R]:
        """``[fn(x) for x in items]`` with up to ``concurrency`` calls at once, results in order;
        ``progress(done)`` is called as each finishes."""
        items = list(items)
        if self.concurrency == 1 or len(items) <= 1:
            out = []
            for n, x in enumerate(items, 1):
                out.append(fn(x))
                if progress:
                    progress(n)
            return out
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [pool.submit(fn, x) for x in items]
            results = []
            for n, f in enumerate(futures, 1):
                results.append(f.result())
                if progress:
                    progress(n)
            return results

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
