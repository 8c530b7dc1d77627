"""Score every peer library's lists and penchant's own models with penchant's evaluator, in one table.

    .venv/bin/python benchmarks/peers/score.py --split DIR --lists DIR [--seeds 3] [--markdown F] [--json F]

DIR (split) holds train.tsv, valid.tsv, test.tsv from ``penchant split``; DIR (lists) holds the
``<library>-<model>.tsv`` lists and ``.json`` timings the runners wrote. penchant's models are
fitted here on train (valid for their selection and early stopping); every model, peer or not,
is scored by the same full-catalogue evaluation with train and valid items masked.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (imported before any timing: no library's fit seconds include its imports)

from penchant.data import load_triple
from penchant.eval.evaluate import build_target, evaluate
from penchant.eval.lists import read_ranked_lists
from penchant.experiment.run import run

PENCHANT = ["pop", "itemknn", "rp3beta", "ease", "edlae", "dlae", "als", "bpr", "multvae", "lightgcn"]
STOCHASTIC = {"als", "bpr", "multvae", "lightgcn", "recvae", "ials"}
COUNTERPART = {"pop": "pop", "itemknn": "itemknn", "ease": "ease", "als": "als", "implicitmf": "als", "bpr": "bpr",
               "lightgcn": "lightgcn", "multivae": "multvae"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--lists", type=Path, required=True)
    ap.add_argument("--models", default=",".join(PENCHANT))
    ap.add_argument("--seeds", type=int, default=1, help="seeds per stochastic penchant model (mean and spread reported)")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    train, valid, test = load_triple(args.split / "train.tsv", args.split / "valid.tsv", args.split / "test.tsv")
    target = build_target(train, test, (valid,))
    rows = []
    ours: dict[str, float] = {}
    our_time: dict[str, float] = {}
    for name in args.models.split(","):
        seeds = range(args.seeds) if name in STOCHASTIC else range(1)
        results = [run(name, {"seed": s} if name in STOCHASTIC else {}, train, valid, test, ks=[10, 20], target=target)
                   for s in seeds]
        ndcg = np.array([r.metrics()["ndcg@10"] for r in results])
        recall = np.array([r.metrics()["recall@10"] for r in results])
        fit = float(np.mean([r.fit_seconds for r in results]))
        ours[name], our_time[name] = float(ndcg.mean()), fit
        rows.append({"model": name, "library": "penchant", "ndcg@10": float(ndcg.mean()),
                     "ndcg@10_std": float(ndcg.std(ddof=1)) if len(ndcg) > 1 else None, "recall@10": float(recall.mean()),
                     "fit_seconds": fit, "seeds": len(ndcg), "trials": results[0].extra.get("trials", 1)})
        print(f"penchant {name}: ndcg@10 {ndcg.mean():.4f}" + (f" ± {ndcg.std(ddof=1):.4f}" if len(ndcg) > 1 else ""), flush=True)
    for meta_path in sorted(args.lists.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        model, dropped = read_ranked_lists(meta_path.with_suffix(".tsv"), train)
        r = evaluate(model, train, test, ks=[10, 20], target=target)
        twin = COUNTERPART.get(meta["model"].lower())
        rows.append({"model": meta["model"], "library": meta["library"], "ndcg@10": r.metrics()["ndcg@10"],
                     "ndcg@10_std": None, "recall@10": r.metrics()["recall@10"], "fit_seconds": meta["fit_seconds"],
                     "penchant_model": twin, "dropped": dropped, "trials": meta.get("trials", 1),
                     "ratio_to_penchant": r.metrics()["ndcg@10"] / ours[twin] if twin in ours else None,
                     "penchant_speedup": meta["fit_seconds"] / our_time[twin] if our_time.get(twin, 0) >= 0.05 else None})
    rows.sort(key=lambda x: -x["ndcg@10"])
    head = "| model | library | NDCG@10 | Recall@10 | fit s | settings tried on valid | NDCG ratio to penchant's | penchant faster by |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        nd = f"{x['ndcg@10']:.4f}" + (f" ± {x['ndcg@10_std']:.4f}" if x.get("ndcg@10_std") else "")
        ratio = f"{x['ratio_to_penchant']:.3f} (vs `{x['penchant_model']}`)" if x.get("ratio_to_penchant") else "—"
        speed = f"{x['penchant_speedup']:.1f}×" if x.get("penchant_speedup") else "—"
        lines.append(f"| {x['model']} | {x['library']} | {nd} | {x['recall@10']:.4f} | {x['fit_seconds']:.1f} | "
                     f"{x['trials']} | {ratio} | {speed} |")
    best_ours = max((x for x in rows if x["library"] == "penchant"), key=lambda x: x["ndcg@10"])
    best_peer = max((x for x in rows if x["library"] != "penchant"), key=lambda x: x["ndcg@10"], default=None)
    if best_peer is not None:
        lines.append(f"\nBest penchant model `{best_ours['model']}` {best_ours['ndcg@10']:.4f} vs best peer "
                     f"{best_peer['library']} {best_peer['model']} {best_peer['ndcg@10']:.4f}: "
                     f"{best_ours['ndcg@10'] / best_peer['ndcg@10']:.3f}×")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
