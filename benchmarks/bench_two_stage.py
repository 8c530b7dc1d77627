"""Two stages on ML-100K: the retriever alone against the retriever's top candidates re-ranked by a
CTR model (``rerank``), and the service's tail latency with the ranker on against retrieval alone.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_two_stage.py [--retriever ease]
        [--rankers lr,deepfm] [--candidates 100] [--seconds 10] [--no-serve]

Quality: leave-last-out by time (one test and one validation item per user), full-ranking NDCG@10
and Recall@10 on the test items (validation items masked). The retriever is fitted once and saved;
each ``rerank`` model loads that artefact (``retriever=PATH``), so the first stage is the same in
every row. The rankers learn either from the training part's rated rows (labels ``rating``: rating
>= 4, the RecBole convention) or from its observed rows against the retriever's top unseen candidates
(labels ``observed``), with the log's user and item attributes, early stopping on a random 10% of
the rows. One seed.

Latency: the retriever's artefact and the deepfm two-stage artefact imported into two stores
(``penchant versions import --activate``), each served by ``penchant serve`` (2 workers, the answer
cache off so that every request scores), loaded by 100 keep-alive connections asking
GET /v1/users/{random user}/recommendations?k=10 (the client of ``bench_serve.py``); p50/p99 of
each, and their ratio (the issue's bar: the ranker's p99 within 2x of retrieval alone).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_serve import KEY, free_port, measure, wait_up

from penchant.data import load_movielens
from penchant.data.split import leave_last_out
from penchant.eval.evaluate import build_target, evaluate
from penchant.models.registry import create


def quality(args: argparse.Namespace, folder: Path) -> dict[str, Path]:
    ds = load_movielens("ml-100k")
    split = leave_last_out(ds, n_test=1, n_valid=1)
    assert split.valid is not None
    target = build_target(split.train, split.test, (split.valid,))
    start = time.perf_counter()
    retriever = create(args.retriever).fit(split.train)
    took = time.perf_counter() - start
    paths = {"retriever": retriever.save(folder / f"{args.retriever}.npz")}
    print(f"ML-100K leave-last-out: {split.train.n_interactions:,} training events, {len(target.users):,} test users; "
          f"{args.candidates} candidates per user; full ranking")
    print("| model | NDCG@10 | Recall@10 | fit s | ranker stopped at epoch |")
    print("|---|---|---|---|---|")
    rows = [(args.retriever, retriever, took, "")]
    for spec in args.rankers.split(","):
        ranker, _, labels = spec.partition(":")
        start = time.perf_counter()
        model = create("rerank", retriever=str(paths["retriever"]), ranker=ranker, candidates=args.candidates,
                       labels=labels or "auto").fit(split.train)
        rows.append((f"{args.retriever} + {ranker} (labels: {labels or 'rating'})", model, time.perf_counter() - start,
                     str(getattr(model.ranker_, "best_epoch_", "") or "")))
        paths[spec] = model.save(folder / f"rerank-{ranker}-{labels or 'rating'}.npz")
    for label, model, seconds, epoch in rows:
        m = evaluate(model, split.train, split.test, ks=(10,), target=target, also_exclude=(split.valid,),
                     beyond_accuracy=False, diversity_attribute=None).metrics()
        print(f"| {label} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {seconds:.1f} | {epoch} |")
    return paths


def serve_p99(artefact: Path, folder: Path, seconds: float, concurrency: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) of one artefact served by `penchant serve`."""
    data = folder / f"store-{artefact.stem}"
    env = dict(os.environ, PENCHANT_ADMIN_KEY=KEY, PENCHANT_RATE_LIMIT_PER_MINUTE="1000000000")
    subprocess.run([sys.executable, "-m", "penchant", "versions", "import", str(artefact), "--data-dir", str(data),
                    "--activate"], check=True, env=env, capture_output=True)
    config = folder / "serve.toml"
    config.write_text("[service]\nanswer_cache_entries = 0\n")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--port", str(port), "--data-dir", str(data),
                               "--workers", "2", "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port)
        paths = [f"/v1/users/{u}/recommendations?k=10" for u in range(1, 944)]
        rate, p50, _, p99, errors = measure(port, paths, [concurrency], seconds)[concurrency]
        return rate, p50, p99, errors
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retriever", default="ease")
    ap.add_argument("--rankers", default="lr,deepfm,lr:observed,deepfm:observed",
                    help="ctr models, each optionally :observed (labels: observed rows against the retriever's negatives)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--no-serve", action="store_true", help="quality only")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="penchant-two-stage-"))
    paths = quality(args, folder)
    if args.no_serve:
        return
    ranker = "deepfm" if "deepfm" in paths else args.rankers.split(",")[-1]
    print(f"\nservice, {args.concurrency} concurrent connections, answer cache off, 2 workers, {args.seconds:g} s each "
          f"(client and server on this machine, {os.cpu_count()} cores)")
    print("| served | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    got = {}
    for label, key in ((f"{args.retriever} alone", "retriever"), (f"{args.retriever} + {ranker}", ranker)):
        got[key] = serve_p99(paths[key], folder, args.seconds, args.concurrency)
        rate, p50, p99, errors = got[key]
        print(f"| {label} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {errors} |")
    print(f"p99 with the ranker / retrieval alone: {got[ranker][2] / got['retriever'][2]:.2f}")


if __name__ == "__main__":
    main()
