"""One training epoch of each torch learner: seconds, examples per second, and the share of this
machine's bound that the epoch reaches, all measured in one run (and BPR against ``implicit``'s).

    .venv/bin/python benchmarks/train_speed.py [--size 20000000] [--fraction 0.05] \\
        [--models 'bpr;sasrec;sasrec:loss=sampled;sasrec:loss=gbce;gru4rec;...'] [--json OUT]

The log is shaped like ML-20M at ``--size`` interactions (``bench_scale.shape``: 138k users × 27k
items at 20M). With ``--fraction f`` < 1 each learner trains on a log with the same catalogue and
f × the interactions (BPR: f × the pairs over all the users, so its tables are the full size, in
batches of the full log's size, ``auto_batch`` of its pairs, when ``batch_size`` is not given;
the others: f × the users, so histories keep their length), and the epoch at ``--size`` is the
measured per-example time × the examples of the full log's epoch — a scaled figure, printed as
such. One run, one process; on a shared machine the ratios inside the run are what compare.

The probe (same process, before the learners): float32 GEMM FLOP/s (torch.mm of 1,024² blocks,
the best of a few) and memory bandwidth (bytes read + written per second copying 256 MiB), both
on torch's threads. Each learner's cost model says which bound applies:

* ``bpr``: memory: a pair touches 3 rows of d + 1 floats to read, and each of its ≤ 3 rows' value
  and two Adam moments are read and written (21 row transfers of 4(d + 1) bytes);
* ``sasrec``: GEMM: per position, training ≈ 3× the forward pass, 2·(blocks·(6d² + 2Ld) + d·C)
  FLOPs, C the scored items (the catalogue for ``ce``, k + 1 for ``sampled``/``gbce``);
* ``gru4rec``: GEMM: per position 3 × 2·(layers·6d² + d² + d·C);
* ``multvae``: GEMM: per user 3 × 2·(n̄·h + I·h + 3·h·z): the sparse encoder reads the user's n̄
  stored items (mean over users), the decoder's logits cover all I items; h hidden, z latent;
* ``recvae``: GEMM: per user and epoch, ``encoder_epochs`` passes of 3 × 2·e + 2·e + 2 × 2·z·I
  with e = n̄·h + (layers − 1)·h² + 2·h·z the encoder (its forward and backward, the frozen prior
  encoder's forward, the decoder's forward and input gradient: no weight gradient of the decoder
  there), and ``decoder_epochs`` passes of 2·e (the encoder's forward, no backward) + 2 × 2·z·I
  (the decoder's forward and weight gradient). Mult-VAE and RecVAE train with the full log's
  users per step when ``batch_size`` is not given (``auto_batch`` of its users, as their
  ``batch_size=0`` would choose on it); their rows add the fit's CPU seconds;
* ``lightgcn``: memory: the entries of the normalised adjacency (or of its sampled parts) that
  the fit's products read, forward and back, counted by the model (``propagated_entries_``: full,
  2 × layers × 2·nnz a step; sampled, the sub-matrices of the batch's receptive field plus one
  exact forward propagation every chunks steps), each gathering and adding d floats (8 bytes of
  index and weight), plus BPR's rows. The passes over the (users + items, d) tables (full: the
  layers' sums and dense Adam; sampled: the field's rows and their lazy Adam moments) are not
  counted, so the share is a lower bound. Its epoch does not scale with ``--fraction`` (a step's
  cost grows with the graph): measure it with ``--fraction 1``. ``--steps N`` cuts a LightGCN
  epoch after N steps (``--full-steps M`` for ``propagation=full``, whose steps cost 2·layers
  whole-graph products) and scales to the whole epoch: the epoch's setup (its permutation and
  negatives, once) + the steps' seconds × (the epoch's steps / the steps run), wall and CPU; the
  line says how many steps ran. As ``epoch_seconds_``, the graph's and parts' construction before
  the epoch is not in it. In the table below a cut row's "measured" column is that scaled epoch.

Examples: BPR and LightGCN, training pairs; SASRec and GRU4Rec, next-item positions; Mult-VAE and
RecVAE, users.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = "bpr;sasrec;sasrec:loss=sampled;sasrec:loss=gbce;gru4rec;gru4rec:loss=sampled;gru4rec:loss=gbce;multvae;recvae"


def probe(threads: int) -> dict[str, float]:
    """The machine's GEMM FLOP/s and memory bandwidth (bytes/s), measured now on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - start) / 4)
    src, dst = torch.ones(64 << 20), torch.empty(64 << 20)  # 256 MiB each
    copy = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        copy = min(copy, time.perf_counter() - start)
    return {"gemm_flops": 2 * 1024 ** 3 / best, "bandwidth": 2 * src.numel() * 4 / copy}


