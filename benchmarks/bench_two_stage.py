"""Two stages on ML-100K: the retriever alone against the retriever's top candidates re-ranked by a
CTR model (``rerank``), and the service's tail latency with the ranker on against retrieval alone.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_two_stage.py [--retriever ease]
        [--rankers lr,ctr-fm,deepfm,dcnv2,awmoe,lambdarank] [--candidates 100] [--seconds 10]
        [--serve-ranker deepfm] [--no-serve] [--no-quality]

Quality: leave-last-out by time (one test and, unless ``--valid 0``, one validation item per user),
full-ranking NDCG@10 and Recall@10 on the test items (validation items masked). The retriever is fitted once and saved;
each ``rerank`` model loads that artefact (``retriever=PATH``), so the first stage is the same in
every row. A ranker spec is ``name[:labels]``: labels ``auto`` (the default: ``later``, rows built
as lists are scored — a copy of the retriever fitted without each user's last 3 training events,
its top candidates labelled by whether they are among those events), ``rating`` (rated rows,
rating >= 4) or ``observed`` (observed rows against the retriever's top unseen candidates). Every
ranker reads the log's user and item attributes and the retriever's evidence (score, rank among
the candidates, history length, popularity), with its own default parameters. Each rerank row
is fitted with ``--seeds`` (the split of the ranker's rows and the ranker's seed; the retriever is
the same), each seed's NDCG@10 shown and their mean.

Latency: the retriever's artefact and a two-stage artefact (``--serve-ranker``, default deepfm)
imported into two stores (``penchant versions import --activate``), each served by ``penchant
serve`` (2 workers, the answer cache off so that every request scores), both up at once and loaded
in alternating rounds (``--rounds``) by 100 keep-alive connections asking
GET /v1/users/{random user}/recommendations?k=10 (the client of ``bench_serve.py``); p50/p99 of
each (median of the rounds) in the same run, their ratio (the issue's bar: the ranker's p99 within
2x of retrieval alone), and the in-process milliseconds of one answer (the compute alone).
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

import numpy as np
from bench_serve import KEY, free_port, measure, wait_up

from penchant.data import load_movielens
from penchant.data.split import leave_last_out
from penchant.eval.evaluate import build_target, evaluate
from penchant.models.registry import create


def quality(args: argparse.Namespace, folder: Path, split) -> dict[str, Path]:
    target = build_target(split.train, split.test, () if split.valid is None else (split.valid,))
    start = time.perf_counter()
    retriever = create(args.retriever).fit(split.train)
    took = time.perf_counter() - start
    paths = {"retriever": retriever.save(folder / f"{args.retriever}.npz")}
    print(f"ML-100K leave-last-out: {split.train.n_interactions:,} training events, {len(target.users):,} test users; "
          f"{args.candidates} candidates per user; full ranking")
    print("| model | labels | NDCG@10 (mean over seeds) | per seed | Recall@10 (mean) | fit s (mean) | ranker rows (positive) "
          "| held-out users' lists at fit: ranker / retriever order (mean) |")
    print("|---|---|---|---|---|---|---|---|")
    m = metrics(retriever, split, target)
    print(f"| {args.retriever} | — | {m['ndcg@10']:.4f} | — | {m['recall@10']:.4f} | {took:.1f} | — | — |", flush=True)
    seeds = [int(x) for x in args.seeds.split(",")]
    for spec in filter(None, args.rankers.split(",")):
        ranker, _, labels = spec.partition(":")
        got = []
        for seed in seeds:
            start = time.perf_counter()
            model = create("rerank", retriever=str(paths["retriever"]), ranker=ranker, candidates=args.candidates,
                           labels=labels or "auto", seed=seed).fit(split.train)
            got.append((metrics(model, split, target), time.perf_counter() - start, model.check_))
            if seed == seeds[0]:
                paths[spec] = model.save(folder / f"rerank-{ranker}-{model.label_rule_}.npz")
        ndcg = [g[0]["ndcg@10"] for g in got]
        n, positive = model.rows_
        print(f"| {args.retriever} + {ranker} | {model.label_rule_} | {np.mean(ndcg):.4f} | "
              f"{' / '.join(f'{x:.4f}' for x in ndcg)} | {np.mean([g[0]['recall@10'] for g in got]):.4f} | "
              f"{np.mean([g[1] for g in got]):.1f} | {n:,} ({positive:,}) | {held(got)} |", flush=True)
    return paths


def held(got: list) -> str:
    """The fit's own check (TwoStage.check_), averaged over seeds: NDCG@10 of the held-out users'
    later items in the ranker's order / in the retriever's."""
    checks = [g[2] for g in got if g[2] is not None]
    return f"{np.mean([c[0] for c in checks]):.4f} / {np.mean([c[1] for c in checks]):.4f}" if checks else "—"


def metrics(model, split, target) -> dict[str, float]:
    return evaluate(model, split.train, split.test, ks=(10,), target=target,
                    also_exclude=() if split.valid is None else (split.valid,),
                    beyond_accuracy=False, diversity_attribute=None).metrics()


def start_server(artefact: Path, folder: Path) -> tuple[subprocess.Popen, int]:
    """`penchant serve` (2 workers, answer cache off) of a store holding ``artefact`` as its active version."""
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
    wait_up(port)
    return server, port


def in_process_ms(artefact: Path, users: int = 300) -> float:
    """Median milliseconds of one request's answer (AnswerCore.rank of one known user, k=10) in this
    process: the compute a request costs, without the queueing that dominates p99 under load."""
    from penchant.experiment.answers import AnswerCore
    from penchant.models.artefact import load

    core = AnswerCore(load(artefact))
    ids = [str(u) for u in core.model.user_ids_[:users]]
    took = []
    for u in ids:
        start = time.perf_counter()
        core.rank([u], 10)
        took.append(time.perf_counter() - start)
    return float(np.median(took[20:]) * 1e3)


def latency(args: argparse.Namespace, paths: dict[str, Path], folder: Path) -> None:
    """Both servers up at once (the idle one costs nothing), measured in alternating rounds so that a
    change in the machine's load falls on both; per configuration the median of the rounds."""
    configs = (("retriever", f"{args.retriever} alone"), (args.serve_ranker, f"{args.retriever} + {args.serve_ranker}"))
    print(f"\nservice, {args.concurrency} concurrent connections, answer cache off, 2 workers per server, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s each (client and servers on this machine, "
          f"{os.cpu_count()} cores)")
    servers = {key: start_server(paths[key], folder) for key, _ in configs}
    got: dict[str, list[tuple[float, float, float, int]]] = {key: [] for key, _ in configs}
    request_paths = [f"/v1/users/{u}/recommendations?k=10" for u in range(1, 944)]
    try:
        for _ in range(args.rounds):
            for key, _ in configs:
                rate, p50, _, p99, errors = measure(servers[key][1], request_paths, [args.concurrency],
                                                    args.seconds)[args.concurrency]
                got[key].append((rate, p50, p99, errors))
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(60)
    print("| served | requests/s | p50 ms | p99 ms (median of rounds) | p99 per round | errors | in-process ms per request |")
    print("|---|---|---|---|---|---|---|")
    p99 = {}
    for key, label in configs:
        rows = np.array(got[key])
        p99[key] = float(np.median(rows[:, 2]))
        print(f"| {label} | {np.median(rows[:, 0]):,.0f} | {np.median(rows[:, 1]):.1f} | {p99[key]:.1f} | "
              f"{' / '.join(f'{x:.0f}' for x in rows[:, 2])} | {int(rows[:, 3].sum())} | {in_process_ms(paths[key]):.2f} |",
              flush=True)
    ratios = [b[2] / a[2] for a, b in zip(got["retriever"], got[args.serve_ranker])]
    print(f"p99 with the ranker / retrieval alone: {p99[args.serve_ranker] / p99['retriever']:.2f} "
          f"(per round: {' / '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retriever", default="ease")
    ap.add_argument("--rankers", default="lr,ctr-fm,deepfm,dcnv2,awmoe,lambdarank",
                    help="ctr models, each optionally :labels (auto, later, rating, observed)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2", help="rerank seeds (the ranker's row split and its own seed)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--valid", type=int, default=1, choices=(0, 1),
                    help="validation items per user held out before the test item (0: the retriever sees all but it)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds per configuration")
    ap.add_argument("--serve-ranker", default="deepfm", help="the ranker of the served two-stage artefact")
    ap.add_argument("--no-serve", action="store_true", help="quality only")
    ap.add_argument("--no-quality", action="store_true", help="only the retriever and the served ranker (quality rows of those two, then latency)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="penchant-two-stage-"))
    split = leave_last_out(load_movielens("ml-100k"), n_test=1, n_valid=args.valid)
    if args.no_quality:
        args.rankers = args.serve_ranker
    paths = quality(args, folder, split)
    if args.no_serve:
        return
    if args.serve_ranker not in paths:
        raise SystemExit(f"--serve-ranker {args.serve_ranker} is not among --rankers {args.rankers}")
    latency(args, paths, folder)


if __name__ == "__main__":
    main()
