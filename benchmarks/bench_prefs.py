"""Pairwise preference models: MovieLens-100K rating pairs, synthetic worlds with known optimum,
label noise, few-shot users, and speed.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_prefs.py [--sections movielens,fewshot,worlds,noise,noiseselected,noiselatent,noisereal,speed,text,twousers]

* movielens: ratings split per user 80/10/10 (seed 0), pairs drawn within each part (5 per rating;
  ties dropped), so no test rating is seen in training. Every family picks its settings on the
  validation pairs (accuracy) from a small grid; the test table gives accuracy with a user-level
  95% bootstrap interval, log-loss, Brier, ECE before/after temperature scaling, per-user macro
  accuracy and the worst decile of users, and each model's paired difference from global BT.
* fewshot: whole users held out (20%); models trained on the rest are fitted to each held-out user
  from 2, 5, 10, 20, 50 of their comparisons (``adapt``); accuracy on the same remaining pairs.
  Writes ``docs/prefs_fewshot.png``.
* worlds: the cyclic world (GPM vs BT, as a fraction of Bayes-optimal accuracy, and on cycle edges
  against the 2/3 scalar ceiling), the plural world (PAL and VPL fitted to unseen users from 10
  pairs; VPL with latents swapped between users) and the directional world (DPA recovering planted
  directions).
* noise: the plural world with ε of the training (and validation) labels flipped, test labels clean:
  plain, label-smoothed, robust (unbiased) and forward-corrected training, and ensemble
  preference-strength weighting (with how well it flags the flipped pairs).
* noiseselected: PAL on ten plural worlds (``--worlds``) with ε = 0.2 of the training and validation labels
  flipped, every variant (clean, plain, smooth, robust, forward) choosing its settings and restart
  on its own validation pairs from one grid; beside it, personal BT told each user's planted taste
  group (clean, plain and forward: what the noisy labels carry once the structure is known) and
  the Bayes-optimal accuracy.
* noiselatent: the same protocol for latent-class ideal points (``pal-latent``: each user one
  taste class, inferred from all their pairs together).
* noisereal: MovieLens-100K rating pairs, pbt, ε = 0.2, each variant selected on its own
  validation pairs from the movielens grid.
* speed: comparisons learned per second by BT (L-BFGS) and GPM (one epoch of Adam) at 1M pairs.
* text: HH-RLHF harmless-base split by prompt: linear reward models over the reply's length, its
  TF-IDF bag of words, and frozen MiniLM (the sentence vector, ``text``, and every layer's mean-pooled
  states, ``layers``); then cross-fitted over 5 folds of prompts so every pair is tested once.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from pathlib import Path

import numpy as np

from penchant.data.preference_worlds import cyclic_world, directional_world, flip_labels, plural_world
from penchant.data.preferences import split_pairs
from penchant.eval.prefs import evaluate_pairs, few_shot_curve, pair_accuracy, paired_difference, user_bootstrap
from penchant.models.preference import create_preference

GRIDS = {
    "winrate": [{}],
    "bt": [{"alpha": a} for a in (0.3, 1.0, 3.0)],
    "pbt": [{"weight_decay": 1e-5, "reg": r, "factors": f} for r, f in itertools.product((0.01, 0.03, 0.05), (16, 32, 64))],
    "pal": [{"weight_decay": wd, "prototypes": k, "lr": 1e-2, "batch_size": 1024}
            for wd, k in itertools.product((3e-5, 1e-4, 3e-4), (2, 4, 8))],
    "gpm": [{"weight_decay": wd, "blocks": b} for wd, b in itertools.product((3e-5, 1e-4, 3e-4), (4, 8))],
    "vpl": [{"weight_decay": wd, "batch_size": 1024} for wd in (1e-5, 1e-4)],
    "dpa": [{"attributes": a, "given": True, "batch_size": 1024} for a in (4, 16)],
}
TEXT = {"pbt": {"features": "text"}, "pal": {"features": "text"}}
#: what the movielens section selected on valid (seed 0), used by ``--sections fewshot`` alone
SELECTED = {"pbt": {"weight_decay": 1e-5, "reg": 0.03, "factors": 16},
            "pal": {"weight_decay": 3e-5, "prototypes": 2, "lr": 1e-2, "batch_size": 1024},
            "vpl": {"weight_decay": 1e-5, "batch_size": 1024}}


def _accuracy(model, pairs) -> float:
    return float(_right(model, pairs).mean())


def select(name: str, grid: list[dict], train, valid, extra: dict | None = None):
    """Fit every setting; keep the one with the best validation accuracy."""
    best = None
    for params in grid:
        model = create_preference(name, **params, **(extra or {})).fit(train, valid)
        acc = _accuracy(model, valid)
        if best is None or acc > best[0]:
            best = (acc, params, model)
    return best


def movielens() -> dict:
    from penchant.data import load_movielens
    from penchant.data.preferences import PairSplit, rating_pair_split, with_item_attributes
    from penchant.embed import item_descriptions

    ds = load_movielens("ml-100k")
    sp = rating_pair_split(ds, seed=0, option_text=item_descriptions(ds))
    sp = PairSplit(*(with_item_attributes(p, ds, "class") for p in (sp.train, sp.valid, sp.test)), protocol=sp.protocol)
    print(f"ML-100K rating pairs: train {len(sp.train):,}, valid {len(sp.valid):,}, test {len(sp.test):,} "
          f"({sp.protocol})", flush=True)
    reports, chosen = {}, {}
    runs = [(n, n, GRIDS[n], None) for n in GRIDS] + [(f"{n} (text)", n, GRIDS[n], TEXT[n]) for n in TEXT]
    for label, name, grid, extra in runs:
        start = time.perf_counter()
        _, params, model = select(name, grid, sp.train, sp.valid, extra)
        reports[label] = evaluate_pairs(model, sp.test, sp.valid, label=label)
        chosen[label] = (params, time.perf_counter() - start, model)
        print(f"  {label}: test accuracy {reports[label].accuracy:.4f} with {params} "
              f"({len(grid)} settings, {chosen[label][1]:.0f} s)", flush=True)
    bt = reports["bt"]
    print("\n| model | accuracy (95% CI) | vs global BT (95% CI) | log-loss | Brier | ECE | ECE after T | "
          "user macro | worst 10% users | chosen on valid |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, r in sorted(reports.items(), key=lambda kv: -kv[1].accuracy):
        d, lo, hi = paired_difference(r, bt, sp.test.user)
        print(f"| {label} | {r.accuracy:.4f} ({r.accuracy_ci[0]:.4f}–{r.accuracy_ci[1]:.4f}) | "
              f"{d * 100:+.2f} ({lo * 100:+.2f}…{hi * 100:+.2f}) | {r.log_loss:.4f} | {r.brier:.4f} | {r.ece:.4f} | "
              f"{r.ece_scaled:.4f} (T={r.temperature:.2f}) | {r.user_macro:.4f} | {r.worst_decile:.4f} | {chosen[label][0]} |")
    print(f"ties: {', '.join(f'{k} {r.ties}' for k, r in reports.items())}")
    return {label: chosen[label][0] for label in chosen}


def fewshot(chosen: dict | None) -> None:
    from penchant.data import load_movielens
    from penchant.data.preferences import pairs_from_ratings

    ds = load_movielens("ml-100k")
    pairs = pairs_from_ratings(ds, seed=0)
    sp = split_pairs(pairs, (0.8, 0.0, 0.2), by="user", seed=0)
    inner = split_pairs(sp.train, (0.9, 0.1, 0.0), seed=1)
    bt = create_preference("bt", alpha=1.0).fit(inner.train)
    curves = {}
    for name in ("pbt", "pal", "vpl"):
        params = (chosen or SELECTED)[name]
        model = create_preference(name, **params).fit(inner.train, inner.valid)
        curves[name] = few_shot_curve(model, sp.test)
        print(f"  {name} {params}: " + ", ".join(f"{n}: {a:.4f}" for n, a in curves[name].items()), flush=True)
    shots = [n for n in curves["pal"] if n]
    held_bt = few_shot_curve(_Frozen(bt), sp.test)
    print("\nFew-shot, unseen ML-100K users (189 users held out whole; accuracy on the same held-out pairs)")
    print("| comparisons from the user | " + " | ".join(str(n) for n in [0, *shots]) + " |")
    print("|---|" + "---|" * (len(shots) + 1))
    print("| global BT | " + " | ".join(f"{held_bt[n]:.4f}" for n in [0, *shots]) + " |")
    for name, c in curves.items():
        print(f"| {name} | " + " | ".join(f"{c[n]:.4f}" for n in [0, *shots]) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.axhline(held_bt[0], color="grey", linestyle="--", label="global Bradley–Terry")
    for name, c in curves.items():
        ax.plot(shots, [c[n] for n in shots], marker="o", label=name)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(shots, [str(n) for n in shots])
    ax.set_xlabel("comparisons from the new user")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_title("ML-100K, unseen users")
    ax.legend()
    fig.tight_layout()
    out = Path("docs/prefs_fewshot.png")
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


class _Frozen:
    """A population model that ignores adaptation (the BT line of the few-shot table)."""

    def __init__(self, model) -> None:
        self.model = model

    def prob(self, *args):
        return self.model.prob(*args)

    def adapt(self, pairs):
        return self


def worlds() -> None:
    w = cyclic_world(seed=0)
    sp = split_pairs(w.pairs, (0.8, 0.1, 0.1), seed=0)
    idx = sp.indices("test")
    cyc = w.on_cycle[idx]
    bayes = w.bayes_accuracy(idx)
    print(f"\nCyclic world: {w.pairs.n_options} options in 3-cycles, {len(w.pairs):,} pairs; Bayes-optimal "
          f"test accuracy {bayes:.4f} (cycle edges {w.bayes_accuracy(idx[cyc]):.4f})")
    print("| model | test accuracy | fraction of Bayes | accuracy on cycle edges | agrees with Bayes on cycle edges |")
    print("|---|---|---|---|---|")
    for name, params in (("bt", {}), ("gpm", {"blocks": 2})):
        m = create_preference(name, **params).fit(sp.train, sp.valid)
        right = _right(m, sp.test)
        agree = np.mean((m.margin(sp.test.user, sp.test.winner, sp.test.loser) > 0)[cyc] == (w.p_true[idx] > 0.5)[cyc])
        print(f"| {name} | {right.mean():.4f} | {right.mean() / bayes:.3f} | {right[cyc].mean():.4f} | {agree:.3f} "
              f"(scalar ceiling 0.667) |")
    world = plural_world(seed=0)
    sp = split_pairs(world.pairs, (0.7, 0.1, 0.2), by="user", seed=0)
    inner = split_pairs(sp.train, (0.9, 0.1, 0.0), seed=1)
    test, tidx = sp.test, sp.indices("test")
    order = np.argsort(test.user, kind="stable")
    rank = np.arange(len(order)) - np.searchsorted(test.user[order], test.user[order])
    ctx = np.zeros(len(test), bool)
    ctx[order[rank < 10]] = True
    held = test.subset(~ctx)
    bayes = world.bayes_accuracy(tidx[~ctx])
    print(f"\nPlural world: 3 taste groups, {world.pairs.n_users} users ({len(np.unique(test.user))} unseen), "
          f"{world.pairs.n_options} items; Bayes-optimal accuracy on the unseen users' pairs {bayes:.4f}")
    print("| model | before adapting | after 10 comparisons per unseen user | fraction of Bayes |")
    print("|---|---|---|---|")
    for name, params in (("bt", {}), ("pbt", {}), ("pal", {"prototypes": 3}), ("pal-latent", {}), ("vpl", {})):
        m = create_preference(name, **params).fit(inner.train, inner.valid)
        before = _accuracy(m, held)
        after = _accuracy(m.adapt(test.subset(ctx)), held) if name != "bt" else before
        print(f"| {name} | {before:.4f} | {after:.4f} | {after / bayes:.3f} |")
    m = create_preference("vpl").fit(inner.train, inner.valid)
    print(f"VPL with latents swapped between the training users: valid accuracy {_accuracy(m, inner.valid):.4f} → "
          f"{_accuracy(m.shuffled(0), inner.valid):.4f}")
    world = directional_world(seed=0)
    sp = split_pairs(world.pairs, (0.8, 0.1, 0.1), seed=0)
    bayes = world.bayes_accuracy(sp.indices("test"))
    print(f"\nDirectional world: {world.pairs.n_users} users, each a planted unit direction over 2 known attribute "
          f"scores of {world.pairs.n_options} items; Bayes-optimal test accuracy {bayes:.4f}")
    print("| model | test accuracy | fraction of Bayes | cosine to the planted directions (median, 5th percentile) |")
    print("|---|---|---|---|")
    for name, params in (("bt", {}), ("pbt", {}), ("dpa", {"attributes": 0, "given": True}), ("dpa", {"attributes": 2})):
        m = create_preference(name, **params).fit(sp.train, sp.valid)
        acc = _accuracy(m, sp.test)
        cos = "—"
        if params.get("given"):
            c = (m.direction(np.arange(world.pairs.n_users)) * world.direction).sum(1)
            cos = f"{np.median(c):.3f}, {np.percentile(c, 5):.3f}"
        label = name + (" (given attributes)" if params.get("given") else " (2 learned attributes)" if name == "dpa" else "")
        print(f"| {label} | {acc:.4f} | {acc / bayes:.3f} | {cos} |")


def noise() -> None:
    world = plural_world(seed=0)
    sp = split_pairs(world.pairs, (0.8, 0.1, 0.1), seed=0)
    print(f"\nLabel noise, plural world (pairs split at random; ε of training and validation labels flipped; test "
          f"labels clean; Bayes {world.bayes_accuracy(sp.indices('test')):.4f})")
    print("| model | training | clean | ε=0.1 | ε=0.2 | ε=0.3 | loss at ε=0.2 as a share of plain's | "
          "flipped pairs flagged (AUC of low strength, ε=0.2) |")
    print("|---|---|---|---|---|---|---|---|")
    variants = (("plain", {}), ("smooth (ε)", {"loss": "smooth"}), ("robust (unbiased, ε)", {"loss": "robust"}),
                ("forward (ε)", {"loss": "forward"}), ("ensemble strength, 4 heads", {"strength_heads": 4}),
                ("strength + forward", {"strength_heads": 4, "loss": "forward"}))
    for name in ("pbt", "pal"):
        clean = _accuracy(create_preference(name).fit(sp.train, sp.valid), sp.test)
        rows, aucs = {}, {}
        for label, extra in variants:
            accs = []
            for eps in (0.1, 0.2, 0.3):
                params = dict(extra) | ({"epsilon": eps} if "loss" in extra else {})
                train = flip_labels(sp.train, eps, 1)
                m = create_preference(name, **params).fit(train, flip_labels(sp.valid, eps, 2))
                accs.append(_accuracy(m, sp.test))
                if eps == 0.2 and "strength_heads" in extra:
                    flipped = train.winner != sp.train.winner
                    ranks = np.argsort(np.argsort(-m.strength_.mean))
                    aucs[label] = (((ranks[flipped] + 1).sum() - flipped.sum() * (flipped.sum() + 1) / 2)
                                   / (flipped.sum() * (~flipped).sum()))
            rows[label] = accs
        for label, accs in rows.items():
            share = (clean - accs[1]) / (clean - rows["plain"][1])
            auc = f"{aucs[label]:.3f}" if label in aucs else "—"
            print(f"| {name} | {label} | {clean:.4f} | " + " | ".join(f"{a:.4f}" for a in accs) + f" | {share:.2f} | {auc} |",
                  flush=True)


#: the grids of the selected label-noise protocol: every variant (clean, plain, each correction)
#: chooses from the same settings and the same three restarts by its own validation accuracy
NOISE_GRIDS = {
    "pal": [{"prototypes": 3, "patience": 30, "lr": 1e-2, "weight_decay": wd, "user_lr": ul, "seed": s}
            for wd, ul, s in itertools.product((1e-5, 1e-4), (1, 10), (0, 1, 2))],
    "pal-latent": [{"prototypes": 3, "dims": d, "weight_decay": wd, "seed": s}
                   for d, wd, s in itertools.product((4, 16), (1e-5, 1e-4), (0, 1, 2))],
}
NOISE_VARIANTS = (("plain", {}), ("smooth", {"loss": "smooth"}), ("robust", {"loss": "robust"}),
                  ("forward", {"loss": "forward"}))


def noise_selected(name: str = "pal", eps: float = 0.2, worlds: int = 10, draws: int = 2000, workers: int = 2) -> None:
    """``name`` on plural worlds 0 .. ``worlds`` − 1 with ε of the training and validation labels
    flipped, every variant selected on its own (noisy) validation pairs from ``NOISE_GRIDS[name]``;
    beside it, personal BT told each user's planted taste group, on clean labels and on the noisy
    ones with plain and forward training (what the labels carry once the structure is known, and
    the share of plain's loss that the forward loss keeps even then). The pooled shares get a 95%
    interval from ``draws`` paired resamples of each world's test pairs (the fitted models held
    fixed). Worlds are fitted ``workers`` at a time, each in its own process."""
    from concurrent.futures import ProcessPoolExecutor

    grid = NOISE_GRIDS[name]
    print(f"\nLabel noise, selected ({name}, plural worlds 0–{worlds - 1}, ε = {eps} on training and validation labels, "
          f"test clean; each variant picks from {len(grid)} fits by its validation accuracy; groups known: personal BT "
          "told each user's group, clean / plain / forward)")
    print("| world | Bayes | groups known: clean | plain | forward | share | clean | plain | smooth | robust | forward "
          "| share: smooth | robust | forward |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    labels = ("clean",) + tuple(label for label, _ in NOISE_VARIANTS)
    lost = {label: np.zeros(draws + 1) for label in labels[1:]}  # [0]: the observed test set
    rng = np.random.default_rng(0)
    known_lost = np.zeros(2)  # groups known: clean − plain, clean − forward, summed over the worlds
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_noise_world, [name] * worlds, range(worlds), [eps] * worlds)
        for ws, (bayes, known, right) in enumerate(results):
            n = len(right["clean"])
            index = np.vstack([np.arange(n), rng.integers(0, n, (draws, n))])
            means = {label: r[index].mean(1) for label, r in right.items()}
            for label, losses in lost.items():
                losses += means["clean"] - means[label]
            acc = {label: m[0] for label, m in means.items()}
            known_lost += known[0] - known[1], known[0] - known[2]
            shares = " | ".join(f"{(acc['clean'] - acc[k]) / (acc['clean'] - acc['plain']):.2f}" for k in labels[2:])
            print(f"| {ws} | {bayes:.4f} | " + " | ".join(f"{a:.4f}" for a in known)
                  + f" | {(known[0] - known[2]) / (known[0] - known[1]):.2f} | "
                  + " | ".join(f"{acc[k]:.4f}" for k in labels) + f" | {shares} |", flush=True)
    pooled = []
    for k in labels[2:]:
        share = lost[k] / lost["plain"]
        low, high = np.percentile(share[1:], [2.5, 97.5])
        pooled.append(f"{share[0]:.2f} ({low:.2f}–{high:.2f})")
    print(f"| pooled (95% CI) | | | | | {known_lost[1] / known_lost[0]:.2f} |" + " |" * 5 + " " + " | ".join(pooled) + " |")


def _noise_world(name: str, ws: int, eps: float) -> tuple[float, list[float], dict[str, np.ndarray]]:
    """One world of :func:`noise_selected`: its Bayes accuracy on the test pairs, the groups-known
    accuracies (clean, plain, forward) and each variant's per-test-pair credit."""
    import torch

    torch.set_num_threads(1)  # one thread per worker process: two workers with two threads each crawl
    grid = NOISE_GRIDS[name]
    world = plural_world(seed=ws)
    sp = split_pairs(world.pairs, (0.8, 0.1, 0.1), seed=ws)
    train, valid = flip_labels(sp.train, eps, 1 + 10 * ws), flip_labels(sp.valid, eps, 2 + 10 * ws)
    right = {"clean": _right(select(name, grid, sp.train, sp.valid)[2], sp.test)}
    for label, extra in NOISE_VARIANTS:
        right[label] = _right(select(name, grid, train, valid, extra | ({"epsilon": eps} if extra else {}))[2], sp.test)
    known = [_accuracy(create_preference("pbt", factors=4, reg=1e-3, **extra).fit(world.by_group(t), world.by_group(v)),
                       world.by_group(sp.test))
             for t, v, extra in ((sp.train, sp.valid, {}), (train, valid, {}),
                                 (train, valid, {"loss": "forward", "epsilon": eps}))]
    return world.bayes_accuracy(sp.indices("test")), known, right


