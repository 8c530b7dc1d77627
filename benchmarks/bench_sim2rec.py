"""Sim2Rec across a reality gap (docs/loop.md): one training seed per process, then a table and a plot.

    PENCHANT_DATA=../shared/data python benchmarks/bench_sim2rec.py run SEED ITERATIONS gap_SEED.json   # seeds 0, 1, 2
    python benchmarks/bench_sim2rec.py table gap_0.json gap_1.json gap_2.json docs/loop_sim2rec.png

``run`` trains sim2rec, its family-trained ablation without the extractor and the actor-critic on the
documented world alone, and judges them with greedy on 6 held-out worlds outside the training ranges and
2 inside them (``reality_gap``); ``table`` prints the means with 95% t-intervals over the seeds, the
paired click differences, the extractor's recovery against the mean predictor, and draws the plot.
"""
import sys


def run() -> None:
    import dataclasses
    import json
    import sys
    import time

    import penchant.threads  # noqa
    from penchant.data import load_movielens
    from penchant.models import create
    from penchant.simulate.experiment import movielens_worlds
    from penchant.simulate.long_term_policies import HistoryGreedy
    from penchant.simulate.sim2rec import WorldFamily, reality_gap

    seed, iters, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ds = load_movielens("ml-100k")
    worlds = movielens_worlds(ds, create("als", factors=32).fit(ds), seed=0, sizes={"test": 200})
    t0 = time.time()
    log = lambda label: (lambda m: print(f"[seed {seed} {label} {time.time()-t0:.0f}s] {m}", flush=True))
    s2r = create("sim2rec", worlds, seed=seed, ac_iterations=iters).fit(log("sim2rec"))
    dr = create("sim2rec", worlds, seed=seed, ac_iterations=iters, extractor=False).fit(log("family-no-extractor"))
    # the same actor on one world (the documented one), as much data per iteration (2 x 100 users)
    one = dataclasses.replace(worlds, sizes=worlds.sizes | {"train": 200})
    single = create("actor-critic", one, seed=seed, ac_iterations=iters).fit(log("single-world"))
    policies = {"greedy": HistoryGreedy(worlds.scores), "single-world": single.policy, "family-no-extractor": dr.policy,
                "sim2rec": s2r.policy}
    gap = reality_gap(worlds, policies, WorldFamily(), held_out=6, in_range=2, steps=200, seed=12345)
    gap["training"] = {"sim2rec": s2r.training, "family-no-extractor": dr.training,
                       "single-world": single.training, "seconds": time.time() - t0}
    json.dump(gap, open(out, "w"))
    print("done", seed, time.time() - t0)


def table() -> None:
    import json

    import numpy as np
    from scipy import stats

    from penchant.eval.plots import new_figure, save_figure

    runs = [json.load(open(f)) for f in sys.argv[2:-1]]
    labels = ["greedy", "single-world", "family-no-extractor", "sim2rec"]
    def ci(x):
        x = np.asarray(x, float); m = x.mean()
        if len(x) < 2: return m, m, m
        h = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)); return m, m - h, m + h
    out = {"seeds": len(runs)}
    for kind in ("held_out", "in_range"):
        print(f"\n## {kind} worlds ({len(runs)} training seeds)")
        for metric in ("click", "retention", "watch"):
            for lab in labels:
                per_seed = [np.mean([w[lab][metric] for w in r["worlds"] if w["kind"] == kind]) for r in runs]
                m, lo, hi = ci(per_seed)
                out[f"{kind}/{metric}/{lab}"] = (m, lo, hi)
                print(f"{metric:9s} {lab:20s} {m:7.3f} [{lo:7.3f}, {hi:7.3f}]  per seed {np.round(per_seed, 2).tolist()}")
        for a, b in (("sim2rec", "single-world"), ("sim2rec", "family-no-extractor"), ("sim2rec", "greedy"),
                     ("single-world", "greedy")):
            d = [w[a]["click"] - w[b]["click"] for r in runs for w in r["worlds"] if w["kind"] == kind]
            per_seed = [np.mean([w[a]["click"] - w[b]["click"] for w in r["worlds"] if w["kind"] == kind]) for r in runs]
            m, lo, hi = ci(per_seed)
            wins = sum(x > 0 for x in d)
            print(f"clicks {a} - {b}: {m:.2f} [{lo:.2f}, {hi:.2f}] over seeds; wins {wins}/{len(d)} worlds×seeds")
    print("\n## extractor recovery on held-out worlds (standardised units; mean predictor = |truth|)")
    names = ["temperature", "boredom_weight", "novelty_weight", "leave_rate"]
    for n in names:
        rm = [x[n]["rmse"] for r in runs for x in r["recovery"]["sim2rec"]][:]
        base = [x[n]["rmse_mean_predictor"] for r in runs for x in r["recovery"]["sim2rec"]]
        em = [x[n]["error_of_mean_estimate"] for r in runs for x in r["recovery"]["sim2rec"]]
        kinds = [w["kind"] for r in runs for w in r["worlds"]]
        ho = np.array([k == "held_out" for k in kinds])
        rm, base, em = map(np.array, (rm, base, em))
        print(f"{n:15s} held-out: users' RMSE {rm[ho].mean():.2f} vs mean predictor {base[ho].mean():.2f}; "
              f"world-mean error {em[ho].mean():.2f} | in-range: {rm[~ho].mean():.2f} vs {base[~ho].mean():.2f}")
    for r in runs:
        t = r["training"]
        print("training seconds", round(t["seconds"]), "iterations", {k: len(v["iterations"] if "iterations" in v else v["records"]["iterations"]) for k, v in t.items() if k != "seconds"})
    # plot
    plt, fig, ax, path = new_figure(sys.argv[-1], size=(7.5, 4.2))
    x = np.arange(len(labels))
    for i, (kind, name) in enumerate((("held_out", "held-out worlds (outside the training ranges)"), ("in_range", "worlds inside the ranges"))):
        m = np.array([out[f"{kind}/click/{l}"] for l in labels])
        ax.bar(x + (i - 0.5) * 0.38, m[:, 0], 0.38, yerr=[m[:, 0] - m[:, 1], m[:, 2] - m[:, 0]], capsize=4, label=name)
    ax.set_xticks(x, labels)
    save_figure(plt, fig, ax, path, f"Sim2Rec across a reality gap ({len(runs)} training seeds, 95% intervals)", "policy",
                "clicks per user over 200 steps", loc="lower right")


if __name__ == "__main__":
    {"run": run, "table": table}[sys.argv[1]]()
