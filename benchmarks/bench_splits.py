"""Every penchant ranking model and the peer libraries on three ML-100K splits (issue 39 item 2).

The splits: per-user random 80/10/10 with seeds 2026 and 1, and per-user temporal 80/10/10 (each
user's first 80% of interactions by time in train, the next 10% in valid, the last 10% in test).
Every model, penchant's and the peers', is tuned on the split's own valid part only (nothing chosen
on one split is carried to another) and scored by penchant's full-ranking evaluator on the test
part with each user's train and valid items masked.

From a fresh clone (``make venv``; data as in ``benchmarks/peers/run.sh``)::

    .venv/bin/python benchmarks/bench_splits.py write                   # the three splits' files
    bash benchmarks/peers/run.sh splits       # the splits and the peers' lists on each (its own venvs)
    .venv/bin/python benchmarks/bench_splits.py ials        # iALS's tuning protocol on each split's valid
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
from penchant.experiment.tune import search
from penchant.models.ials import row_regularization

SPLITS = ("random-2026", "random-1", "temporal")
ROOT = Path(".peers/work/splits")
#: the blend's candidates, the same on every split (their weights are chosen on each split's valid):
#: every ranking model of the table except RecVAE (the slowest fit, 990 s on the loaded machine), BPR
#: and ItemKNN (below ALS and RP3beta on every split) and SANSA (an approximation of EASE, a member)
BLEND = "blend:members=dlae,,ease,,edlae,,als,,ials,,slist,,bspm,,gfcf,,rp3beta,,pop,,multvae,,lightgcn"
MODELS = "pop,itemknn,rp3beta,ease,edlae,dlae,slist,als,bpr,multvae,lightgcn,gfcf,bspm,sansa,recvae,ials," + BLEND
STOCHASTIC = {"als", "bpr", "multvae", "lightgcn", "recvae", "ials", "blend"}
#: iALS's tuning protocol (Rendle, Krichene, Zhang & Koren, RecSys 2022, section 4), on a grid as in the
#: paper, epochs fixed: stage 1, α₀ × λ at a small d with ν = 1, then a finer 3 × 3 grid around the best;
#: stage 2, ν at stage 1's α₀, each ν with λ moved to the same mean row regulariser as stage 1's λ (the
#: paper's point that λ's scale moves with ν; its exact reference scaling is not used) times a few
#: factors; stage 3, larger d at stage 2's α₀ and ν with λ times a few factors (more dimensions want more
#: regularisation). ``bench_splits.py ials`` runs it on each split's valid and writes every trial to
#: ``<split>/ials_protocol.json``; ``fit`` takes a bare ``ials`` spec's settings from there (the best
#: validation NDCG@10 of all the trials).
IALS_PROTOCOL = {"small_factors": 64, "unobserved_weight": (0.03, 0.1, 0.3, 1.0),
                 "regularization": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1), "refine": (0.7, 1.0, 1.4),
                 "reg_exponent": (0.0, 0.25, 0.5, 0.75), "exponent_scale": (0.6, 1.0, 1.7),
                 "large_factors": (128, 256), "large_scale": (0.7, 1.0, 1.4, 2.0), "epochs": 16, "seed": 0}


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
            chosen = ials_choice(d) if name == "ials" and not params else None
            params = chosen or params
            for seed in range(seeds if name in STOCHASTIC else 1):
                args = {**params, "seed": str(seed)} if name in STOCHASTIC else params
                start = time.perf_counter()
                r = run(name, args, train, valid, test, ks=[10], target=target)
                row = {"split": split, "model": spec.replace(",,", ","), "seed": seed, "ndcg@10": r.metrics()["ndcg@10"],
                       "fit_seconds": r.fit_seconds, "wall_seconds": time.perf_counter() - start,
                       "selected": {k: (v if isinstance(v, (int, float, str)) else str(v))
                                    for k, v in (r.extra.get("selected") or {}).items()}}
                if chosen:
                    row["selected"] = {**chosen, "by": "ials_protocol.json"}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{split} | {row['model']} seed {seed} | ndcg@10 {row['ndcg@10']:.4f} | fit {r.fit_seconds:.1f}s "
                      f"| {row['selected']}", flush=True)


def ials_choice(split_dir: Path) -> dict[str, str]:
    """The settings ``bench_splits.py ials`` chose on this split's valid (``ials_protocol.json``), as spec params."""
    path = split_dir / "ials_protocol.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no iALS protocol run here; run `bench_splits.py ials --splits {split_dir.name}` first")
    return {k: str(v) for k, v in json.loads(path.read_text())["chosen"].items() if k != "seed"}


def _mean_row_reg(train: Dataset, unobserved_weight: float, exponent: float) -> float:
    """The mean of (count + α₀·n_other)^ν over every user and item row of ``train`` (λ = 1)."""
    x = train.csr > 0
    counts = (np.diff(x.tocsr().indptr), np.diff(x.tocsc().indptr))
    return float(np.concatenate([row_regularization(c, n, 1.0, unobserved_weight, exponent)
                                 for c, n in zip(counts, (x.shape[1], x.shape[0]), strict=True)]).mean())