def _right(model, pairs) -> np.ndarray:
    """Per test pair: 1 right, 0 wrong, ½ a tie."""
    return pair_accuracy(model.prob(pairs.user, pairs.winner, pairs.loser))


def noise_movielens(eps: float = 0.2) -> None:
    """MovieLens-100K rating pairs, pbt, ε of the training and validation labels flipped: every
    variant selected from the movielens section's pbt grid on its own validation pairs."""
    from penchant.data import load_movielens
    from penchant.data.preferences import rating_pair_split

    sp = rating_pair_split(load_movielens("ml-100k"), seed=0)
    train, valid = flip_labels(sp.train, eps, 1), flip_labels(sp.valid, eps, 2)
    clean = _accuracy(select("pbt", GRIDS["pbt"], sp.train, sp.valid)[2], sp.test)
    print(f"\nLabel noise on real data: MovieLens-100K rating pairs, pbt, ε = {eps} (clean {clean:.4f}; "
          f"each variant selected on its own validation pairs)")
    print("| training | test accuracy | loss as a share of plain's |")
    print("|---|---|---|")
    acc = {label: _accuracy(select("pbt", GRIDS["pbt"], train, valid, extra | ({"epsilon": eps} if extra else {}))[2], sp.test)
           for label, extra in NOISE_VARIANTS}
    for label, a in acc.items():
        print(f"| {label} | {a:.4f} | {(clean - a) / (clean - acc['plain']):.2f} |", flush=True)


