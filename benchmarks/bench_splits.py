"""Every penchant ranking model and the peer libraries on three ML-100K splits (issue 39 item 2).

The splits: per-user random 80/10/10 with seeds 2026 and 1, and per-user temporal 80/10/10 (each
user's first 80% of interactions by time in train, the next 10% in valid, the last 10% in test).
Every model, penchant's and the peers', is tuned on the split's own valid part only (nothing chosen
on one split is carried to another) and scored by penchant's full-ranking evaluator on the test
part with each user's train and valid items masked.

From a fresh clone (``make venv``; data as in ``benchmarks/peers/run.sh``)::

    .venv/bin/python benchmarks/bench_splits.py write                   # the three splits' files
    bash benchmarks/peers/run.sh splits       # the splits and the peers' lists on each (its own venvs)
    .venv/bin/python benchmarks/bench_splits.py fit --models ease,dlae --seeds 3   # penchant's models
    .venv/bin/python benchmarks/bench_splits.py table --markdown splits.md

``write`` puts ``train/valid/test.tsv`` (and RecBole's ``.inter`` copies) under
``.peers/work/splits/<split>/``; ``fit`` appends one JSON line per (split, model, seed) to
``.peers/work/splits/penchant.jsonl`` (so models can be added run by run); ``table`` scores the
peers' lists found in ``<split>/lists`` and prints every model × split with the best peer per split.
A model spec is ``name`` or ``name:key=value/key=value`` (e.g. ``blend:members=dlae,gfcf,als``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from penchant.data import Dataset, load, load_triple
from penchant.data.split import Split, _from_parts, random_holdout, rank_within_user
from penchant.data.write import write_log
from penchant.eval.evaluate import build_target, evaluate
from penchant.eval.lists import read_ranked_lists
from penchant.experiment.run import run

SPLITS = ("random-2026", "random-1", "temporal")
ROOT = Path(".peers/work/splits")
#: the blend's candidates, the same on every split (their weights are chosen on each split's valid):
#: every ranking model of the table except RecVAE (the slowest fit, 990 s on the loaded machine), BPR
#: and ItemKNN (below ALS and RP3beta on every split) and SANSA (an approximation of EASE, a member)
BLEND = "blend:members=dlae,,ease,,edlae,,als,,ials,,slist,,bspm,,gfcf,,rp3beta,,pop,,multvae,,lightgcn"
MODELS = "pop,itemknn,rp3beta,ease,edlae,dlae,slist,als,bpr,multvae,lightgcn,gfcf,bspm,sansa,recvae,ials," + BLEND
STOCHASTIC = {"als", "bpr", "multvae", "lightgcn", "recvae", "ials", "blend"}


def temporal(ds: Dataset, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Per-user temporal holdout: each user's interactions in time order (ties in file order) cut by ``ratios``."""
    rank, count = rank_within_user(ds.users, ds.time_order(), ds.n_users)
    cut1, cut2 = np.round(count * ratios[0]), np.round(count * (ratios[0] + ratios[1]))
    part = np.where(rank < cut1, 0, np.where(rank < cut2, 1, 2))
    return _from_parts(ds, part, "temporal per-user " + "/".join(f"{r:g}" for r in ratios), True)


def make_split(ds: Dataset, name: str) -> Split:
    return temporal(ds) if name == "temporal" else random_holdout(ds, (0.8, 0.1, 0.1), seed=int(name.split("-")[1]))


def write(root: Path, data: Path) -> None:
    """The three splits' files: tsv for penchant, LensKit and implicit; ``.inter`` for RecBole."""
    ds = load(data)
    for name in SPLITS:
        parts = make_split(ds, name).parts()
        for part, subset in parts.items():
            write_log(subset, root / name / f"{part}.tsv")
            write_log(subset, root / name / "recbole" / "ml100ksplit" / f"ml100ksplit.{part}.inter")
        print(f"{name}: " + ", ".join(f"{p} {s.n_interactions:,}" for p, s in parts.items()), flush=True)


def parse(spec: str) -> tuple[str, dict[str, str]]:
    """``name:key=value/key=value`` (``,,`` inside a value stands for ``,``) as (name, params)."""
    name, _, rest = spec.partition(":")
    return name, {k: v.replace(",,", ",") for k, v in (kv.split("=", 1) for kv in rest.split("/") if kv)}


