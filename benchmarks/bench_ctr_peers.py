"""penchant's DeepFM, DCN-V2 and LR next to RecBole 1.2.1's DeepFM and DCN-V2 on exactly the same
ML-100K CTR rows, over seeds.

    bash benchmarks/peers/recbole_ctr/setup.sh          # once: RecBole's own venv under .peers/recbole
    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_ctr_peers.py [--seeds 3]
        [--models deepfm,dcnv2,lr] [--fields both|penchant|recbole] [--reuse]

Per seed: RecBole runs in its own venv (benchmarks/peers/recbole_ctr/runner.py, a subprocess) with
its bundled ML-100K context-aware settings (label = rating >= 4, random 80/10/10 rows, RecBole's
defaults for each model) and writes the (user_id, item_id) pairs of its train/valid/test rows, its
test AUC/LogLoss and its test predictions to .peers/work/ctr/recbole-SEED.json (``--reuse`` reads an
existing one instead of rerunning). penchant's ML-100K CTR data (``ctr_from_log`` over the folder
with its .user/.item files) is then cut into exactly those rows (every pair found once, the three
parts covering all 100,000 rows), and each penchant model (registered defaults, device cpu,
``seed`` = the seed) is fitted on train with early stopping on valid and scored on test.

Two penchant feature sets (``--fields``): ``penchant`` (its own: user, item, age band, gender,
occupation, zip prefix, genres, year band, hour, weekday) and ``recbole`` (RecBole's bundled set:
user, item, age, gender, occupation, genres, release year; penchant still bands age and year into
ML-1M's age bands and decades, it has no option for raw ones). Every AUC and log loss in the table
comes from penchant.eval.ctr over each model's test predictions (RecBole's own AUC from its
evaluator is printed per seed as a check). Printed: a markdown table (mean with 95% t-interval over
seeds) and the paired AUC difference penchant − RecBole per model, with the verdict against the
issue's bar (within 0.005 AUC or better). Fit seconds: RecBole's ``trainer.fit`` and penchant's
``fit``, one torch thread each, on the same machine one after the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PENCHANT_THREADS", "1")

from bench_ctr import interval

from penchant.data import load
from penchant.data.ctr import CTRData, ctr_from_log, feature_files, read_features
from penchant.errors import DataError
from penchant.eval.ctr import ctr_metrics
from penchant.models.registry import create, entry, params_class

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "peers" / "recbole_ctr" / "runner.py"
#: RecBole model name -> penchant model name
PEERS = {"DeepFM": "deepfm", "DCNV2": "dcnv2"}
#: the ML-100K user fields RecBole's bundled context-aware setting leaves out (penchant's names)
NOT_IN_RECBOLE = ("zip_prefix",)


def recbole(seed: int, data: Path, out: Path, venv: Path, reuse: bool) -> dict:
    """RecBole's split and results for ``seed`` (runs the peer in its own venv unless reused)."""
    path = out / f"recbole-{seed}.json"
    if not (reuse and path.exists()):
        python = venv / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"no RecBole venv at {venv}: run bash benchmarks/peers/recbole_ctr/setup.sh")
        subprocess.run([str(python), "-W", "ignore", str(RUNNER), "--data", str(data.parent), "--out", str(path),
                        "--seed", str(seed)], check=True, cwd=ROOT)
    return json.loads(path.read_text())


def penchant_data(folder: Path, fields: str) -> CTRData:
    """ML-100K as penchant's CTR data (every row, in the .inter file's order) with either feature set."""
    log = load(folder)
    user_file, item_file = feature_files(folder)
    if fields == "penchant":
        return ctr_from_log(log, user_file, item_file)
    users = read_features(user_file, "user_id")
    users = dataclasses.replace(users, categorical={k: v for k, v in users.categorical.items() if k not in NOT_IN_RECBOLE})
    return ctr_from_log(log, users, item_file, time_fields=False)