def speed() -> None:
    rng = np.random.default_rng(0)
    n_options, n = 2000, 1_000_000
    strength = rng.normal(size=n_options)
    a, b = rng.integers(0, n_options, n), rng.integers(0, n_options, n)
    b = np.where(a == b, (b + 1) % n_options, b)
    wins = rng.random(n) < 1 / (1 + np.exp(-(strength[a] - strength[b])))
    from penchant.data.pairs import PreferencePairs

    pairs = PreferencePairs(np.full(n, -1), np.where(wins, a, b), np.where(wins, b, a), np.arange(n),
                            np.array([], dtype=object), np.arange(n_options).astype(str).astype(object))
    print(f"\nSpeed, {n:,} comparisons over {n_options:,} options (this machine)")
    start = time.perf_counter()
    bt = create_preference("bt", alpha=1.0).fit(pairs)
    t_bt = time.perf_counter() - start
    corr = np.corrcoef(bt.theta_, strength)[0, 1]
    print(f"BT (L-BFGS to convergence): {t_bt:.2f} s = {n / t_bt:,.0f} comparisons/s (strengths recovered, r = {corr:.3f})")
    start = time.perf_counter()
    create_preference("gpm", epochs=1, batch_size=4096).fit(pairs)
    t_gpm = time.perf_counter() - start
    print(f"GPM (1 epoch, batch 4096): {t_gpm:.2f} s = {n / t_gpm:,.0f} comparisons/s per epoch")


