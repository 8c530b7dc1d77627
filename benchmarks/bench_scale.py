"""penchant at scale against plain references, in one run: for synthetic logs of 1M, 5M and 20M
interactions shaped like ML-20M (users ∝ size, items ∝ √size: 138k × 27k at 20M; power-law
popularity and activity), each step's wall time and peak memory for penchant and for a minimal
reference doing the same work, their ratio, and how each grows with the log's size.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000,5000000,20000000] \\
        [--steps load,load-inter,load-parquet,reload,split,als,evaluate,e2e] [--repeat N] [--json OUT]

Steps (each measured in a fresh process, so peak memory is the step's own):
* ``load``: ``penchant.data.load`` of the CSV log and its user × item CSR, against
  ``polars.read_csv`` with categorical ids plus ``scipy.sparse.csr_matrix`` of the codes.
* ``load-inter``: the same log written as a RecBole atomic file (``synth-N.inter``, header
  ``user_id:token  item_id:token  rating:float  timestamp:float``), ``penchant.data.load`` of it against
  ``polars.read_csv`` of the same file with the header's types (token: categorical, float: Float64)
  plus the CSR.
* ``load-parquet``: the same log as Parquet, ``penchant.data.load`` against ``polars.read_parquet``
  with the ids cast to categorical plus the CSR.
* ``reload``: ``penchant.data.load`` of a log parsed once and written by ``Dataset.save``
  (arrays memory-mapped), against ``numpy.load`` of the same arrays, mapped.
* ``split``: ``random_holdout`` 80/10/10 per user of the loaded Dataset, against a numpy
  per-user shuffle of the same arrays.
* ``als``: ``ALS().fit`` (64 factors, 15 iterations) on the training part, against
  ``implicit``'s ``AlternatingLeastSquares`` with the same settings called directly on the same CSR.
* ``evaluate``: full-ranking evaluation (every test user × every item, train and valid masked,
  K = 10 and 20, with penchant's beyond-accuracy metrics) of one fitted ALS model, against a
  minimal chunked reference in this file (numpy matmul, ``torch.topk``, NDCG and recall); the
  metric values of both are compared (max absolute difference printed).
* ``ray``: the same evaluation on the Ray backend (a Ray instance started in the step's process
  with 2 CPUs, before the clock starts; the tasks' worker processes start inside the timing),
  against the local backend; the metrics must be equal. Memory is the driver's only.
* ``--models 'pop;itemknn;fsslim;ease:lam=400'``: each model fitted on the training part and
  evaluated like ``evaluate`` (no reference): its fit time, fit + evaluation time, peak memory and
  NDCG@10, or its one-line memory refusal and how long that took.
* ``e2e``: ``penchant evaluate --model als`` on the split files (in process: read, fit, evaluate),
  against the reference pipeline: polars reads, ``implicit`` fit, the reference evaluation.

The load steps also print each side's CPU seconds (the process's, all threads, of the fastest
run) and their ratio, which other work on a shared machine moves less than the wall time.
Peak memory is the process's peak resident set (VmHWM) minus its resident set after imports (for --models: after reading the split, so it is an upper bound that includes the reading's own peak).
With ``--repeat N`` the two sides run alternately N times each and the fastest run of each is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

KS = (10, 20)
ALS_SETTINGS = {"factors": 64, "regularization": 20.0, "alpha": 2.0, "iterations": 15, "seed": 0}


def shape(n: int) -> tuple[int, int]:
    """(users, items) of an ML-20M-like log of ``n`` interactions."""
    return max(100, round(138_493 * n / 20_000_263)), max(100, round(26_744 * (n / 20_000_263) ** 0.5))


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now; VmHWM: its peak), MiB.
    VmHWM, unlike getrusage's ru_maxrss, starts afresh at exec: a child does not inherit the
    peak of the parent that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib() -> float:
    return status_mib("VmRSS")


def implicit_als(csr):
    """``implicit`` called directly: the ALS reference."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    s = ALS_SETTINGS
    with threadpool_limits(1, "blas"):  # as implicit advises: it parallelises itself
        engine = AlternatingLeastSquares(factors=s["factors"], regularization=s["regularization"], alpha=s["alpha"],
                                         iterations=s["iterations"], random_state=s["seed"], calculate_training_loss=False)
        engine.fit(csr, show_progress=False)
    return engine.user_factors, engine.item_factors


