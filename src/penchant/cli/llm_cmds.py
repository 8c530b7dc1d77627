"""``penchant llm ...``: the language-model endpoint and what penchant does with it."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from penchant.cli.render import out, write_json


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for generation (default: torch's choice)."),
) -> None:
    """Serve the embedded SmolLM2-135M-Instruct behind an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    import uvicorn

    from penchant.llm.embedded import EmbeddedModel
    from penchant.llm.server import create_app

    started = time.perf_counter()
    model = EmbeddedModel(threads=threads)
    out.print(f"embedded model {model.name} loaded in {time.perf_counter() - started:.1f} s; "
              f"listening on http://{host}:{port}/v1")
    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")


def check(
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per request."),
) -> None:
    """Is the endpoint reachable, which model answers, and one round trip (PENCHANT_LLM_URL; the embedded model when unset)."""
    from penchant.llm.client import LLMClient

    with LLMClient(timeout=timeout, cache=False, retries=1) as client:
        endpoint = client.endpoint
        models = client.models()
        started = time.perf_counter()
        answer = client.chat("Reply with the single word: ready", max_tokens=8)
        seconds = time.perf_counter() - started
        result = {"url": endpoint.url, "embedded": endpoint.url.startswith("http://127.0.0.1") and not _env_url(),
                  "models": models, "model": client.model, "answer": answer, "seconds": round(seconds, 3),
                  "usage": client.usage.to_json()}
    out.print(f"[bold]{result['model']}[/bold] at {result['url']} answered {answer!r} in {seconds:.2f} s "
              f"(models listed: {', '.join(models)})")
    if json_out:
        write_json(json_out, result)


def _env_url() -> bool:
    import os

    return bool(os.environ.get("PENCHANT_LLM_URL"))