def rows_of(data: CTRData, split: dict[str, list[list[str]]]) -> dict[str, np.ndarray]:
    """The row indices of ``data`` for each of RecBole's parts, found by (user_id, item_id)."""
    import pandas as pd

    keys = pd.Index(np.char.add(np.char.add(data.user_ids[data.user].astype(str), "\t"),
                                data.item_ids[data.item].astype(str)))
    if not keys.is_unique:
        raise DataError("a (user, item) pair is rated twice: RecBole's rows cannot be matched by pair")
    out = {}
    for part, pairs in split.items():
        want = np.array([u + "\t" + i for u, i in pairs]) if pairs else np.array([], str)
        rows = keys.get_indexer(want)
        if (rows < 0).any():
            raise DataError(f"RecBole's {part} row {pairs[int(np.argmax(rows < 0))]} is not in penchant's ML-100K")
        out[part] = rows
    every = np.concatenate(list(out.values()))
    if len(every) != data.n or len(np.unique(every)) != data.n:
        raise DataError(f"RecBole's parts cover {len(np.unique(every))} distinct of {data.n} rows (overlap or gap)")
    return out


def build(name: str, seed: int):
    fields = params_class(entry(name).cls).model_fields
    return create(name, **{k: v for k, v in {"device": "cpu", "seed": seed}.items() if k in fields})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 2026, 2027, ... (RecBole's split and both inits)")
    parser.add_argument("--models", default="deepfm,dcnv2,lr", help="penchant ctr models")
    parser.add_argument("--fields", choices=("both", "penchant", "recbole"), default="both")
    parser.add_argument("--data", default=os.environ.get("PENCHANT_DATA", "../shared/data"))
    parser.add_argument("--venv", type=Path, default=ROOT / ".peers" / "recbole")
    parser.add_argument("--out", type=Path, default=ROOT / ".peers" / "work" / "ctr")
    parser.add_argument("--reuse", action="store_true", help="read RecBole's JSON for a seed if it exists")
    args = parser.parse_args()
    folder = Path(args.data).resolve() / "ml-100k"
    models = args.models.split(",")
    sets = ("penchant", "recbole") if args.fields == "both" else (args.fields,)
    datas = {s: penchant_data(folder, s) for s in sets}
    for s, d in datas.items():
        print(f"penchant {s} fields: {', '.join(d.fields)} ({d.n_features} features)")
    args.out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, dict]] = []
    for seed in range(2026, 2026 + args.seeds):
        peer = recbole(seed, folder, args.out, args.venv, args.reuse)
        run: dict[str, dict] = {}
        for s, data in datas.items():
            rows = rows_of(data, peer["split"])
            train, valid, test = (data.subset(rows[p], p) for p in ("train", "valid", "test"))
            if s == sets[0]:
                for rb, res in peer["models"].items():
                    prob = np.asarray(res["test_prob"])
                    run[f"RecBole {rb}"] = ctr_metrics(test.label, prob, test.group) | {"seconds": res["fit_seconds"]}
                    print(f"seed {seed} RecBole {rb}: auc {run[f'RecBole {rb}']['auc']:.4f} (RecBole's evaluator "
                          f"{res['auc']:.4f}, log loss {res['log_loss']:.4f}) {res['fit_seconds']:.1f} s, "
                          f"{res['epochs']} epochs (best {res['best_epoch']})", flush=True)
            for name in models:
                start = time.perf_counter()
                model = build(name, seed).fit(train, valid)
                seconds = time.perf_counter() - start
                row = ctr_metrics(test.label, model.predict(test), test.group) | {"seconds": seconds}
                run[f"penchant {name} [{s} fields]"] = row
                print(f"seed {seed} penchant {name} [{s} fields]: auc {row['auc']:.4f} log loss {row['log_loss']:.4f} "
                      f"gauc {row['gauc']:.4f} {seconds:.1f} s", flush=True)
        runs.append(run)
    names = list(runs[0])
    print(f"\nML-100K as CTR, RecBole's split (rating >= 4; random 80/10/10 rows; mean, 95% t-interval over "
          f"{len(runs)} seed{'s' if len(runs) > 1 else ''})\n")
    print("| model | AUC | log loss | GAUC | fit s |\n|---|---|---|---|---|")
    for name in names:
        cells = [interval([r[name][k] for r in runs]) for k in ("auc", "log_loss", "gauc")]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.mean([r[name]['seconds'] for r in runs]):.1f} |")
    print()
    for rb, ours in PEERS.items():
        for s in sets:
            a, b = f"penchant {ours} [{s} fields]", f"RecBole {rb}"
            if a in names and b in names:
                diff = [r[a]["auc"] - r[b]["auc"] for r in runs]
                verdict = "within 0.005 or better" if np.mean(diff) >= -0.005 else "NOT within 0.005"
                print(f"AUC {a} − {b}, paired by seed: {interval(diff)} → {verdict}")


if __name__ == "__main__":
    sys.exit(main())
