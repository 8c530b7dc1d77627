"""Metrics of conversational recommendation over simulated episodes.

For an episode that succeeds at turn t (1-based, the opening not counted) with the target at rank
r (1-based) of the list shown, and T the turn budget (15), K the list size (10):

* SR@k = share of episodes with t ≤ k (k = 5, 10, 15);
* AT (average turns) = mean of t, failures counted as T;
* hDCG@(T, K) (UNICORN's hierarchical DCG) = 1/log2(t + 2) + (1/log2(t + 1) − 1/log2(t + 2)) /
  log2(r + 1) for a success within T turns, else 0: 1 for a hit at the first turn and first rank,
  and a hit at turn t is always worth more than any hit at turn t + 1.

Intervals are percentile bootstraps over episodes (95%).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import DataError
from penchant.eval.significance import bootstrap_ci

#: the turn budget T of the standard protocol (hDCG@(T, K) and success rates at T)
MAX_TURNS = 15


@dataclass
class EpisodeResult:
    """What happened in one episode. ``turn``: the success turn (1-based) or None; ``rank``: the
    target's 1-based position in the accepted list; ``asked``: (value, accepted) per value asked."""

    user: int
    target: int
    turn: int | None
    rank: int | None
    asked: list[tuple[int, bool]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    #: the simulated user the episode was played against (its transcript, for text conversations)
    user_model: object = field(default=None, repr=False)


def hdcg(turn: int | None, rank: int | None, max_turns: int = MAX_TURNS) -> float:
    """hDCG@(T, K) of one episode (0 for a failure)."""
    if turn is None or turn > max_turns:
        return 0.0
    lo, hi = 1 / np.log2(turn + 2), 1 / np.log2(turn + 1)
    return float(lo + (hi - lo) / np.log2(rank + 1))


def conversation_metrics(results: Sequence[EpisodeResult], graph: AttributeGraph | None = None, *,
                         max_turns: int = MAX_TURNS, n_boot: int = 1000, seed: int = DEFAULT_SEED) -> dict:
    """SR@5/10/15, AT and hDCG with 95% intervals, questions and lists per episode, and (when
    ``graph`` is given) per attribute type how many values were offered and the share accepted."""
    if not results:
        raise DataError("no episodes")
    turn = np.array([r.turn if r.turn is not None else max_turns + 1 for r in results], dtype=np.float64)
    per = {"sr@5": (turn <= 5).astype(float), "sr@10": (turn <= 10).astype(float),
           "sr@15": (turn <= max_turns).astype(float), "avg_turns": np.minimum(turn, max_turns),
           "hdcg": np.array([hdcg(r.turn, r.rank, max_turns) for r in results])}
    out: dict = {"episodes": len(results)}
    for k, v in per.items():
        out[k] = round(float(v.mean()), 4)
        out[f"{k}_ci"] = [round(x, 4) for x in bootstrap_ci(v, n_boot=n_boot, seed=seed)]
    out["questions_per_episode"] = round(float(np.mean([r.actions.count("ask") for r in results])), 3)
    out["values_offered_per_episode"] = round(float(np.mean([len(r.asked) for r in results])), 3)
    out["lists_per_episode"] = round(float(np.mean([r.actions.count("recommend") for r in results])), 3)
    if graph is not None:
        asked, yes = Counter(), Counter()
        for r in results:
            for v, ok in r.asked:
                kind = graph.type_names[graph.types[v]]
                asked[kind] += 1
                yes[kind] += ok
        out["questions_by_type"] = {k: {"offered": asked[k], "accepted": yes[k],
                                        "acceptance": round(yes[k] / asked[k], 4)} for k in sorted(asked)}
    return out