def text() -> None:
    import os

    from penchant.data import read_text_comparisons

    folder = Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "hh-rlhf"
    pairs = read_text_comparisons(folder / "harmless-base-test.jsonl.gz")
    sp = split_pairs(pairs, (0.7, 0.15, 0.15), by="group", seed=0)
    print(f"\nHH-RLHF harmless-base, {len(pairs):,} pairs split by prompt 70/15/15 "
          f"({len(sp.train):,}/{len(sp.valid):,}/{len(sp.test):,}); linear rewards, alpha chosen on valid")
    print("| reward features | test accuracy (95% CI, pairs resampled) | log-loss | ECE after T | alpha |")
    print("|---|---|---|---|---|")
    reports = {}
    for features in ("length", "bow", "text", "layers"):
        grid = [{"alpha": a, "features": features} for a in (0.01, 0.1, 1.0, 10.0, 100.0)]
        _, params, model = select("bt", grid, sp.train, sp.valid)
        r = evaluate_pairs(model, sp.test, sp.valid, label=features)
        reports[features] = r
        print(f"| {features} | {r.accuracy:.4f} ({r.accuracy_ci[0]:.4f}–{r.accuracy_ci[1]:.4f}) | {r.log_loss:.4f} | "
              f"{r.ece_scaled:.4f} | {params['alpha']} |", flush=True)
    for ours, base in itertools.product(("text", "layers"), ("length", "bow")):
        d, lo, hi = paired_difference(reports[ours], reports[base], np.arange(len(sp.test)))
        print(f"MiniLM {ours} reward minus {base}: {d * 100:+.2f} points (95% CI {lo * 100:+.2f}…{hi * 100:+.2f})")
    cross_fitted(pairs)


