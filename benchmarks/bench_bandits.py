"""Regret of the bandit policies in a slate world with a known best arm, with the regret curve as a PNG.

    .venv/bin/python benchmarks/bench_bandits.py [--rounds 5000] [--arms 20] [--plot regret.png]

One user, ``--arms`` items with random latent vectors (SlateWorld.synthetic, seed 3), one-item
lists, position-based clicks. Prints each policy's cumulative expected regret after ``--rounds``
rounds and the slope of log regret against log rounds over the last 90% (1 = linear, no learning).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from penchant.eval.plots import line_plot
from penchant.simulate.bandits import BetaThompson, EpsilonGreedy, LinearThompson, LinUCB
from penchant.simulate.loop import run_policy
from penchant.simulate.slate_world import SlateWorld


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5000)
    ap.add_argument("--arms", type=int, default=20)
    ap.add_argument("--plot", default="regret.png")
    args = ap.parse_args()
    world = SlateWorld.synthetic(n_users=1, n_items=args.arms, dim=6, slate_size=1, seed=3)
    policies = {"Beta Thompson": BetaThompson(1, args.arms), "linear Thompson": LinearThompson(world.item_features, 1),
                "LinUCB (α = 1)": LinUCB(world.item_features, 1),
                "uniform": EpsilonGreedy(np.zeros((1, args.arms)), 1.0)}
    print(f"| policy | regret after {args.rounds:,} rounds | log-log slope | seconds |")
    print("|---|---|---|---|")
    curves = {}
    for name, policy in policies.items():
        start = time.perf_counter()
        run = run_policy(world, policy, args.rounds, seed=0)
        curves[name] = run.regret
        print(f"| {name} | {run.regret[-1]:,.1f} | {run.regret_slope():.2f} | {time.perf_counter() - start:.1f} |")
    line_plot(curves, args.plot, title=f"Cumulative regret, {args.arms} arms", xlabel="round", ylabel="expected regret")
    print(f"regret curves: {args.plot}")


if __name__ == "__main__":
    main()
