"""The service's uncached answer through the one answer core, against the path it replaced, in one
process (so a busy machine disturbs both alike; the best of several passes is reported).

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_answer_core.py [--model als] [--passes 7]

On MovieLens-100K with the model fitted on everything, every one of the 943 users is answered
(k = 10, their training items left out, a few stored events banned as the service does), by:

* ``core``: :meth:`penchant.experiment.answers.AnswerCore.rank` for one user, as the service's host
  calls it (no history row for a user the model ranks);
* ``before``: the host's own path before the core (a boolean mask of the training row and the
  stored events, ``model.score`` of one user as float64, the top-k of that row), written out here
  as the reference.

Both must give the same lists (checked); printed: microseconds per answer, best pass of each, and
the ratio core / before.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from penchant.data import load
from penchant.experiment.answers import AnswerCore
from penchant.models.ranking import top_k
from penchant.models.registry import create


def before(model, users: dict[str, int], train, user_id: str, banned_items: list[int], k: int) -> list[int]:
    """The host's answer for a known user before the core (its _mask, user_scores and _best)."""
    mask = np.zeros(train.shape[1], dtype=bool)
    mask[banned_items] = True
    u = users[user_id]
    mask[train.indices[train.indptr[u]:train.indptr[u + 1]]] = True
    scores = model.score(np.array([u]))[0].astype(np.float64)
    row = scores[None, :].copy()
    row[0, mask] = -np.inf
    items, values = top_k(row, k)
    keep = np.isfinite(values[0])
    return items[0][keep].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="als")
    ap.add_argument("--passes", type=int, default=7)
    args = ap.parse_args()
    ds = load(Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k")
    model = create(args.model).fit(ds)
    core = AnswerCore(model)
    ids = [str(u) for u in model.user_ids_]
    rng = np.random.default_rng(0)
    banned = {u: rng.choice(model.n_items_, 3, replace=False) for u in ids}  # stored events since training
    train = model.seen_items()
    masks = {u: np.isin(np.arange(model.n_items_), banned[u]) for u in ids}

    def run_core() -> list[list[int]]:
        return [core.rank([u], 10, banned=masks[u])[0].items.tolist() for u in ids]

    def run_before() -> list[list[int]]:
        return [before(model, core.users, train, u, list(banned[u]), 10) for u in ids]

    assert run_core() == run_before(), "the core and the path it replaced give different lists"
    best = {"core": np.inf, "before": np.inf}
    for _ in range(args.passes):
        for name, fn in (("before", run_before), ("core", run_core)):
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) / len(ids) * 1e6)
    print(f"{args.model} on ML-100K, {len(ids)} users, k = 10, best of {args.passes} passes "
          f"({os.cpu_count()} cores): before {best['before']:.1f} µs per answer, core {best['core']:.1f} µs; "
          f"core / before = {best['core'] / best['before']:.3f}")


if __name__ == "__main__":
    main()
