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
    from penchant.cli.render import progress
    from penchant.llm.client import Endpoint, LLMClient

    with LLMClient(timeout=timeout, cache=False, retries=1) as client, progress() as bar:
        named = Endpoint.from_env()
        task = bar.add_task(f"reaching {named.url}" if named is not None else "starting the embedded model")
        endpoint = client.endpoint
        bar.update(task, description=f"listing the models at {endpoint.url}")
        models = client.models()
        bar.update(task, description="one round trip")
        started = time.perf_counter()
        answer = client.chat("Reply with the single word: ready", max_tokens=8)
        seconds = time.perf_counter() - started
        result = {"url": endpoint.url, "embedded": Endpoint.from_env() is None,
                  "models": models, "model": client.model, "answer": answer, "seconds": round(seconds, 3),
                  "usage": client.usage.to_json()}
    out.print(f"[bold]{result['model']}[/bold] at {result['url']} answered {answer!r} in {seconds:.2f} s "
              f"(models listed: {', '.join(models)})")
    if json_out:
        write_json(json_out, result)


def judge(
    pairs: Path = typer.Argument(..., help="Comparisons with people's choices: TRL JSONL (prompt?/chosen/rejected), HH-RLHF dialogues, or the relabeled layout."),
    json_out: Path = typer.Option(..., "--json", help="Write agreement, position consistency and the routing table here."),
    limit: int = typer.Option(None, "--limit", help="Judge a seeded sample of this many pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    budget: list[float] = typer.Option([0.0, 0.1, 0.25, 0.5], "--budget", help="Share of pairs sent to people (repeatable)."),
    one_order: bool = typer.Option(False, "--one-order", help="Judge each pair once, chosen reply shown first half the time (seeded), instead of in both orders."),
    no_logprobs: bool = typer.Option(False, "--no-logprobs", help="Use the written verdict only (for endpoints without logprobs)."),
    max_chars: int = typer.Option(700, "--max-chars", help="Cut the conversation and each reply to their last this many characters."),
    pairs_out: Path = typer.Option(None, "--pairs-out", help="Write each pair's judgement and whether it goes to people (JSONL), at the first --budget above 0."),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once."),
) -> None:
    """An LLM judges A-versus-B pairs; agreement with people's labels, and which pairs to send to people."""
    import json

    import numpy as np

    from penchant.cli.render import progress
    from penchant.data.comparisons import read_text_comparisons
    from penchant.llm.client import LLMClient
    from penchant.llm.judge import Judgements, PairJudge, agreement, route, routing_report

    data = read_text_comparisons(pairs)
    index = np.arange(len(data))
    if limit is not None and limit < len(data):
        index = np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False))
    assert data.option_text is not None and data.option_context is not None
    prompt = data.option_context[data.winner[index]].astype(str)
    chosen, rejected = data.option_text[data.winner[index]].astype(str), data.option_text[data.loser[index]].astype(str)
    swap = np.random.default_rng(seed + 1).random(len(index)) < 0.5 if one_order else np.zeros(len(index), bool)
    first, second = np.where(swap, rejected, chosen), np.where(swap, chosen, rejected)
    client = LLMClient(max_tokens=12, concurrency=concurrency)
    judge_ = PairJudge(client, both_orders=not one_order, max_chars=max_chars, logprobs=not no_logprobs)
    calls = len(index) * (1 if one_order else 2)
    with progress() as bar:
        task = bar.add_task(f"judging {len(index):,} pairs", total=calls)
        judged = judge_.judge(list(prompt), list(first), list(second), progress=lambda n: bar.update(task, completed=n))
    if one_order:  # back to P(people's choice better)
        p = np.where(swap, 1 - judged.forward, judged.forward)
        judged = Judgements(p, p)
    agree = agreement(judged.p)
    table = routing_report(judged, budget)
    result = {"model": client.model, "pairs": int(len(index)), "pairs_in_file": int(len(data)),
              "sampled": bool(len(index) < len(data)), "both_orders": not one_order,
              "agreement": float(agree.mean()),
              "agreement_stderr": float(agree.std(ddof=1) / np.sqrt(len(agree))) if len(agree) > 1 else None,
              "position_consistency": judged.position_consistency() if not one_order else None,
              "mean_confidence": float(judged.confidence.mean()), "routing": table, "usage": client.usage.to_json()}
    out.print(f"[bold]{client.model}[/bold] agrees with people on {result['agreement']:.1%} of {len(index):,} pairs"
              + (f" (both orders agree on {result['position_consistency']:.1%})" if not one_order else ""))
    for row in table:
        out.print(f"  {row['human_share']:.0%} to people ({row['routed']:,} pairs): hybrid agreement "
                  f"{row['hybrid_agreement']:.1%} (random routing {row['random_routing_agreement']:.1%})")
    write_json(json_out, result)
    if pairs_out is not None:
        share = next((b for b in budget if b > 0), 0.0)
        routed = route(judged.confidence, share)
        with open(pairs_out, "w") as f:
            for j, row in enumerate(index):
                f.write(json.dumps({"pair": int(row), "p_chosen_better": float(judged.p[j]),
                                    "confidence": float(judged.confidence[j]), "to_people": bool(routed[j])}) + "\n")