def reference_evaluate(user_factors, item_factors, train, valid, test) -> dict[str, float]:
    """Minimal chunked full ranking: mask train ∪ valid, keep test items some training user has,
    score users with both, top-20 by ``torch.topk``, mean NDCG and recall at 10 and 20.
    ``train``/``valid``/``test`` are CSR (n_users, n_items) on one vocabulary."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    seen = ((train + valid) > 0).tocsr()
    rel = (test > 0).astype(np.int8) - (test > 0).multiply(seen)
    rel = sp.csr_matrix(rel @ sp.diags((np.diff(train.tocsc().indptr) > 0).astype(np.int8)))
    rel.eliminate_zeros()
    users = np.flatnonzero((np.diff(rel.indptr) > 0) & (np.diff(train.indptr) > 0))
    n_items, kmax = item_factors.shape[0], max(KS)
    step = max(1, (64 << 20) // (n_items * 4))
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    sums = {f"{m}@{k}": 0.0 for m in ("ndcg", "recall") for k in KS}
    for s in range(0, len(users), step):
        chunk = users[s:s + step]
        scores = user_factors[chunk] @ item_factors.T
        ex = seen[chunk]
        scores[np.repeat(np.arange(len(chunk)), np.diff(ex.indptr)), ex.indices] = -np.inf
        top = torch.topk(torch.from_numpy(scores), kmax, dim=1).indices.numpy()
        r = rel[chunk]
        hits = np.take_along_axis(r.toarray(), top, axis=1) > 0
        n_rel = np.diff(r.indptr)
        for k in KS:
            ideal = np.cumsum(discount[:k])[np.minimum(n_rel, k) - 1]
            sums[f"ndcg@{k}"] += float(((hits[:, :k] * discount[:k]).sum(1) / ideal).sum())
            sums[f"recall@{k}"] += float((hits[:, :k].sum(1) / n_rel).sum())
    return {m: v / len(users) for m, v in sums.items()}


def reference_read(paths):
    """The three split files read by polars onto one categorical vocabulary, as CSRs."""
    import numpy as np
    import polars as pl
    import scipy.sparse as sp

    with pl.StringCache():
        frames = [pl.read_csv(p, schema_overrides={"user": pl.Categorical, "item": pl.Categorical,
                                                   "rating": pl.Float32, "timestamp": pl.Float64}) for p in paths]
        users = pl.concat([f["user"] for f in frames]).to_physical().to_numpy()
        items = pl.concat([f["item"] for f in frames]).to_physical().to_numpy()
    shape_ = (int(users.max()) + 1, int(items.max()) + 1)
    out, start = [], 0
    for f in frames:
        stop = start + len(f)
        out.append(sp.csr_matrix((np.ones(stop - start, np.float32), (users[start:stop], items[start:stop])), shape=shape_))
        start = stop
    return out


#: the file each load step reads, beside the CSV log (written by ``prepare``)
LAYOUTS = {"load": ".csv", "load-inter": ".inter", "load-parquet": ".parquet"}


def reference_load(path: Path) -> int:
    """polars reads ``path`` with typed columns (ids categorical), then the user × item CSR of the
    codes; returns its nnz. ``.inter`` columns take the types their ``name:type`` header gives."""
    import polars as pl
    import scipy.sparse as sp

    if path.suffix == ".parquet":
        frame = pl.read_parquet(path).with_columns(pl.col("user", "item").cast(pl.Categorical))
    elif path.suffix == ".inter":
        header = path.open().readline().rstrip("\n").split("\t")
        dtypes = {"token": pl.Categorical, "float": pl.Float64}
        frame = pl.read_csv(path, separator="\t", quote_char=None,
                            schema_overrides={h: dtypes[h.rpartition(":")[2]] for h in header})
        frame = frame.rename({h: h.rpartition(":")[0].removesuffix("_id") for h in header})
    else:
        frame = pl.read_csv(path, schema_overrides={"user": pl.Categorical, "item": pl.Categorical,
                                                    "rating": pl.Float32, "timestamp": pl.Float64})
    u = frame["user"].to_physical().to_numpy()
    i = frame["item"].to_physical().to_numpy()
    return int(sp.csr_matrix((frame["rating"].to_numpy(), (u, i))).nnz)


def child(step: str, side: str, path: Path) -> dict:
    """Run one step in this process; its seconds and peak MiB above the post-import baseline."""
    import numpy as np
    import polars  # noqa: F401  (imported before the clock starts: the references' imports are not their time)
    import scipy.sparse  # noqa: F401

    from penchant.data import load, load_triple
    from penchant.data.split import random_holdout
    from penchant.eval import evaluate
    from penchant.models.als import ALS
    from penchant.models.artefact import load as load_model

    parts = [path.parent / f"split-{path.stem}" / f"{p}.csv" for p in ("train", "valid", "test")]
    out: dict = {}
    base = rss_mib()
    start = time.perf_counter()
    if step in LAYOUTS:  # also the process's CPU seconds (all threads): less moved by other work on the machine
        cpu = time.process_time()
        layout = path.with_suffix(LAYOUTS[step])
        out["size"] = int(load(layout).csr.nnz) if side == "penchant" else reference_load(layout)
        out["cpu_seconds"] = time.process_time() - cpu
    elif step == "reload":  # a log parsed once and saved by Dataset.save (by the parent)
        saved = path.parent / f"saved-{path.stem}"
        if side == "penchant":
            ds = load(saved)
            out["size"] = ds.n_interactions
        else:
            users, items = (np.load(saved / f"{k}.npy", mmap_mode="r") for k in ("users", "items"))
            out["ids"] = sum(len(np.load(saved / f"{k}.npy").astype(object)) for k in ("user_ids", "item_ids"))
            out["size"] = len(users)
    elif step == "split":  # load first (not timed), then the split alone
        ds = load(path)
        base, start = rss_mib(), time.perf_counter()
        if side == "penchant":
            out["size"] = random_holdout(ds, (0.8, 0.1, 0.1), seed=0).train.n_interactions
        else:
            rng = np.random.default_rng(0)
            order = np.lexsort((rng.random(len(ds.users)), ds.users))
            counts = np.bincount(ds.users, minlength=ds.n_users)
            rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
            out["size"] = int(((rank / np.repeat(np.maximum(counts, 1), counts)) < 0.8).sum())
    elif step == "als":  # the training part read first (not timed): the same CSR for both
        train, _, _ = load_triple(*parts)
        csr = train.csr
        base, start = rss_mib(), time.perf_counter()
        if side == "penchant":
            ALS(**ALS_SETTINGS).fit(train)
        else:
            implicit_als(csr)
    elif step == "evaluate":  # one fitted model (saved by the parent) and the split, read first
        train, valid, test = load_triple(*parts)
        model = load_model(path.parent / f"als-{path.stem}.penchant")
        base, start = rss_mib(), time.perf_counter()
        if side == "penchant":
            result = evaluate(model, train, test, ks=list(KS), also_exclude=(valid,))
            metrics = result.metrics()
            out["metrics"] = {m: metrics[m] for m in (f"{n}@{k}" for n in ("ndcg", "recall") for k in KS)}
        else:
            out["metrics"] = reference_evaluate(model.user_factors_, model.item_factors_, train.csr, valid.csr, test.csr)
    elif step == "ray":  # `evaluate` on the Ray backend against the local backend, same model and split
        train, valid, test = load_triple(*parts)
        model = load_model(path.parent / f"als-{path.stem}.penchant")
        backend = "local"
        if side == "penchant":
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            backend = "ray"
        base, start = rss_mib(), time.perf_counter()
        metrics = evaluate(model, train, test, ks=list(KS), also_exclude=(valid,), backend=backend).metrics()
        out["metrics"] = {m: metrics[m] for m in (f"{n}@{k}" for n in ("ndcg", "recall") for k in KS)}
    elif step == "e2e" and side == "penchant":
        from penchant.cli.main import app

        result_path = path.parent / f"e2e-{path.stem}.json"
        app(["evaluate", "--train", str(parts[0]), "--valid", str(parts[1]), "--test", str(parts[2]),
             "--model", "als", "--json", str(result_path)], standalone_mode=False)
        metrics = json.loads(result_path.read_text())["metrics"]
        out["metrics"] = {m: metrics[m] for m in (f"{n}@{k}" for n in ("ndcg", "recall") for k in KS)}
    elif step == "e2e":
        train, valid, test = reference_read(parts)
        user_factors, item_factors = implicit_als(train)
        out["metrics"] = reference_evaluate(user_factors, item_factors, train, valid, test)
    elif step == "model":  # ``side`` is a registry name (with key=value params after ':')
        from penchant.errors import DataError, MemoryNeedError
        from penchant.experiment.run import parse_model_spec
        from penchant.models import create

        train, valid, test = load_triple(*parts)
        name, params = parse_model_spec(side)
        model = create(name, **params)  # the registry's imports are not the model's time
        base, start = rss_mib(), time.perf_counter()
        try:
            model.fit(train)
        except (MemoryNeedError, DataError) as refused:  # too big for memory, or data it cannot use
            out["refused"] = str(refused)
        else:
            out["fit_seconds"] = time.perf_counter() - start
            result = evaluate(model, train, test, ks=list(KS), also_exclude=(valid,))
            out["ndcg@10"] = result.metrics()["ndcg@10"]
    else:
        raise SystemExit(f"unknown step {step!r}")
    out["seconds"] = time.perf_counter() - start
    out["peak_mib"] = status_mib("VmHWM") - base
    return out


def measure(step: str, side: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", step, side, str(path)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{step} ({side}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(n: int, work: Path, steps: list[str]) -> Path:
    """The synthetic log of ``n`` interactions, its 80/10/10 split files and (for ``evaluate``) a
    fitted ALS model, made once under ``work``."""
    from penchant.data import load, load_triple
    from penchant.data.split import random_holdout
    from penchant.data.synthetic import power_law_log
    from penchant.data.write import write_log
    from penchant.models.als import ALS

    users, items = shape(n)
    path = work / f"synth-{n}.csv"
    wanted = [path] + [path.with_suffix(LAYOUTS[s]) for s in steps if s in LAYOUTS and s != "load"]
    log = None
    for target in (p for p in wanted if not p.exists()):
        t = time.perf_counter()
        log = log or power_law_log(users, items, n, seed=0)
        write_log(log, target)
        print(f"# wrote {target} ({users:,} users, {items:,} items) in {time.perf_counter() - t:.1f} s", flush=True)
    saved = work / f"saved-{path.stem}"
    if "reload" in steps and not (saved / "meta.json").exists():
        load(path).save(saved)
        print(f"# parsed {path.name} once and saved it to {saved}", flush=True)
    folder = work / f"split-{path.stem}"
    if {"als", "evaluate", "ray", "e2e"} & set(steps) and not (folder / "test.csv").exists():
        split = random_holdout(load(path), (0.8, 0.1, 0.1), seed=0)
        folder.mkdir(exist_ok=True)
        for name, part in (("train", split.train), ("valid", split.valid), ("test", split.test)):
            write_log(part, folder / f"{name}.csv")
        print(f"# wrote the 80/10/10 split of {path.name} to {folder}", flush=True)
    model_path = work / f"als-{path.stem}.penchant"
    if {"evaluate", "ray"} & set(steps) and not model_path.exists():
        train, _, _ = load_triple(*(folder / f"{p}.csv" for p in ("train", "valid", "test")))
        ALS(**ALS_SETTINGS).fit(train).save(model_path)
        print(f"# fitted and saved {model_path}", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000")
    parser.add_argument("--steps", default="load,reload,split,als,evaluate,e2e")
    parser.add_argument("--work", type=Path, default=Path("/tmp/penchant-scale"))
    parser.add_argument("--json", type=Path, help="Also write every measurement here.")
    parser.add_argument("--models", default="", help="Also fit and evaluate these registry models (NAME or "
                        "NAME:key=value,..., separated by ';') on each size's split: time, memory, NDCG@10 or the refusal.")
    parser.add_argument("--repeat", type=int, default=1, help="Measure each side this many times, alternating; keep the fastest.")
    parser.add_argument("--train", default="", help="Also time one training epoch of these torch learners (';'-separated "
                        "specs, e.g. 'bpr;sasrec:loss=gbce') at each size: benchmarks/train_speed.py, its --fraction below.")
    parser.add_argument("--train-fraction", type=float, default=0.05)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], Path(args.child[2]))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    steps = [s for s in args.steps.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    print(f"{'size':>11} {'step':<12} {'penchant s':>10} {'ref s':>8} {'ratio':>6} {'penchant MiB':>12} {'ref MiB':>8} "
          f"{'ratio':>6}  metrics", flush=True)
    for n in sizes:
        path = prepare(n, args.work, steps)
        for step in steps:
            runs = [(measure(step, "penchant", path), measure(step, "reference", path)) for _ in range(args.repeat)]
            ours, ref = (min((r[side] for r in runs), key=lambda m: m["seconds"]) for side in (0, 1))
            note = ""
            if "metrics" in ours:
                diff = max(abs(ours["metrics"][m] - ref["metrics"][m]) for m in ref["metrics"])
                note = f"ndcg@10 {ours['metrics']['ndcg@10']:.6f} vs {ref['metrics']['ndcg@10']:.6f}"
                if step in ("evaluate", "ray"):  # the same factors on both sides: the metrics must agree
                    note += f", max |Δ| {diff:.1e}"
            if "cpu_seconds" in ours:
                note = (f"CPU s {ours['cpu_seconds']:.2f} vs {ref['cpu_seconds']:.2f}, "
                        f"ratio {ours['cpu_seconds'] / ref['cpu_seconds']:.2f}")
            rows.append({"size": n, "step": step, "penchant": ours, "reference": ref})
            print(f"{n:>11,} {step:<12} {ours['seconds']:>10.2f} {ref['seconds']:>8.2f} {ours['seconds'] / ref['seconds']:>6.2f} "
                  f"{ours['peak_mib']:>12.0f} {ref['peak_mib']:>8.0f} {ours['peak_mib'] / max(ref['peak_mib'], 1):>6.2f}  {note}",
                  flush=True)
    if args.models:
        print(f"\n{'size':>11} {'model':<22} {'fit s':>8} {'fit+eval s':>10} {'peak MiB':>9}  ndcg@10 / refusal", flush=True)
    for n in sizes if args.models else ():
        path = prepare(n, args.work, ["e2e"])
        for spec in args.models.split(";"):
            got = measure("model", spec, path)
            rows.append({"size": n, "model": spec, **got})
            if "refused" in got:
                print(f"{n:>11,} {spec:<22} {'—':>8} {got['seconds']:>10.3f} {got['peak_mib']:>9.0f}  refused: {got['refused']}", flush=True)
            else:
                print(f"{n:>11,} {spec:<22} {got['fit_seconds']:>8.1f} {got['seconds']:>10.1f} {got['peak_mib']:>9.0f}  "
                      f"{got['ndcg@10']:.4f}", flush=True)
    for n in sizes if args.train else ():  # epoch time, examples/s, share of the machine's bound; BPR against implicit
        from train_speed import measure as train_epochs

        rows += [{"size": n, "train": r} for r in train_epochs(args.train.split(";"), n, args.train_fraction)]
    if len(sizes) > 1 and steps:
        lo, hi = min(sizes), max(sizes)
        print(f"\ngrowth from {lo:,} to {hi:,} interactions: seconds ∝ n^b (b from the two ends)")
        for step in steps:
            a = next(r for r in rows if r["size"] == lo and r["step"] == step)
            b = next(r for r in rows if r["size"] == hi and r["step"] == step)
            exps = [math.log(b[s]["seconds"] / a[s]["seconds"]) / math.log(hi / lo) for s in ("penchant", "reference")]
            print(f"  {step:<12} penchant b = {exps[0]:.2f}   reference b = {exps[1]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