def cost(name: str, model, data) -> tuple[str, float]:
    """(bound, FLOPs or bytes per example) of one training example of ``model`` (see the module docs)."""
    p = model.params()
    if name == "bpr":
        return "bandwidth", 21 * 4 * (p["factors"] + 1)
    if name in ("sasrec", "gru4rec"):
        d = p["factors"]
        scored = data.n_items if p["loss"] == "ce" else p["negatives"] + 1
        body = p["blocks"] * (6 * d * d + 2 * p["max_len"] * d) if name == "sasrec" else p["layers"] * 6 * d * d + d * d
        return "gemm_flops", 3 * 2 * (body + d * scored)
    if name in ("multvae", "recvae"):
        h, z, n_items = p["hidden"], p["latent"], data.n_items
        stored = data.n_interactions / max(1, examples(name, data))  # n̄: the mean user's items
        if name == "multvae":
            return "gemm_flops", 3 * 2 * (stored * h + n_items * h + 3 * h * z)
        encoder = stored * h + (p["layers"] - 1) * h * h + 2 * h * z
        return "gemm_flops", p["encoder_epochs"] * (4 * 2 * encoder + 2 * 2 * z * n_items) + p["decoder_epochs"] * (2 * encoder + 2 * 2 * z * n_items)
    if name == "lightgcn":  # the entries the fit's products read, counted by the model, d floats + index and weight each
        return "bandwidth", model.propagated_entries_ * (4 * p["factors"] + 8) / model.trained_pairs_ + 21 * 4 * p["factors"]
    raise SystemExit(f"no cost model for {name!r}")


def examples(name: str, data) -> int:
    """Training examples in one epoch of ``data``."""
    import numpy as np

    if name in ("sasrec", "gru4rec"):
        return int(data.n_interactions - (np.bincount(data.users, minlength=data.n_users) > 0).sum())
    if name in ("multvae", "recvae"):
        return int((np.bincount(data.users, minlength=data.n_users) > 0).sum())
    return int(data.n_interactions)


def warm_bpr(factors: int, threads: int) -> dict[str, object]:
    """Fit ``bpr`` and ``implicit``'s BPR once on a tiny log before anything is timed: each side's
    once-a-process costs (penchant's compiled path: numba's import and its machine code, compiled or
    read from the cache; implicit: its first fit) stay out of the timed fits. Returns the path
    ``bpr`` takes here and the CPU seconds of each warm-up."""
    from penchant.data.synthetic import power_law_log
    from penchant.models import create

    tiny = power_law_log(10_000, 6_000, 20_000, seed=1)  # 60M cells: the large logs' sampler (no dense bitmap)
    cpu = time.process_time()
    model = create("bpr", factors=factors, epochs=1).fit(tiny)
    ours = time.process_time() - cpu
    theirs = implicit_bpr_epoch(tiny, factors, threads)[1]
    return {"path": model.path_, "first_fit_cpu_seconds": ours, "implicit_first_fit_cpu_seconds": theirs}