def edits(
    data: str = typer.Option("ml-100k", "--data", help="Films to write notes about (titles and genres): ml-100k or a data folder."),
    rounds: int = typer.Option(40, "--rounds", help="Drafts per learner (the same contexts, in the same order, for each)."),
    learner: list[str] = typer.Option(["none", "oracle", "cipher"], "--learner", help="none, oracle or cipher (repeatable)."),
    k: int = typer.Option(3, "--k", help="Contexts CIPHER retrieves."),
    window: int = typer.Option(10, "--window", help="Rounds averaged for the first and last cost."),
    seed: int = typer.Option(0, "--seed", help="Order of the contexts."),
    max_tokens: int = typer.Option(100, "--max-tokens", help="Longest draft, in tokens."),
    json_out: Path = typer.Option(..., "--json", help="Write each learner's curve and rounds here."),
) -> None:
    """Learn a simulated writer's preference from their edits (CIPHER) against no learning and an oracle."""
    from penchant.cli.render import progress
    from penchant.cli.specs import read_named
    from penchant.llm.client import LLMClient
    from penchant.llm.edits import EditLearner, curve, film_contexts, run_edits

    for name in learner:
        if name not in ("none", "oracle", "cipher"):
            raise typer.BadParameter(f"{name!r} is not one of none, oracle, cipher", param_hint="--learner")
    ds = read_named(data)
    contexts = film_contexts(ds, rounds, seed)
    client = LLMClient()
    result: dict = {"model": None, "rounds": len(contexts), "learners": {}}
    with progress() as bar:
        for name in dict.fromkeys(learner):
            task = bar.add_task(f"{name}: drafting", total=len(contexts))
            runs = run_edits(contexts, EditLearner(name, client, k=k, max_tokens=max_tokens),
                             progress=lambda n: bar.update(task, completed=n))
            result["learners"][name] = {**curve(runs, window), "per_round": runs}
    result["model"] = client.model
    result["usage"] = client.usage.to_json()
    for name, r in result["learners"].items():
        out.print(f"[bold]{name}[/bold]: mean edit cost {r['mean_cost']:.1f} (first {window}: {r['first_cost']:.1f}, "
                  f"last {window}: {r['last_cost']:.1f}); drafted with the true preference in {r['true_preference_used']:.0%}")
    write_json(json_out, result)


def summarize(
    data: str = typer.Option("ml-100k", "--data", help="Events in time order with item titles: ml-100k or a data folder."),
    users: int = typer.Option(50, "--users", help="A seeded sample of this many users (with at least --block training events)."),
    block: int = typer.Option(10, "--block", help="Items per block; each block updates the summary."),
    max_blocks: int = typer.Option(2, "--max-blocks", help="The last this many blocks of a history are read."),
    model: str = typer.Option("zeroshot", "--model", help="The recommender fitted with and without the summaries: zeroshot, "
                              "sasrec or gru4rec (NAME or NAME:key=value,...; the networks read them through item_text=fuse unless given)."),
    param: list[str] = typer.Option([], "--param", help="A model parameter key=value (repeatable)."),
    weight: float = typer.Option(0.5, "--weight", help="The summary's share of the zero-shot ranker's user profile."),
    k: int = typer.Option(10, "--k", help="Cut-off of NDCG and recall."),
    seed: int = typer.Option(0, "--seed", help="Seed of the user sample."),
    summaries_out: Path = typer.Option(..., "--summaries-out", help="Write the summaries here (zeroshot:summaries=FILE reads them)."),
    json_out: Path = typer.Option(..., "--json", help="Write leave-last-out NDCG/recall with and without summaries here."),
    max_tokens: int = typer.Option(80, "--max-tokens", help="Longest summary, in tokens."),
) -> None:
    """Summarise users' histories block by block with the LLM; leave-last-out NDCG of a recommender with and without them."""
    from penchant.cli.render import progress
    from penchant.cli.specs import model_spec, read_named
    from penchant.llm.client import LLMClient
    from penchant.llm.summaries import summary_effect

    name, params = model_spec(model, param, "sequential")
    ds = read_named(data)
    client = LLMClient()
    with progress() as bar:
        task = bar.add_task(f"summarising {users} users", total=users)
        result = summary_effect(ds, client, users=users, block=block, max_blocks=max_blocks, model=name, params=params,
                                weight=weight, k=k, seed=seed, summaries_out=summaries_out, max_tokens=max_tokens,
                                progress=lambda n: bar.update(task, completed=n))
    ndcg = f"ndcg@{k}"
    out.print(f"{name} on {result['users']} users (leave-last-out): NDCG@{k} without summaries "
              f"{result['without'][ndcg]:.4f}, with {result['with'][ndcg]:.4f} (difference {result['ndcg_difference']:+.4f})")
    write_json(json_out, result)


def prefeval(
    json_out: Path = typer.Option(..., "--json", help="Write follow rates by distance and every answer here."),
    distance: list[int] = typer.Option([0, 4], "--distance", help="Unrelated exchanges between the preference and the request (repeatable)."),
    case: list[str] = typer.Option([], "--case", help="Only these cases (repeatable; default all)."),
    max_tokens: int = typer.Option(120, "--max-tokens", help="Longest answer, in tokens."),
) -> None:
    """Does the endpoint keep to a preference stated earlier in the conversation? Judged by rules, against the same requests without it."""
    from penchant.cli.render import progress
    from penchant.errors import ConfigError
    from penchant.llm.client import LLMClient
    from penchant.llm.prefeval import CASES, evaluate

    chosen = [c for c in CASES if not case or c.name in case]
    unknown = set(case) - {c.name for c in CASES}
    if unknown:
        raise ConfigError(f"unknown case {sorted(unknown)[0]!r}; cases: {', '.join(c.name for c in CASES)}")
    client = LLMClient()
    with progress() as bar:
        task = bar.add_task(f"{len(chosen)} cases", total=len(chosen) * len(distance) * 2)
        result = evaluate(client, chosen, distance, max_tokens=max_tokens, progress=lambda n: bar.update(task, completed=n))
    for row in result["by_distance"]:
        out.print(f"distance {row['distance']}: follows {row['follow_rate']:.0%} of {row['cases']} stated preferences "
                  f"({row['follow_rate_unstated']:.0%} when not stated)")
    write_json(json_out, result)
