"""Run LensKit and implicit models on penchant's split files and write their top-K lists
(runs in a venv holding LensKit and implicit).

    python lenskit_implicit_runner.py --data DIR --out DIR [--k 50]

DIR holds train.tsv, valid.tsv, test.tsv from ``penchant split``. Each model is fitted on train
with the library's documented defaults. Lists exclude what the library excludes (its training
items); penchant's scorer also masks each user's valid items before cutting at K.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


def write(out: Path, library: str, model: str, fit_seconds: float, rows: list[tuple[str, str, int]]) -> None:
    stem = out / f"{library.split()[0].lower()}-{model}"
    pd.DataFrame(rows, columns=["user", "item", "rank"]).to_csv(stem.with_suffix(".tsv"), sep="\t", index=False)
    stem.with_suffix(".json").write_text(json.dumps({"library": library, "model": model, "fit_seconds": fit_seconds,
                                                     "params": "library defaults"}))
    print(f"{library} {model}: fit {fit_seconds:.1f} s", flush=True)


def run_implicit(train: pd.DataFrame, seen: pd.DataFrame, users: list[str], out: Path, k: int) -> None:
    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender
    from threadpoolctl import threadpool_limits

    uvocab = {u: i for i, u in enumerate(sorted(set(train.user)))}
    ivocab = sorted(set(train.item))
    ipos = {x: i for i, x in enumerate(ivocab)}
    x = sp.csr_matrix((np.ones(len(train), np.float32), ([uvocab[u] for u in train.user], [ipos[i] for i in train.item])),
                      shape=(len(uvocab), len(ivocab)))
    s = seen[seen.item.isin(ipos) & seen.user.isin(uvocab)]
    history = sp.csr_matrix((np.ones(len(s), np.float32), ([uvocab[u] for u in s.user], [ipos[i] for i in s.item])),
                            shape=x.shape)
    known = [u for u in users if u in uvocab]
    rows_idx = np.array([uvocab[u] for u in known])
    version = f"implicit {implicit.__version__}"
    for name, make in (("ALS", lambda: AlternatingLeastSquares(random_state=2026)),
                       ("BPR", lambda: BayesianPersonalizedRanking(random_state=2026)),
                       ("ItemKNN", lambda: CosineRecommender())):
        with threadpool_limits(1, "blas"):
            model = make()
            start = time.perf_counter()
            model.fit(x, show_progress=False)
            seconds = time.perf_counter() - start
            ids, _ = model.recommend(rows_idx, history[rows_idx], N=k, filter_already_liked_items=True)
        rows = [(u, ivocab[i], r + 1) for u, ranked in zip(known, ids) for r, i in enumerate(ranked) if i >= 0]
        write(out, version, name, seconds, rows)


def run_lenskit(train: pd.DataFrame, users: list[str], out: Path, k: int) -> None:
    import lenskit
    from lenskit.als import ImplicitMFScorer
    from lenskit.basic import PopScorer
    from lenskit.batch import recommend
    from lenskit.data import from_interactions_df
    from lenskit.knn import EASEScorer, ItemKNNScorer
    from lenskit.pipeline import topn_pipeline

    data = from_interactions_df(train[["user", "item"]].rename(columns={"user": "user_id", "item": "item_id"}))
    known = [u for u in users if u in set(train.user)]
    version = f"LensKit {lenskit.__version__}"
    for name, scorer in (("Pop", PopScorer()), ("ItemKNN", ItemKNNScorer(feedback="implicit")),
                         ("ImplicitMF", ImplicitMFScorer()), ("EASE", EASEScorer())):
        pipe = topn_pipeline(scorer, n=k)
        start = time.perf_counter()
        pipe.train(data)
        seconds = time.perf_counter() - start
        recs = recommend(pipe, known, n=k)
        rows = []
        for key, items in recs:
            ids = items.ids()
            rows.extend((str(key.user_id), str(i), r + 1) for r, i in enumerate(ids))
        write(out, version, name, seconds, rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k", type=int, default=50)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    read = lambda name: pd.read_csv(args.data / f"{name}.tsv", sep="\t", dtype={"user": str, "item": str})  # noqa: E731
    train, valid, test = read("train"), read("valid"), read("test")
    users = sorted(set(test.user))
    run_implicit(train, pd.concat([train, valid]), users, args.out, args.k)
    run_lenskit(train, users, args.out, args.k + 20)  # longer lists: valid items are masked afterwards


if __name__ == "__main__":
    main()
