"""Run LensKit and implicit models on penchant's split files and write their top-K lists
(runs in a venv holding LensKit and implicit).

    python lenskit_implicit_runner.py --data DIR --out DIR [--k 50] [--defaults-only]

DIR holds train.tsv, valid.tsv, test.tsv from ``penchant split``. Each model is fitted on train:
first with the library's documented defaults, then with every setting of a grid no smaller than
penchant's largest validation grid (27 settings, DLAE's); the setting with the best NDCG@10 on the
validation split (train items excluded) writes the test lists. Lists exclude what the library
excludes (its training items); penchant's scorer also masks each user's valid items before cutting
at K. ``fit_seconds`` is one fit of the chosen setting; ``tuning_seconds`` is the whole search.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

DISCOUNT = 1.0 / np.log2(np.arange(2, 12))


def ndcg_at_10(lists: dict[str, list[str]], truth: dict[str, set[str]]) -> float:
    """Binary-relevance NDCG@10 averaged over the users of ``truth`` (a missing list scores 0)."""
    values = []
    for user, relevant in truth.items():
        ranked = lists.get(user, [])[:10]
        dcg = sum(DISCOUNT[r] for r, item in enumerate(ranked) if item in relevant)
        values.append(dcg / DISCOUNT[:min(len(relevant), 10)].sum())
    return float(np.mean(values))


def grid(**axes: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def tune(settings: list[dict[str, Any]], fit: Callable[[dict[str, Any]], Any],
         lists: Callable[[Any, list[str], bool], dict[str, list[str]]], truth: dict[str, set[str]]) -> tuple:
    """Fit every setting, keep the one whose validation NDCG@10 is best: (model, setting, score, fit s, search s)."""
    best = (-1.0, None, None, 0.0)
    start = time.perf_counter()
    for setting in settings:
        t0 = time.perf_counter()
        model = fit(setting)
        seconds = time.perf_counter() - t0
        score = ndcg_at_10(lists(model, sorted(truth), False), truth)
        if score > best[0]:
            best = (score, setting, model, seconds)
    score, setting, model, seconds = best
    return model, setting, score, seconds, time.perf_counter() - start


def tune_and_write(out: Path, version: str, name: str, settings: list[dict[str, Any]], defaults_only: bool,
                   fit: Callable, lists: Callable, users: list[str], truth: dict[str, set[str]]) -> None:
    """Defaults first, then the grid unless ``defaults_only``; the best on valid writes its test lists."""
    tried = [{}] + ([] if defaults_only else settings)
    model, setting, score, seconds, search = tune(tried, fit, lists, truth)
    ranked = lists(model, users, True)
    rows = [(u, i, r + 1) for u, items in ranked.items() for r, i in enumerate(items)]
    write(out, version, name, rows, {"fit_seconds": seconds, "tuning_seconds": search, "valid_ndcg@10": score,
                                     "trials": len(tried), "params": setting or "library defaults"})


def write(out: Path, library: str, model: str, rows: list[tuple[str, str, int]], info: dict[str, Any]) -> None:
    stem = out / f"{library.split()[0].lower()}-{model}"
    pd.DataFrame(rows, columns=["user", "item", "rank"]).to_csv(stem.with_suffix(".tsv"), sep="\t", index=False)
    stem.with_suffix(".json").write_text(json.dumps({"library": library, "model": model, **info}))
    print(f"{library} {model}: {info}", flush=True)


def run_implicit(train: pd.DataFrame, valid: pd.DataFrame, users: list[str], truth: dict[str, set[str]],
                 out: Path, k: int, defaults_only: bool, only: set[str] | None) -> None:
    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
    from threadpoolctl import threadpool_limits

    uvocab = {u: i for i, u in enumerate(sorted(set(train.user)))}
    ivocab = sorted(set(train.item))
    ipos = {x: i for i, x in enumerate(ivocab)}

    def matrix(frame: pd.DataFrame) -> sp.csr_matrix:
        f = frame[frame.item.isin(ipos) & frame.user.isin(uvocab)]
        return sp.csr_matrix((np.ones(len(f), np.float32), ([uvocab[u] for u in f.user], [ipos[i] for i in f.item])),
                             shape=(len(uvocab), len(ivocab)))

    x = matrix(train)
    history = {False: x, True: matrix(pd.concat([train, valid]))}

    def lists(model: Any, who: list[str], test: bool) -> dict[str, list[str]]:
        known = [u for u in who if u in uvocab]
        rows = np.array([uvocab[u] for u in known])
        ids, _ = model.recommend(rows, history[test][rows], N=k if test else 10, filter_already_liked_items=True)
        return {u: [ivocab[i] for i in ranked if i >= 0] for u, ranked in zip(known, ids)}

    knn = {"cosine": CosineRecommender, "bm25": BM25Recommender, "tfidf": TFIDFRecommender}
    makers = {
        "ALS": (lambda s: AlternatingLeastSquares(random_state=2026, **s),
                grid(factors=[64, 128, 256], regularization=[0.01, 1.0, 20.0], alpha=[1.0, 4.0, 20.0])),
        "BPR": (lambda s: BayesianPersonalizedRanking(random_state=2026, **s),
                grid(factors=[64, 128, 256], learning_rate=[0.01, 0.05, 0.1], regularization=[1e-4, 1e-3, 1e-2])),
        "ItemKNN": (lambda s: knn[s["kind"]](K=s["K"]) if s else CosineRecommender(),
                    grid(kind=list(knn), K=[10, 20, 50, 100, 200, 400, 800, 1600, 3200])),
    }
    version = f"implicit {implicit.__version__}"
    for name, (make, settings) in makers.items():
        if only is not None and f"implicit-{name}" not in only:
            continue
        def fit(setting: dict[str, Any]) -> Any:
            model = make(setting)
            with threadpool_limits(1, "blas"):
                model.fit(x, show_progress=False)
            return model
        with threadpool_limits(1, "blas"):
            tune_and_write(out, version, name, settings, defaults_only, fit, lists, users, truth)


def run_lenskit(train: pd.DataFrame, users: list[str], truth: dict[str, set[str]], out: Path, k: int,
                defaults_only: bool, only: set[str] | None) -> None:
    import lenskit
    from lenskit.als import ImplicitMFScorer
    from lenskit.basic import PopScorer
    from lenskit.batch import recommend
    from lenskit.data import from_interactions_df
    from lenskit.knn import EASEScorer, ItemKNNScorer
    from lenskit.pipeline import topn_pipeline

    data = from_interactions_df(train[["user", "item"]].rename(columns={"user": "user_id", "item": "item_id"}))
    trained = set(train.user)

    def lists(pipe: Any, who: list[str], test: bool) -> dict[str, list[str]]:
        recs = recommend(pipe, [u for u in who if u in trained], n=k if test else 10)
        return {str(key.user_id): [str(i) for i in items.ids()] for key, items in recs}

    makers = {
        "Pop": (lambda s: PopScorer(), []),
        "ItemKNN": (lambda s: ItemKNNScorer(feedback="implicit", **s),
                    grid(max_nbrs=[5, 10, 20, 50, 100, 200, 400, 800, 1600], min_sim=[1e-6, 0.01, 0.05])),
        "ImplicitMF": (lambda s: ImplicitMFScorer(**s),
                       grid(embedding_size=[50, 100, 200], regularization=[0.01, 0.1, 1.0], weight=[5, 20, 40])),
        "EASE": (lambda s: EASEScorer(**s), grid(regularization=[float(v) for v in np.geomspace(1, 20000, 27)])),
    }
    version = f"LensKit {lenskit.__version__}"
    for name, (make, settings) in makers.items():
        if only is not None and f"lenskit-{name}" not in only:
            continue
        def fit(setting: dict[str, Any]) -> Any:
            pipe = topn_pipeline(make(setting), n=k)
            pipe.train(data)
            return pipe
        tune_and_write(out, version, name, settings, defaults_only, fit, lists, users, truth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--defaults-only", action="store_true", help="skip the validation search")
    ap.add_argument("--models", help="comma-separated subset, e.g. implicit-ALS,lenskit-EASE (default: all)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    read = lambda name: pd.read_csv(args.data / f"{name}.tsv", sep="\t", dtype={"user": str, "item": str})  # noqa: E731
    train, valid, test = read("train"), read("valid"), read("test")
    users = sorted(set(test.user))
    items = set(train.item)
    truth = {u: set(g.item) & items for u, g in valid.groupby("user")}
    truth = {u: s for u, s in truth.items() if s and u in set(train.user)}
    only = set(args.models.split(",")) if args.models else None
    run_implicit(train, valid, users, truth, args.out, args.k, args.defaults_only, only)
    run_lenskit(train, users, truth, args.out, args.k + 20, args.defaults_only, only)  # valid items are masked afterwards


if __name__ == "__main__":
    main()
