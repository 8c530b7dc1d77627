"""An OpenAI-compatible HTTP server for the embedded model (``penchant llm serve``).

It answers the subset of the OpenAI API that chat clients use: ``GET /v1/models``,
``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature``, ``seed``, ``stop``,
``response_format`` of type ``json_schema`` or ``json_object``, ``logprobs`` / ``top_logprobs``) and
``GET /healthz``. Requests are
generated one at a time (the model holds a lock; a 135M model on a CPU gains nothing from
interleaving). Streaming is not offered: ``stream: true`` is refused with a 400 naming the field.
"""

# no `from __future__ import annotations`: FastAPI reads the request model's annotation at runtime
import time
import uuid
from typing import Any

from penchant.extras import require


def create_app(model=None):
    """The FastAPI app serving ``model`` (an :class:`~penchant.llm.embedded.EmbeddedModel`; loaded
    at start-up when None)."""
    require("serve", "the embedded language-model server")
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    class Message(BaseModel):
        role: str
        content: str

    class ChatRequest(BaseModel):
        model: str | None = None
        messages: list[Message] = Field(min_length=1)
        max_tokens: int | None = Field(default=None, ge=1, le=4096)
        max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
        temperature: float = Field(default=1.0, ge=0, le=2)
        seed: int | None = None
        stop: str | list[str] | None = None
        response_format: dict[str, Any] | None = None
        logprobs: bool = False
        top_logprobs: int | None = Field(default=None, ge=0, le=20)
        stream: bool = False

    state: dict[str, Any] = {"model": model}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if state["model"] is None:
            from penchant.llm.embedded import EmbeddedModel

            state["model"] = await run_in_threadpool(EmbeddedModel)
        yield

    app = FastAPI(title="penchant embedded language model", lifespan=lifespan)

    def refuse(field: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": field}}, 400)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": state["model"].name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": state["model"].name, "object": "model", "owned_by": "penchant"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest):
        llm = state["model"]
        if request.stream:
            return refuse("stream", "streaming is not offered by the embedded server; send stream: false")
        if request.model not in (None, llm.name):
            return refuse("model", f"this server has model {llm.name!r}, not {request.model!r}")
        schema = None
        if request.response_format is not None:
            kind = request.response_format.get("type")
            if kind == "json_schema":
                schema = (request.response_format.get("json_schema") or {}).get("schema")
                if not isinstance(schema, dict):
                    return refuse("response_format.json_schema.schema", "a json_schema response format needs a schema object")
            elif kind == "json_object":
                schema = request.response_format.get("schema") or {"type": "object"}
            elif kind != "text":
                return refuse("response_format.type", f"unknown response format {kind!r}; expected text, json_object or json_schema")
        stop = [request.stop] if isinstance(request.stop, str) else request.stop
        messages = [m.model_dump() for m in request.messages]
        if request.top_logprobs is not None and not request.logprobs:
            return refuse("top_logprobs", "top_logprobs needs logprobs: true")
        answer = await run_in_threadpool(
            llm.generate, messages, max_tokens=request.max_completion_tokens or request.max_tokens or 256,
            temperature=request.temperature, seed=request.seed, schema=schema, stop=stop,
            top_logprobs=(request.top_logprobs or 0) if request.logprobs else None)
        choice = {"index": 0, "message": {"role": "assistant", "content": answer.text},
                  "finish_reason": answer.finish_reason,
                  "logprobs": None if answer.logprobs is None else {"content": answer.logprobs}}
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": llm.name, "choices": [choice],
                "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                          "total_tokens": answer.prompt_tokens + answer.completion_tokens}}

    return app
