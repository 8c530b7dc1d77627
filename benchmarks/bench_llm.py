"""Latency and throughput of OpenAI-compatible endpoints on the same requests: by default the
embedded server (penchant's, started here) against any others given with --url (e.g. llama.cpp's
`python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf`), with ratios to the first.

Three workloads, each a list of chats sent one at a time, caching off:
  * free: a short question, up to --max-tokens tokens of answer (generation speed);
  * json: a rating question over a 20-film history answered as {"rating": n} under a JSON Schema
    (prompt reading plus constrained decoding), five questions per history (prefix reuse);
  * judge: an HH-RLHF-like pair judged with top_logprobs (the letters' probabilities).

    python benchmarks/bench_llm.py [--url http://127.0.0.1:8000/v1 ...] [--requests 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from penchant.llm import Endpoint, LLMClient

FILMS = ["Star Wars (1977)", "Fargo (1996)", "Return of the Jedi (1983)", "Contact (1997)", "English Patient, The (1996)",
         "Scream (1996)", "Toy Story (1995)", "Liar Liar (1997)", "Air Force One (1997)", "Independence Day (ID4) (1996)",
         "Raiders of the Lost Ark (1981)", "Godfather, The (1972)", "Pulp Fiction (1994)", "Twelve Monkeys (1995)",
         "Silence of the Lambs, The (1991)", "Jerry Maguire (1996)", "Rock, The (1996)", "Empire Strikes Back, The (1980)",
         "Star Trek: First Contact (1996)", "Back to the Future (1985)"]
SCHEMA = {"type": "object", "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["rating"], "additionalProperties": False}
VERDICT = {"type": "object", "properties": {"better": {"enum": ["A", "B"]}}, "required": ["better"]}


def workloads(n: int) -> dict[str, list[tuple[list[dict], dict]]]:
    history = "\n".join(f"- {f}: {1 + (i * 7) % 5}" for i, f in enumerate(FILMS))
    return {
        "free": [([{"role": "user", "content": f"Give one tip for learning language number {i}."}], {}) for i in range(n)],
        "json": [([{"role": "user", "content": f"Films this user rated:\n{history}\n\nHow would they rate film {i}? "
                                               'Answer with JSON {"rating": n}.'}], {"schema": SCHEMA}) for i in range(n)],
        "judge": [([{"role": "user", "content": f"Conversation:\nHuman: How do I fix a flat tyre, case {i}?\n\n"
                                                "Reply A:\nTake the wheel off, find the hole, patch it and pump it up.\n\n"
                                                "Reply B:\nI cannot help with that.\n\nWhich reply is better? "
                                                'Answer with JSON {"better": "A"} or {"better": "B"}.'}],
                   {"schema": VERDICT, "top_logprobs": 5}) for i in range(n)],
    }


def measure(client: LLMClient, jobs, max_tokens: int) -> dict[str, float]:
    seconds, tokens = [], 0
    for chat, extra in jobs:
        before = client.usage.completion_tokens
        start = time.perf_counter()
        client.complete(chat, max_tokens=max_tokens, **extra)
        seconds.append(time.perf_counter() - start)
        tokens += client.usage.completion_tokens - before
    return {"median_s": statistics.median(seconds), "total_s": sum(seconds), "tokens_per_s": tokens / sum(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", action="append", default=[], help="Another endpoint (repeatable).")
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    servers = []
    endpoints = []
    from penchant.llm.embedded import start_server

    server = start_server()
    servers.append(server)
    endpoints.append(("penchant embedded", server.endpoint))
    endpoints += [(url, Endpoint(url)) for url in args.url]
    jobs = workloads(args.requests)
    try:
        results = {}
        for label, endpoint in endpoints:
            client = LLMClient(endpoint, cache=False, concurrency=1)
            client.complete("warm up", max_tokens=4)
            results[label] = {name: measure(client, work, args.max_tokens) for name, work in jobs.items()}
            print(f"{label} ({client.model})")
            for name, r in results[label].items():
                first = results[endpoints[0][0]][name]
                print(f"  {name:6s} median {r['median_s'] * 1000:7.0f} ms  {r['tokens_per_s']:6.1f} tokens/s  "
                      f"time ratio to {endpoints[0][0]}: {r['total_s'] / first['total_s']:.2f}x")
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
