"""Recurrent user summaries (after MLLM-MSR: a user's history is summarised block by block, each
summary rewriting the previous one with what the next block shows).

A user's history (oldest first) is cut into blocks of ``block`` items; the first block is described
from scratch, each later one updates the description so far. Only the last ``max_blocks`` blocks
are read (the older ones would cost a request each and move the summary least). Every request goes
through the client's answer cache, so a rerun costs nothing and gives the same text.

The summaries feed the zero-shot ranker (``zeroshot:summaries=FILE``), which mixes the summary's
sentence embedding into the user's profile, and the text-aware sequence networks
(``sasrec:item_text=fuse,summaries=FILE``, likewise ``gru4rec``), which read it as a virtual item
before the history; :func:`summary_effect` measures the change in leave-last-out NDCG against the
same model without them, on the same users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.data.summaries import write_summaries
from penchant.errors import DataError
from penchant.llm.client import LLMClient

SYSTEM = "You describe what a viewer likes in films, briefly and concretely (genres, moods, eras)."


def first_prompt(titles: Sequence[str]) -> str:
    lines = "\n".join(f"- {t}" for t in titles)
    return f"A viewer watched these films, oldest first:\n{lines}\n\nDescribe this viewer's taste in at most two sentences."


def update_prompt(previous: str, titles: Sequence[str]) -> str:
    lines = "\n".join(f"- {t}" for t in titles)
    return (f"What we know of a viewer's taste:\n{previous}\n\nThey then watched:\n{lines}\n\n"
            "Rewrite the description of their taste in at most two sentences, keeping what still holds and adding what is new.")


def summarize(titles: Sequence[str], client: LLMClient, *, block: int = 10, max_blocks: int = 3,
              max_tokens: int = 80) -> list[str]:
    """The chain of summaries of one history (oldest first): one per block read, the last is current."""
    if not titles:
        return []
    cuts = list(range(len(titles), 0, -block))[:max_blocks][::-1]  # block ends, oldest read first
    chain: list[str] = []
    for end in cuts:
        part = titles[max(0, end - block):end]
        ask = first_prompt(part) if not chain else update_prompt(chain[-1], part)
        chain.append(client.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
                                 max_tokens=max_tokens).strip())
    return chain


def summarize_users(ds: Dataset, users: Sequence[int], client: LLMClient, *, block: int = 10, max_blocks: int = 3,
                    max_tokens: int = 80, progress: Callable[[int], None] | None = None) -> dict[str, list[str]]:
    """Summary chains by external user id for the user indices ``users`` of ``ds`` (their events in
    time order; item titles from ``ds.item_text``)."""
    if ds.item_text is None:
        raise DataError(f"{ds.name} has no item titles", expected="item text (titles) to describe histories with")
    indptr, items = ds.sequences()
    titles = ds.item_text.astype(str)
    histories = [list(titles[items[indptr[u]:indptr[u + 1]]]) for u in users]
    chains = client.map(lambda h: summarize(h, client, block=block, max_blocks=max_blocks, max_tokens=max_tokens),
                        histories, progress=progress)
    return {str(ds.user_ids[u]): chain for u, chain in zip(users, chains)}


def summary_readers() -> list[str]:
    """Registered models that read summaries (a ``summaries`` parameter)."""
    from penchant.models.registry import entry, model_names

    return [n for n in model_names() if any(p.name == "summaries" for p in entry(n).params())]


def summary_effect(ds: Dataset, client: LLMClient, *, users: int = 50, block: int = 10, max_blocks: int = 2,
                   model: str = "zeroshot", params: dict[str, Any] | None = None, weight: float = 0.5, k: int = 10,
                   seed: int = DEFAULT_SEED, summaries_out: str | Path, max_tokens: int = 80,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Leave-last-out NDCG@k and recall@k of ``model`` fitted with and without summaries of the
    users' training histories, on a seeded sample of ``users`` users (those with at least ``block``
    training events), with the per-user paired difference.

    Both fits see the same training data and select on the same validation events; only the
    sampled users have summaries, and only they are evaluated. ``weight`` is the zero-shot ranker's
    ``summary_weight``; a sequence network reads the summaries through its item-text projection
    (``item_text=fuse`` unless ``params`` say otherwise).
    """
    from penchant.data.split import leave_last_out
    from penchant.errors import ConfigError
    from penchant.experiment.run import run
    from penchant.models.registry import entry

    readers = summary_readers()
    if model not in readers:
        raise ConfigError(f"{model} does not read user summaries; one of {', '.join(readers)} does")
    params = dict(params or {})
    if any(p.name == "item_text" for p in entry(model).params()):
        params.setdefault("item_text", "fuse")
    split = leave_last_out(ds)
    counts = np.bincount(split.train.users, minlength=ds.n_users)
    tested = np.unique(split.test.users)
    eligible = tested[counts[tested] >= block]
    chosen = np.sort(np.random.default_rng(seed).choice(eligible, min(users, len(eligible)), replace=False))
    chains = summarize_users(split.train, chosen, client, block=block, max_blocks=max_blocks, max_tokens=max_tokens,
                             progress=progress)
    write_summaries(chains, summaries_out, {"model": client.model, "block": block, "max_blocks": max_blocks,
                                           "source": ds.name, "split": split.protocol})
    test = split.test.subset(np.isin(split.test.users, chosen))
    valid = split.valid
    out: dict[str, Any] = {"users": int(len(chosen)), "users_eligible": int(len(eligible)), "block": block,
                           "max_blocks": max_blocks, "recommender": model, "params": params, "model": client.model}
    reads = {"summaries": str(summaries_out)}
    if model == "zeroshot":
        reads["summary_weight"] = weight
        out["summary_weight"] = weight
    per_user = {}
    for label, extra in (("without", {}), ("with", reads)):
        result = run(model, {**params, **extra}, split.train, valid, test, ks=[k])
        metrics = result.metrics()
        out[label] = {f"ndcg@{k}": metrics[f"ndcg@{k}"], f"recall@{k}": metrics[f"recall@{k}"]}
        per_user[label] = result.per_user[f"ndcg@{k}"]
    diff = per_user["with"] - per_user["without"]
    out["ndcg_difference"] = float(diff.mean())
    out["ndcg_difference_stderr"] = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None
    out["usage"] = client.usage.to_json()
    return out