def fit(root: Path, specs: list[str], seeds: int, splits: list[str]) -> None:
    """Fit each model on each split's train (selecting on its valid), score on test; one JSON line each."""
    out = root / "penchant.jsonl"
    for split in splits:
        d = root / split
        train, valid, test = load_triple(d / "train.tsv", d / "valid.tsv", d / "test.tsv")
        target = build_target(train, test, (valid,))
        for spec in specs:
            name, params = parse(spec)
            for seed in range(seeds if name in STOCHASTIC else 1):
                args = {**params, "seed": str(seed)} if name in STOCHASTIC else params
                start = time.perf_counter()
                r = run(name, args, train, valid, test, ks=[10], target=target)
                row = {"split": split, "model": spec.replace(",,", ","), "seed": seed, "ndcg@10": r.metrics()["ndcg@10"],
                       "fit_seconds": r.fit_seconds, "wall_seconds": time.perf_counter() - start,
                       "selected": {k: (v if isinstance(v, (int, float, str)) else str(v))
                                    for k, v in (r.extra.get("selected") or {}).items()}}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{split} | {row['model']} seed {seed} | ndcg@10 {row['ndcg@10']:.4f} | fit {r.fit_seconds:.1f}s "
                      f"| {row['selected']}", flush=True)


def table(root: Path, markdown: Path | None, specs: list[str] | None = None) -> str:
    """Every model × split (penchant's: mean over seeds, the latest run of each (split, model, seed);
    only the models of ``specs`` when given), the peers' lists scored here, the best peer per split and
    penchant's best / best peer."""
    latest: dict[tuple[str, str, int], float] = {}
    wanted = None if specs is None else {s.replace(",,", ",") for s in specs}
    for line in (root / "penchant.jsonl").read_text().splitlines():
        row = json.loads(line)
        if wanted is not None and row["model"] not in wanted:
            continue
        name, params = parse(row["model"])  # shown as name(key=value …)
        label = f"{name}({' '.join(f'{k}={v}' for k, v in params.items())})" if params else name
        latest[row["split"], label, row["seed"]] = row["ndcg@10"]
    cells: dict[tuple[str, str], list[float]] = {}
    for (split, model, _), v in latest.items():
        cells.setdefault((model, split), []).append(v)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    best: dict[str, dict[str, tuple[float, str]]] = {s: {} for s in SPLITS}
    for (model, split), vs in cells.items():
        text = f"{np.mean(vs):.4f}" + (f" ± {np.std(vs, ddof=1):.4f} ({len(vs)})" if len(vs) > 1 else "")
        rows.setdefault((model, "penchant"), {})[split] = text
        if np.mean(vs) > best[split].get("penchant", (-1.0, ""))[0]:
            best[split]["penchant"] = (float(np.mean(vs)), model)
    for split in SPLITS:
        d = root / split
        if not (d / "lists").is_dir():
            continue
        train, valid, test = load_triple(d / "train.tsv", d / "valid.tsv", d / "test.tsv")
        target = build_target(train, test, (valid,))
        for meta_path in sorted((d / "lists").glob("*.json")):
            meta = json.loads(meta_path.read_text())
            model, _ = read_ranked_lists(meta_path.with_suffix(".tsv"), train)
            v = evaluate(model, train, test, ks=[10], target=target).metrics()["ndcg@10"]
            key = (meta["model"], meta["library"])
            rows.setdefault(key, {})[split] = f"{v:.4f}"
            if v > best[split].get("peer", (-1.0, ""))[0]:
                best[split]["peer"] = (v, f"{meta['library']} {meta['model']}")
    lines = ["| model | library | " + " | ".join(SPLITS) + " |", "|---|---|" + "---|" * len(SPLITS)]
    order = sorted(rows, key=lambda k: -max(float(v.split()[0]) for v in rows[k].values()))
    for model, library in order:
        lines.append(f"| {model} | {library} | " + " | ".join(rows[model, library].get(s, "—") for s in SPLITS) + " |")
    for label, key in (("best peer", "peer"), ("penchant's best", "penchant")):
        lines.append(f"| **{label}** | | " + " | ".join(
            f"{best[s][key][1]} {best[s][key][0]:.4f}" if key in best[s] else "—" for s in SPLITS) + " |")
    lines.append("| **penchant's best / best peer** | | " + " | ".join(
        f"{best[s]['penchant'][0] / best[s]['peer'][0]:.3f}×" if {"peer", "penchant"} <= set(best[s]) else "—"
        for s in SPLITS) + " |")
    text = "\n".join(lines)
    print(text)
    if markdown:
        markdown.write_text(text + "\n")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("write", "fit", "table"))
    ap.add_argument("--root", type=Path, default=ROOT, help="the splits' folder")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k")
    ap.add_argument("--models", default=MODELS, help="model specs separated by ',' (',,' inside a value); "
                    "table: the penchant rows shown")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per stochastic model")
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    if args.step == "write":
        write(args.root, args.data)
        return
    specs = [s.replace("\0", ",,") for s in args.models.replace(",,", "\0").split(",")]
    if args.step == "fit":
        fit(args.root, specs, args.seeds, args.splits.split(","))
    else:
        table(args.root, args.markdown, specs)


if __name__ == "__main__":
    main()
