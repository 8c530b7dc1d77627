"""A busy machine should slow penchant down in proportion, not stall it: ``penchant ratings cv`` of
BiasedMF on ML-100K, once as the machine is, once while CPU-bound processes run beside it.

    .venv/bin/python benchmarks/bench_busy_machine.py [--data ../shared/data/ml-100k] [--folds 5] \\
        [--hogs 2] [--old-timeout 0] [--json busy.json]
    .venv/bin/python benchmarks/bench_busy_machine.py --matrix 3 [--epochs 4] [--json matrix.json]

Each run is the real command in a fresh process with penchant's automatic thread count (the pool
variables and PENCHANT_THREADS are removed from its environment). The busy run starts ``--hogs``
processes that spin on one core each (``while True: pass``) a second before the command and kills
them after it. Printed for each run: the wall time, the RMSE, the CPU seconds penchant used and the
mean number of runnable tasks on the machine; then the ratio of the wall times (the target is at
most 2), the ratio that equal shares of the cores predict for a one-thread job, and whether the
RMSEs are equal (they must be: the thread count must not change the result). With
``--old-timeout S`` the busy run is repeated as torch sized itself before penchant did (a spinning
thread per core: PENCHANT_THREADS = the cores, and libgomp's own spin before a wait,
GOMP_SPINCOUNT=300000), stopped after S seconds.

``--matrix R`` measures why: one fold's few epochs with 1 thread and with a thread per core whose
waits sleep or spin, as the machine is and beside the hogs, R runs of each (wall and CPU seconds).

"As the machine is" is not a quiet machine where others work on it too: their tasks count in both
runs, which is why the runnable tasks are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOG = "while True: pass"


def default_data() -> Path:
    shared = os.environ.get("PENCHANT_DATA")
    return Path(shared) / "ml-100k" if shared else ROOT.parent / "shared" / "data" / "ml-100k"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without anything that would fix the thread count, plus ``extra``."""
    from penchant.threads import ENV, POOL_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in (ENV, "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", *POOL_VARIABLES)}
    return env | (extra or {})


def decision(env: dict[str, str]) -> str:
    """What penchant's rule says in a fresh process right now (sampled just before a run)."""
    code = "from penchant.threads import decide; print(decide())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()


class Runnable:
    """The mean number of runnable tasks on the machine while the block runs (the running count of
    /proc/loadavg, sampled every 0.2 s, less the sampler itself): what the cores are shared among."""

    def __enter__(self) -> Runnable:
        import threading

        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            with open("/proc/loadavg") as f:
                self.samples.append(int(f.read().split()[3].split("/")[0]) - 1)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / max(1, len(self.samples))


