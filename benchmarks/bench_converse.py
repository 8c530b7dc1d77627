"""Conversational recommendation on MovieLens-100K under the standard simulator: every policy over
the same seeded test episodes, in the coarse and the fine attribute settings.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_converse.py [--episodes 2000] [--levels coarse,fine]

Interactions are split per user 80/10/10 (seed 0); EASE fitted on the 80% scores items for each
user; learned policies train on 1,000 validation episodes (half to learn, half to select); the
test episodes are 2,000 (user, held-out item) pairs. Intervals: 95% bootstrap over episodes.
Also the multi-choice variant (up to 5 values of one type per question) for the asking policies.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from penchant.converse.experiment import evaluate_policy, prepare
from penchant.data import load

POLICIES = ("maxent", "greedy", "tree", "cpr", "ear")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--levels", default="coarse,fine")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--multi", default="maxent,cpr", help="policies also run multi-choice (5 values per question)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ds = load(Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k")
    everything = {}
    for level in args.levels.split(","):
        start = time.perf_counter()
        setup = prepare(ds, level, episodes=args.episodes, valid_episodes=1000, seed=0)
        counts = {t: int((setup.graph.types == i).sum()) for i, t in enumerate(setup.graph.type_names)}
        print(f"\n{level}: {setup.graph.n_values:,} attribute values {counts}; {len(setup.test[0]):,} test episodes; "
              f"split, graph and EASE {time.perf_counter() - start:.1f} s", flush=True)
        print("| policy | SR@5 | SR@10 | SR@15 | avg turns | hDCG@(15,10) | questions (values offered) | lists | train s | "
              "ms/episode |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        runs = [(p, 0) for p in POLICIES] + [(p, 5) for p in args.multi.split(",") if p]
        rows = {}
        for name, multi in runs:
            r = evaluate_policy(setup, name, multi_choice=multi, epochs=args.epochs)
            label = name + (" (multi-choice 5)" if multi else "")
            rows[label] = r

            def cell(key: str) -> str:
                return f"{r[key]:.3f} ({r[key + '_ci'][0]:.3f}–{r[key + '_ci'][1]:.3f})"

            print(f"| {label} | {cell('sr@5')} | {cell('sr@10')} | {cell('sr@15')} | {cell('avg_turns')} | {cell('hdcg')} | "
                  f"{r['questions_per_episode']:.2f} ({r['values_offered_per_episode']:.2f}) | {r['lists_per_episode']:.2f} | {r['train_seconds']:.0f} | "
                  f"{r['ms_per_episode']:.1f} |", flush=True)
        print("\nvalues offered by attribute type over all episodes (share accepted):")
        for label, r in rows.items():
            stats = ", ".join(f"{k} {v['offered']} ({v['acceptance']:.2f})" for k, v in r.get("questions_by_type", {}).items())
            print(f"  {label}: {stats or 'none'}")
        everything[level] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