def ials_protocol(root: Path, splits: list[str], protocol: dict = IALS_PROTOCOL) -> None:
    """Run :data:`IALS_PROTOCOL` on each split's valid part (one process, trials in turn); every trial
    (stage, settings, valid NDCG@10, CPU and wall seconds of its fit and validation) and the chosen
    settings go to ``<split>/ials_protocol.json``."""
    for split in splits:
        _IalsProtocol(root / split, protocol).run()


class _IalsProtocol:
    """:data:`IALS_PROTOCOL` on one split's valid part (see :func:`ials_protocol`)."""

    def __init__(self, split_dir: Path, protocol: dict) -> None:
        self.dir, self.p = split_dir, protocol
        self.train, valid, _ = load_triple(split_dir / "train.tsv", split_dir / "valid.tsv", split_dir / "test.tsv")
        self.job = search("ials", self.train, valid)
        self.trials: list[dict] = []
        p = protocol
        small = (len(p["unobserved_weight"]) * len(p["regularization"]) + len(p["refine"]) ** 2 - 1
                 + len(p["reg_exponent"]) * len(p["exponent_scale"]))
        #: each planned trial's d, for the ETA (a fit's time grows about linearly with d here)
        self.planned = [p["small_factors"]] * small + [f for f in p["large_factors"] for _ in p["large_scale"]]
        self.n_trials = len(self.planned)
        self.started = time.perf_counter()

    def trial(self, stage: str, **params: float) -> float:
        """Fit ``params`` on train, score valid NDCG@10, record it; a setting met again is not refitted."""
        params = {"epochs": self.p["epochs"], "seed": self.p["seed"], **params}
        for t in self.trials:
            if t["params"] == params:
                return t["valid"]
        wall, cpu = time.perf_counter(), time.process_time()
        value = self.job.judge(self.job.fit(params))
        self.trials.append({"stage": stage, "params": params, "valid": value,
                            "cpu_seconds": round(time.process_time() - cpu, 2),
                            "wall_seconds": round(time.perf_counter() - wall, 2)})
        done = len(self.trials)
        per_dim = (time.perf_counter() - self.started) / sum(t["params"]["factors"] for t in self.trials)
        eta = per_dim * sum(self.planned[done:])
        print(f"{self.dir.name} | ials stage {stage} trial {done}/{self.n_trials} | {params} | valid ndcg@10 "
              f"{value:.4f} | {self.trials[-1]['cpu_seconds']} CPU s | ETA ≈ {int(eta // 60)}m{int(eta % 60):02d}s",
              flush=True)
        return value

    def best(self, stage: str | None = None) -> dict:
        """The settings of the best valid NDCG@10 among ``stage``'s trials (all trials when None)."""
        return max((t for t in self.trials if stage is None or t["stage"] == stage), key=lambda t: t["valid"])["params"]

    def run(self) -> dict:
        """The three stages in turn; writes ``ials_protocol.json`` and returns the chosen settings."""
        p, small = self.p, self.p["small_factors"]
        for a0 in p["unobserved_weight"]:
            for lam in p["regularization"]:
                self.trial("1", factors=small, unobserved_weight=a0, regularization=lam, reg_exponent=1.0)
        b = self.best("1")
        for fa in p["refine"]:
            for fl in p["refine"]:
                self.trial("1", factors=small, unobserved_weight=b["unobserved_weight"] * fa,
                           regularization=b["regularization"] * fl, reg_exponent=1.0)
        b = self.best("1")
        a0, lam1 = b["unobserved_weight"], b["regularization"]
        for nu in p["reg_exponent"]:
            lam_nu = lam1 * _mean_row_reg(self.train, a0, 1.0) / _mean_row_reg(self.train, a0, nu)
            for f in p["exponent_scale"]:
                self.trial("2", factors=small, unobserved_weight=a0, regularization=lam_nu * f, reg_exponent=nu)
        b = self.best()  # stage 1's best (ν = 1) stays a candidate of stage 2
        for factors in p["large_factors"]:
            for f in p["large_scale"]:
                self.trial("3", factors=factors, unobserved_weight=a0, regularization=b["regularization"] * f,
                           reg_exponent=b["reg_exponent"])
        chosen, value = self.best(), max(t["valid"] for t in self.trials)
        (self.dir / "ials_protocol.json").write_text(json.dumps(
            {"protocol": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}, "chosen": chosen,
             "chosen_valid": value, "trials": self.trials}, indent=1) + "\n")
        print(f"{self.dir.name} | ials chose {chosen} (valid ndcg@10 {value:.4f}, {len(self.trials)} trials, "
              f"{sum(t['cpu_seconds'] for t in self.trials):.0f} CPU s)", flush=True)
        return chosen


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
    ap.add_argument("step", choices=("write", "ials", "fit", "table"))
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
    if args.step == "ials":
        ials_protocol(args.root, args.splits.split(","))
        return
    specs = [s.replace("\0", ",,") for s in args.models.replace(",,", "\0").split(",")]
    if args.step == "fit":
        fit(args.root, specs, args.seeds, args.splits.split(","))
    else:
        table(args.root, args.markdown, specs)


if __name__ == "__main__":
    main()