def cross_fitted(pairs, folds: int = 5) -> None:
    """Every pair tested once, by a reward fitted on the other folds' prompts (alpha chosen on 15%
    of those prompts); intervals resample prompts."""
    from penchant.eval.prefs import user_bootstrap

    rng = np.random.default_rng(0)
    n_groups = int(pairs.group.max()) + 1
    fold_of_group = rng.permutation(n_groups) % folds
    fold = fold_of_group[pairs.group]
    credit = {f: np.zeros(len(pairs)) for f in ("length", "bow", "text", "layers")}
    for k in range(folds):
        rest = pairs.subset(fold != k)
        inner = split_pairs(rest, (0.85, 0.15, 0.0), by="group", seed=k)
        test = pairs.subset(fold == k)
        for features, right in credit.items():
            grid = [{"alpha": a, "features": features} for a in (0.01, 0.1, 1.0, 10.0, 100.0)]
            _, params, _ = select("bt", grid, inner.train, inner.valid)
            model = create_preference("bt", **params).fit(rest)
            right[fold == k] = _right(model, test)
    print(f"\nCross-fitted by prompt ({folds} folds; all {len(pairs):,} pairs tested once; intervals resample the "
          f"{n_groups:,} prompts)")
    print("| reward features | accuracy (95% CI) |")
    print("|---|---|")
    for features, c in credit.items():
        lo, hi = user_bootstrap(c, pairs.group, n_boot=2000)
        print(f"| {features} | {c.mean():.4f} ({lo:.4f}–{hi:.4f}) |")
    for ours, base in itertools.product(("text", "layers"), ("length", "bow")):
        diff = credit[ours] - credit[base]
        lo, hi = user_bootstrap(diff, pairs.group, n_boot=2000)
        print(f"MiniLM {ours} reward minus {base}: {diff.mean() * 100:+.2f} points "
              f"(95% CI {lo * 100:+.2f}…{hi * 100:+.2f})", flush=True)