def implicit_bpr_epoch(data, factors: int, threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one epoch of ``implicit``'s BPR on the same
    user × item matrix (its whole ``fit``: factor initialisation and the epoch)."""
    import numpy as np
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    engine = BayesianPersonalizedRanking(factors=factors, iterations=1, num_threads=threads, random_state=0)
    csr = data.csr.astype(np.float32)
    with threadpool_limits(1, "blas"):
        start, cpu = time.perf_counter(), time.process_time()
        engine.fit(csr, show_progress=False)
        return time.perf_counter() - start, time.process_time() - cpu


class CutEpoch:
    """LightGCN's ``triple_batches`` cut after ``steps`` batches (0: the whole epoch), with the wall and
    CPU seconds from the epoch's start to its last step run (``wall``, ``cpu``) and of the epoch's
    once-per-epoch setup (its permutation and negatives: ``setup_wall``, ``setup_cpu``), so the
    epoch scales as setup + steps × (the epoch's steps / the steps run)."""

    def __init__(self, steps: int) -> None:
        from penchant.models import lightgcn

        self.module, self.inner, self.steps = lightgcn, lightgcn.triple_batches, steps
        self.wall = self.cpu = self.setup_wall = self.setup_cpu = 0.0
        self.run = 0

    def __call__(self, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        for n, batch in enumerate(self.inner(*args, **kwargs)):
            if n == 0:
                self.setup_wall, self.setup_cpu = time.perf_counter() - start, time.process_time() - cpu
            if self.steps and n == self.steps:
                break
            self.run = n + 1
            yield batch
        self.wall, self.cpu = time.perf_counter() - start, time.process_time() - cpu

    def scaled(self, epoch_steps: int) -> tuple[float, float]:
        """(wall, CPU) seconds of the whole epoch of ``epoch_steps`` steps, scaled from the steps run."""
        k = epoch_steps / self.run
        return (self.setup_wall + (self.wall - self.setup_wall) * k, self.setup_cpu + (self.cpu - self.setup_cpu) * k)

    def __enter__(self) -> None:
        self.module.triple_batches = self

    def __exit__(self, *exc) -> None:
        self.module.triple_batches = self.inner


def measure(specs: list[str], size: int, fraction: float, seed: int = 0, steps: int = 0, full_steps: int = 0) -> list[dict]:
    """Fit each spec for one epoch (no validation) on the scaled log; one row per learner (LightGCN:
    ``steps`` / ``full_steps`` cut its epoch, see the module docs)."""
    import torch
    from bench_scale import shape

    from penchant.data.synthetic import power_law_log
    from penchant.experiment.run import parse_model_spec
    from penchant.models import create
    from penchant.threads import apply_to_torch

    apply_to_torch()
    threads = torch.get_num_threads()
    peak = probe(threads)
    if any(spec.split(":")[0] == "bpr" for spec in specs):
        warm = warm_bpr(64, threads)
        print(f"# bpr runs its {warm['path']} path here, implicit's BPR on the same {threads} thread(s); first fits (CPU s, not in the rows): "
              f"penchant {warm['first_fit_cpu_seconds']:.2f}, implicit {warm['implicit_first_fit_cpu_seconds']:.2f}", flush=True)
    print(f"# probe on {threads} thread(s): GEMM {peak['gemm_flops'] / 1e9:.1f} GFLOP/s, "
          f"memory {peak['bandwidth'] / 1e9:.1f} GB/s", flush=True)
    users, items = shape(size)
    logs: dict[str, object] = {}
    rows = []
    for spec in specs:
        name, given = parse_model_spec(spec)
        kind = "pairs" if name in ("bpr", "lightgcn") else "users"
        if kind not in logs:  # pairs: all the users, f × the pairs; users: f × users and pairs
            n_users = users if kind == "pairs" else max(100, round(users * fraction))
            logs[kind] = power_law_log(n_users, items, max(1000, round(size * fraction * 0.8)), seed=seed)
        data = logs[kind]
        template = create(name)
        params = {k: type(template.params()[k])(v) for k, v in given.items()} | {"epochs": 1, "seed": seed}
        if name == "bpr" and not params.get("batch_size"):  # the full log's batch: a pair's cost depends on it
            from penchant.models.bpr import auto_batch

            params["batch_size"] = auto_batch(round(0.8 * size))
        if name in ("multvae", "recvae") and not params.get("batch_size"):  # the full log's users a step, as batch_size=0 there
            from penchant.models.bpr import auto_batch
            from penchant.models.multvae import MIN_BATCH

            params["batch_size"] = auto_batch(users, minimum=MIN_BATCH)
        model = create(name, **params)
        cut = CutEpoch(full_steps if params.get("propagation", "full") == "full" else steps) if name == "lightgcn" else None
        start, cpu = time.perf_counter(), time.process_time()
        if cut:
            with cut:
                model.fit(data)
        else:
            model.fit(data)
        fit, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
        seconds = model.epoch_seconds_[0] if getattr(model, "epoch_seconds_", None) else fit
        n = examples(name, data)
        if cut:  # the epoch's seconds scaled from the steps run (the row says how many)
            from penchant.models.bpr import auto_batch

            batch = model.batch_size or auto_batch(n)
            model.trained_pairs_ = min(n, cut.run * batch)
            seconds, epoch_cpu = cut.scaled(-(-n // batch))
        bound, per_example = cost(name, model, data)
        rate = n / seconds
        full = 0.8 * size if kind == "pairs" else n / fraction  # the examples of the full log's training epoch
        row = {"model": spec, "examples": n, "epoch_seconds": seconds, "examples_per_second": rate, "bound": bound,
               "share_of_bound": rate * per_example / peak[bound], "threads": threads, "epoch_seconds_at_size": full / rate,
               "peak": peak}
        if name == "bpr":
            row["implicit_epoch_seconds"], implicit_cpu = implicit_bpr_epoch(data, model.factors, threads)
            row["ratio_to_implicit"] = seconds / row["implicit_epoch_seconds"]
            # on a shared machine wall seconds depend on what else ran meanwhile; the CPU seconds of
            # the two whole one-epoch fits (setup included on both sides) are the steadier ratio
            row["fit_cpu_seconds"], row["implicit_fit_cpu_seconds"] = fit_cpu, implicit_cpu
            row["cpu_ratio_to_implicit"] = fit_cpu / implicit_cpu
        if name in ("multvae", "recvae"):  # the whole one-epoch fit (setup included), wall and CPU, and its batch
            row["fit_seconds"], row["fit_cpu_seconds"], row["batch_size"] = fit, fit_cpu, params["batch_size"]
        if cut:
            row["epoch_cpu_seconds"], row["steps"], row["epoch_steps"], row["batch_size"] = epoch_cpu, cut.run, -(-n // batch), batch
            row["steps_wall_seconds"], row["steps_cpu_seconds"] = cut.wall, cut.cpu
            row["cpu_epoch_seconds_at_size"] = epoch_cpu * full / n
            full_rows = [r for r in rows if r["model"].startswith("lightgcn") and "propagation=sampled" not in r["model"]]
            if "propagation=sampled" in spec and full_rows:
                row["ratio_to_full"] = full_rows[-1]["epoch_seconds_at_size"] / row["epoch_seconds_at_size"]
                row["cpu_ratio_to_full"] = full_rows[-1]["cpu_epoch_seconds_at_size"] / row["cpu_epoch_seconds_at_size"]
        rows.append(row)
        if cut:
            print(f"{spec:<28} {row['steps']} of {row['epoch_steps']} steps of {batch:,} pairs: {cut.wall:.2f} s wall, "
                  f"{cut.cpu:.2f} s CPU (the epoch's setup {cut.setup_wall:.2f} s, {cut.setup_cpu:.2f} s CPU); epoch "
                  + ("" if row["steps"] == row["epoch_steps"] else "scaled ")
                  + f"{seconds:.0f} s wall, {epoch_cpu:.0f} s CPU; {rate:,.0f} pairs/s; {100 * row['share_of_bound']:.1f}% of {bound}"
                  + (f"; {row['ratio_to_full']:.1f}× faster than full (CPU {row['cpu_ratio_to_full']:.1f}×)"
                     if "ratio_to_full" in row else ""), flush=True)
            continue
        print(f"{spec:<28} {seconds:>8.2f} s  {rate:>12,.0f} ex/s  {100 * row['share_of_bound']:>5.1f}% of {bound}"
              + (f"  implicit {row['implicit_epoch_seconds']:.2f} s (ratio {row['ratio_to_implicit']:.2f}; CPU s of the"
                 f" fits {fit_cpu:.2f} / {implicit_cpu:.2f} = {row['cpu_ratio_to_implicit']:.2f})"
                 if name == "bpr" else "")
              + (f"  batch {params['batch_size']}; the fit {fit:.2f} s wall, {fit_cpu:.2f} s CPU"
                 if name in ("multvae", "recvae") else ""), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=20_000_000)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--steps", type=int, default=0, help="LightGCN (sampled): cut the epoch after this many steps and scale (0: whole)")
    ap.add_argument("--full-steps", type=int, default=0, help="LightGCN (propagation=full): the same")
    args = ap.parse_args()
    rows = measure([s for s in args.models.split(";") if s], args.size, args.fraction, steps=args.steps, full_steps=args.full_steps)
    print(f"\n{args.size:,}-interaction shape, learners fitted on {args.fraction:g} of it (the training part, 80%)")
    print("| learner | epoch s (measured) | examples/s | bound | share of bound | epoch s scaled to the full log | vs implicit |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['epoch_seconds']:.2f} | {r['examples_per_second']:,.0f} | {r['bound']} | "
              f"{100 * r['share_of_bound']:.1f}% | {r['epoch_seconds_at_size']:.0f} | "
              + (f"{r['ratio_to_implicit']:.2f}× |" if "ratio_to_implicit" in r else "— |"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