def cross_validate(data: Path, model: str, folds: int, env: dict[str, str], timeout: float | None) -> dict:
    """One ``penchant ratings cv`` run: wall seconds, its RMSE (None when stopped at ``timeout``), the CPU
    seconds it used, and how many tasks were runnable on the machine meanwhile (on average)."""
    with tempfile.TemporaryDirectory() as tmp, Runnable() as runnable:
        out = Path(tmp) / "cv.json"
        cmd = [sys.executable, "-m", "penchant", "--quiet", "ratings", "cv", str(data), "--model", model,
               "--folds", str(folds), "--json", str(out)]
        cpu, start = _children_cpu(), time.perf_counter()
        try:
            subprocess.run(cmd, env=env, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
            rmse = json.loads(out.read_text())["rmse"]
        except subprocess.TimeoutExpired:
            rmse = None
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rmse": rmse, "stopped": rmse is None, "cpu_seconds": _children_cpu() - cpu,
            "runnable": runnable.mean}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy(hogs: int, run) -> dict:
    """``run()`` while ``hogs`` CPU-bound processes spin (they are killed afterwards, whatever happens),
    with ``hog_share``: the share of a core each of them got meanwhile (their mean) — what a fair
    scheduler gives one runnable thread, so what penchant's one thread should get too."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        time.sleep(1.0)
        before, start = [_cpu_of(p.pid) for p in procs], time.perf_counter()
        result = run()
        spent = [_cpu_of(p.pid) - b for p, b in zip(procs, before)]
        return result | {"hog_share": sum(spent) / len(spent) / (time.perf_counter() - start)}
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _cpu_of(pid: int) -> float:
    """CPU seconds process ``pid`` has used (user + system, /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def said(run: dict) -> str:
    """How a run went, in a line: time, RMSE, CPU used, how many tasks shared the cores."""
    result = "stopped" if run["stopped"] else f"RMSE {run['rmse']:.4f}"
    return (f"{run['seconds']:.1f} s, {result}; penchant used {run['cpu_seconds']:.1f} CPU s "
            f"({run['cpu_seconds'] / run['seconds']:.2f} of a core" +
            (f", each CPU-bound process {run['hog_share']:.2f}" if "hog_share" in run else "") +
            f"); {run['runnable']:.1f} tasks runnable on average")


def fair_ratio(quiet: dict, busy: dict, cores: int) -> float:
    """The slowdown that sharing the cores equally among the runnable tasks predicts for a one-thread
    job: its share of a core is min(1, cores / runnable) in each run."""
    share = lambda run: min(1.0, cores / max(1.0, run["runnable"]))  # noqa: E731
    return share(quiet) / share(busy)


def fit_once(data: Path, epochs: int) -> None:
    """(A child of ``--matrix``.) BiasedMF on the first of 5 folds for ``epochs`` epochs, validating every
    second one: prints its wall and CPU seconds as JSON."""
    import numpy as np

    from penchant.data import load
    from penchant.data.split import kfold
    from penchant.eval.rating import rating_validator
    from penchant.models import create

    split = next(iter(kfold(load(data), 5, 0)))
    inner = np.random.default_rng(0).random(split.train.n_interactions) < 0.05
    model = create("biasedmf", epochs=epochs, eval_every=2, patience=epochs)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(split.train.subset(~inner), rating_validator(split.train.subset(inner), (1.0, 5.0)))
    print(json.dumps({"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}))


def matrix(data: Path, cores: int, hogs: int, repeats: int, epochs: int) -> list[dict]:
    """Why a pool as wide as the machine stalls: the same few epochs with 1 thread, and with one thread
    per core whose waits sleep (penchant's default) or spin first (libgomp's own default), as the
    machine is and beside ``hogs`` CPU-bound processes; ``repeats`` runs each, interleaved."""
    setups = [(1, "sleep")] + ([(cores, "sleep"), (cores, "spin")] if cores > 1 else [])
    runs: dict[tuple, list[dict]] = {}
    for beside in (0, hogs):
        for _ in range(repeats):
            for threads, wait in setups:
                env = clean_env({"PENCHANT_THREADS": str(threads)} | ({"GOMP_SPINCOUNT": "300000"} if wait == "spin" else {}))
                cmd = [sys.executable, __file__, "--data", str(data), "--fit-once", str(epochs)]
                once = lambda: json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,  # noqa: E731
                                                         check=True).stdout)
                runs.setdefault((beside, threads, wait), []).append(busy(beside, once) if beside else once())
    rows = []
    print(f"BiasedMF, fold 1 of 5 of ML-100K, {epochs} epochs (validated every 2nd); median (min–max) of {repeats}")
    print("| beside | threads | waits | wall s | CPU s |\n| --- | --- | --- | --- | --- |")
    for (beside, threads, wait), got in runs.items():
        wall, cpu = sorted(r["seconds"] for r in got), sorted(r["cpu_seconds"] for r in got)
        mid = len(got) // 2
        rows.append({"beside": beside, "threads": threads, "waits": wait, "seconds": wall, "cpu_seconds": cpu})
        print(f"| {beside} CPU-bound | {threads} | {wait} | {wall[mid]:.1f} ({wall[0]:.1f}–{wall[-1]:.1f}) | "
              f"{cpu[mid]:.1f} ({cpu[0]:.1f}–{cpu[-1]:.1f}) |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--model", default="biasedmf")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes started beside the busy run")
    parser.add_argument("--old-timeout", type=float, default=0.0,
                        help="also the busy run with torch's own sizing, stopped after this many seconds (0: not run)")
    parser.add_argument("--matrix", type=int, default=0, metavar="REPEATS",
                        help="instead: a few epochs of one fold with 1 thread and a thread per core, waits that sleep or "
                             "spin, as the machine is and beside --hogs, REPEATS times each")
    parser.add_argument("--epochs", type=int, default=4, help="with --matrix: epochs of each fit")
    parser.add_argument("--fit-once", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.fit_once:
        return fit_once(args.data, args.fit_once)

    from penchant.threads import usable_cores

    env = clean_env()
    cores = usable_cores()
    if args.matrix:
        rows = matrix(args.data, cores, args.hogs, args.matrix, args.epochs)
        if args.json:
            args.json.write_text(json.dumps({"cores": cores, "hogs": args.hogs, "epochs": args.epochs, "rows": rows},
                                            indent=2) + "\n")
        return
    print(f"{args.model} {args.folds}-fold cross-validation of {args.data}; {cores} usable cores, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rule = decision(env)
    quiet = cross_validate(args.data, args.model, args.folds, env, None)
    print(f"as the machine is: {said(quiet)}  [{rule}]", flush=True)

    def loaded(extra=None, timeout=None):
        def run():
            chosen = decision(clean_env(extra))
            return cross_validate(args.data, args.model, args.folds, clean_env(extra), timeout) | {"rule": chosen}
        return busy(args.hogs, run)

    hot = loaded()
    ratio = hot["seconds"] / quiet["seconds"]
    print(f"beside {args.hogs} CPU-bound processes: {said(hot)}  [{hot['rule']}]", flush=True)
    same = hot["rmse"] == quiet["rmse"]
    fair = fair_ratio(quiet, hot, cores)
    print(f"ratio {ratio:.2f} (target ≤ 2; equal shares of the cores predict {fair:.2f}); "
          f"RMSEs {'equal' if same else 'DIFFER'}", flush=True)
    report = {"model": args.model, "folds": args.folds, "data": str(args.data), "cores": cores, "hogs": args.hogs,
              "quiet": quiet | {"rule": rule}, "busy": hot, "ratio": ratio, "fair_ratio": fair, "rmse_equal": same}
    if args.old_timeout > 0:
        # libgomp's own default: spin 300,000 times, then sleep (penchant's default sleeps at once)
        old = loaded({"PENCHANT_THREADS": str(cores), "GOMP_SPINCOUNT": "300000"}, args.old_timeout)
        report["busy_as_torch_sizes_itself"] = old
        print(f"the same with {cores} spinning torch threads (as before penchant sized them): {said(old)}; "
              f"ratio {old['seconds'] / quiet['seconds']:.2f}{' at least' if old['stopped'] else ''}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