def _forget_and_adapt(model, pairs, users, shots: int, draws: int, seed: int, test):
    """Per test pair, the share of ``draws`` in which the model, having forgotten ``users``, is
    right after fitting each of them from ``shots`` of their comparisons in ``pairs``; float (n_test,)."""
    right = np.zeros(len(test))
    for d in range(draws):
        rng = np.random.default_rng(seed + d)
        chosen = np.concatenate([rng.choice(np.flatnonzero(pairs.user == u), shots, replace=False) for u in users])
        fresh = copy.deepcopy(model).forget(users)
        fresh.adapt(pairs.subset(chosen))
        right += _right(fresh, test)
    return right / draws


def _gain(right: np.ndarray, base: np.ndarray) -> str:
    """Mean of ``right − base`` (per-pair credit) in points with its 95% pair-bootstrap interval."""
    lo, hi = user_bootstrap(right - base, np.arange(len(right)), n_boot=2000)
    return f"{(right - base).mean() * 100:+.2f} ({lo * 100:+.2f}…{hi * 100:+.2f})"


def two_users() -> None:
    import os

    from penchant.data import read_text_comparisons

    folder = Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "hh-rlhf"
    pairs = read_text_comparisons(folder / "relabeled-both-test.jsonl.gz")
    sp = split_pairs(pairs, (0.7, 0.15, 0.15), by="group", seed=0)
    users = sp.test.user
    print(f"\nHH-RLHF relabeled by two users (VPL's relabeling: {', '.join(pairs.user_ids)}), {len(pairs):,} pairs "
          f"split by prompt 70/15/15; MiniLM features (sentence vector or layers) and settings chosen on valid")
    neural = {"lr": 3e-3, "batch_size": 128, "patience": 30}
    kinds = ("text", "layers")
    runs = {"single reward (BT)": ("bt", [{"features": k, "alpha": a} for k, a in itertools.product(kinds, (1.0, 10.0, 100.0))]),
            "pbt": ("pbt", [{"features": k, "factors": f, "weight_decay": wd, **neural}
                            for k, f, wd in itertools.product(kinds, (4, 16), (1e-5, 1e-3))]),
            "pal": ("pal", [{"features": k, "prototypes": 2, "dims": d, "user_lr": f, "weight_decay": 1e-5, **neural}
                            for k, d, f in itertools.product(kinds, (8, 16), (1.0, 30.0))]),
            "vpl": ("vpl", [{"features": k, "latent": d, "beta": b, "weight_decay": 1e-5, "context": 32, **neural}
                            for k, d, b in itertools.product(kinds, (4, 8), (1e-3, 1e-2))]),
            "dpa": ("dpa", [{"features": k, "attributes": a, "weight_decay": wd, **neural}
                            for k, a, wd in itertools.product(kinds, (2, 4), (1e-5, 1e-3))])}
    reports, models, chosen = {}, {}, {}
    for label, (name, grid) in runs.items():
        _, chosen[label], model = select(name, grid, sp.train, sp.valid)
        reports[label] = evaluate_pairs(model, sp.test, sp.valid, label=label, resample="pairs")
        models[label] = model
    single, right = reports["single reward (BT)"], {}
    print("| model | features | test accuracy (95% CI) | harmless user | helpful user | vs single reward (95% CI) | "
          "each user forgotten, then fitted from 10 of their comparisons (mean of 20 draws) | that minus single reward (95% CI) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in reports.items():
        d, lo, hi = paired_difference(r, single, np.arange(len(sp.test)))
        per = [np.mean(r.per_pair[users == u]) for u in range(2)]
        adapted = gain = "—"
        if label != "single reward (BT)":
            right[label] = _forget_and_adapt(models[label], sp.train, np.arange(2), 10, 20, 100, sp.test)
            adapted, gain = f"{right[label].mean():.4f}", _gain(right[label], single.per_pair)
        print(f"| {label} | {chosen[label]['features']} | {r.accuracy:.4f} ({r.accuracy_ci[0]:.4f}–{r.accuracy_ci[1]:.4f}) | "
              f"{per[0]:.4f} | {per[1]:.4f} | {d * 100:+.2f} ({lo * 100:+.2f}…{hi * 100:+.2f}) | {adapted} | {gain} |", flush=True)
    print("Settings chosen on valid: " + "; ".join(f"{label}: {chosen[label]}" for label in reports))
    print("The models the few-shot bar names, refitted with other seeds (chosen settings; 20 draws of 10 "
          "comparisons per user; vs the single reward):")
    for label in ("pal", "vpl"):
        name = runs[label][0]
        for seed in (0, 1, 2):
            if seed == 0:  # the model of the table, adapted there
                model, seeded = models[label], right[label]
            else:
                model = create_preference(name, **chosen[label], seed=seed).fit(sp.train, sp.valid)
                seeded = _forget_and_adapt(model, sp.train, np.arange(2), 10, 20, 100, sp.test)
            print(f"  {label} seed {seed}: test {_accuracy(model, sp.test):.4f}; fitted from 10: {seeded.mean():.4f}, "
                  f"{_gain(seeded, single.per_pair)}", flush=True)
    vpl = models["vpl"]
    own, swapped = reports["vpl"].accuracy, _accuracy(vpl.shuffled(seed=0), sp.test)
    print(f"VPL ({chosen['vpl']}): test accuracy {own:.4f} with each user's own latent, {swapped:.4f} with the two "
          f"latents swapped; latents {np.round(vpl.latents(np.arange(2)), 3).tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="movielens,fewshot,worlds,noise,noiseselected,noiselatent,noisereal,speed,text,twousers")
    ap.add_argument("--worlds", type=int, default=10, help="plural worlds in noiseselected and noiselatent")
    args = ap.parse_args()
    sections = args.sections.split(",")
    chosen = movielens() if "movielens" in sections else None
    if "fewshot" in sections:
        fewshot(chosen)
    if "worlds" in sections:
        worlds()
    if "noise" in sections:
        noise()
    if "noiseselected" in sections:
        noise_selected("pal", worlds=args.worlds)
    if "noiselatent" in sections:
        noise_selected("pal-latent", worlds=args.worlds)
    if "noisereal" in sections:
        noise_movielens()
    if "speed" in sections:
        speed()
    if "text" in sections:
        text()
    if "twousers" in sections:
        two_users()


if __name__ == "__main__":
    main()
