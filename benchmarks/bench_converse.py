"""Conversational recommendation on MovieLens-100K under the standard simulator: every policy over
the same seeded test episodes, in each setting (warm, cold, drift), with coarse and fine attributes,
yes/no and multi-choice questions.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_converse.py \\
        [--policies greedy,maxent,oracle-asker] [--settings warm,cold,drift] [--levels coarse,fine] \\
        [--choices 0,5] [--episodes 2000] [--valid-episodes 1000] [--epochs 12] [--json out.json]

The settings (:mod:`penchant.converse.experiment`): warm = interactions split per user 80/10/10
(seed 0), the scorer (EASE) fitted on the 80%; cold = 20% of the users held out of the scorer whole
(half give validation, half test episodes; their scores are the popularity prior, nothing of theirs
is known); drift = each user's targets are the 20% of their items least like the rest of their
history (attribute cosine), split between validation and test. Learned policies train on the
validation episodes (half to learn, half to select); test episodes are (user, held-out item) pairs,
the same for every policy of a (setting, level). Intervals: 95% bootstrap over episodes.

``--choices 0,5`` plays each policy with yes/no questions (0) and offering up to 5 values of one
type per question; ``greedy`` never asks, so it has the single-choice row only. ``train s`` is the
policy's training time (0 for the untrained ones), ``ms/turn`` the time of a test turn (policy,
scorer and simulated user). The JSON holds every result by setting, level and row label, written
after each row so a long run that is stopped keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from penchant.converse.experiment import SETTINGS, evaluate_policy, prepare
from penchant.converse.policies import policy_names
from penchant.data import load

#: the order of the table's rows: the baselines first, then the paper-named policies
FIRST = ("greedy", "maxent", "oracle-asker", "tree")


def row(label: str, r: dict) -> str:
    """One markdown row of a result of :func:`penchant.converse.experiment.evaluate_policy`."""

    def cell(key: str) -> str:
        return f"{r[key]:.3f} ({r[key + '_ci'][0]:.3f}–{r[key + '_ci'][1]:.3f})"

    per_turn = r["ms_per_episode"] / max(r["avg_turns"], 1e-9)
    return (f"| {label} | {cell('sr@5')} | {cell('sr@10')} | {cell('sr@15')} | {cell('avg_turns')} | {cell('hdcg')} | "
            f"{r['questions_per_episode']:.2f} ({r['values_offered_per_episode']:.2f}) | {r['lists_per_episode']:.2f} | "
            f"{r['train_seconds']:.0f} | {per_turn:.2f} |")


HEADER = ("| policy | SR@5 | SR@10 | SR@15 | avg turns | hDCG@(15,10) | questions (values) | lists | train s | ms/turn |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="the data set (default: $PENCHANT_DATA/ml-100k)")
    ap.add_argument("--policies", default=None, help="comma-separated (default: every registered conversation policy)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--levels", default="coarse,fine")
    ap.add_argument("--choices", default="0,5", help="values per question: 0 = yes/no; N = multi-choice, up to N of one type")
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--valid-episodes", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    known = policy_names()
    names = args.policies.split(",") if args.policies else [n for n in FIRST if n in known] + [n for n in known if n not in FIRST]
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"unknown policies {unknown}; registered: {', '.join(known)}")
    settings = args.settings.split(",")
    if set(settings) - set(SETTINGS):
        ap.error(f"settings are {', '.join(SETTINGS)}")
    choices = [int(c) for c in args.choices.split(",")]
    ds = load(Path(args.data) if args.data else Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k")
    everything: dict = {}
    for setting in settings:
        for level in args.levels.split(","):
            start = time.perf_counter()
            setup = prepare(ds, level, setting=setting, episodes=args.episodes, valid_episodes=args.valid_episodes,
                            seed=args.seed)
            print(f"\n{setting}, {level}: {setup.graph.n_values:,} attribute values; {len(setup.test[0]):,} test episodes "
                  f"({len(set(setup.test[0].tolist())):,} users), {len(setup.valid[0]):,} validation episodes "
                  f"({len(set(setup.valid[0].tolist())):,} users); split, graph and {setup.model_name} "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            print(HEADER)
            rows = everything.setdefault(setting, {}).setdefault(level, {})
            for multi in choices:
                for name in names:
                    if multi and name == "greedy":
                        continue
                    r = evaluate_policy(setup, name, multi_choice=multi, epochs=args.epochs, seed=args.seed)
                    label = name + (f" (multi-choice {multi})" if multi else "")
                    rows[label] = r
                    print(row(label, r), flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(everything, indent=1))
            print("\nvalues offered by attribute type over all episodes (share accepted):")
            for label, r in rows.items():
                stats = ", ".join(f"{k} {v['offered']} ({v['acceptance']:.2f})" for k, v in r.get("questions_by_type", {}).items())
                print(f"  {label}: {stats or 'none'}")


if __name__ == "__main__":
    main()
