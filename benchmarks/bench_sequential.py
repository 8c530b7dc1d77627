"""Sequential recommendation on MovieLens-100K: leave-last-one-out by time, full ranking.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_sequential.py [--models sasrec,gru4rec,...]
        [--models 'sasrec;sasrec:loss=sampled;sasrec:loss=gbce' --seeds 3 --baseline sasrec]

Each user's last interaction is the test item and the one before it the validation item; every
model fits on the rest (validation for early stopping and selection), sequential models then read
the validation item as part of the history, and the test item is ranked against the full catalogue
with the user's train and valid items masked. Printed: NDCG@10, Recall@10, fit seconds, epochs and
seconds per epoch for the neural models, and the ratio to the best non-sequential model.
``--models`` also takes ``;``-separated specs ``NAME:key=value,...`` (one row each, e.g. the
losses of one model side by side); with ``--seeds N`` the neural models run N seeds (0..N−1) and
their rows show the mean ± standard deviation (``--seed-list 0,2`` picks the seeds instead).
``--baseline SPEC`` (one of the specs) adds each row's ratio to that spec's NDCG@10 paired by
seed: the mean ± standard deviation of the per-seed ratios. Every fit's line names its seed, best
epoch and process CPU seconds beside wall seconds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from penchant.data import load_movielens
from penchant.data.split import leave_last_out
from penchant.eval.evaluate import build_target
from penchant.experiment.run import parse_model_spec, run

MODELS = ["pop", "ease", "als", "markov", "lastitemknn", "gru4rec", "sasrec"]
NON_SEQUENTIAL = {"pop", "ease", "als", "itemknn", "edlae", "dlae", "bpr"}
NEURAL = {"sasrec", "gru4rec"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--param", action="append", default=[], help="model:key=value, e.g. sasrec:loss=bce")
    ap.add_argument("--seeds", type=int, default=1, help="seeds of each neural model (mean ± std)")
    ap.add_argument("--seed-list", default="", help="comma-separated seeds of each neural model (instead of --seeds)")
    ap.add_argument("--baseline", default="", help="a spec of --models: each row's per-seed ratio to it")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    extra: dict[str, dict[str, str]] = {}
    for spec in args.param:
        name, _, kv = spec.partition(":")
        key, _, value = kv.partition("=")
        extra.setdefault(name, {})[key] = value
    split = leave_last_out(load_movielens("ml-100k"), n_test=1, n_valid=1)
    target = build_target(split.train, split.test, (split.valid,))
    rows = []
    from penchant.models import create

    # ";" separates specs; "," separates plain names too, but inside "NAME:key=value,..." it separates parameters
    specs = [name for part in args.models.split(";") for name in ([part] if ":" in part else part.split(","))]
    for spec in specs:
        name, given = parse_model_spec(spec)
        given = extra.get(name, {}) | given
        params = {k: type(create(name).params()[k])(v) for k, v in given.items()}
        results = []
        for seed in seeds if name in NEURAL and (len(seeds) > 1 or args.seed_list) else [None]:
            cpu = time.process_time()
            results.append(run(name, params if seed is None else params | {"seed": seed}, split.train, split.valid,
                               split.test, ks=[10, 20], target=target))
            cpu = time.process_time() - cpu
            m, r = results[-1].metrics(), results[-1]
            per_epoch = r.extra.get("epoch_seconds")
            print(f"{spec}{'' if seed is None else f' seed {seed}'}: ndcg@10 {m['ndcg@10']:.4f} recall@10 "
                  f"{m['recall@10']:.4f} fit {r.fit_seconds:.1f} s (run {cpu:.1f} CPU s)"
                  + (f", best epoch {r.extra.get('selected', {}).get('epochs')}, {per_epoch:.2f} s/epoch" if per_epoch else ""),
                  flush=True)
        ndcg = np.array([r.metrics()["ndcg@10"] for r in results])
        epochs = [r.extra.get("selected", {}).get("epochs") for r in results]
        per_epoch = [r.extra.get("epoch_seconds") for r in results]
        rows.append((spec, name, ndcg, np.mean([r.metrics()["recall@10"] for r in results]),
                     np.mean([r.fit_seconds for r in results]), epochs, None if None in per_epoch else np.mean(per_epoch)))
    base = max((r[2].mean() for r in rows if r[1] in NON_SEQUENTIAL and r[1] != "pop"), default=np.nan)
    paired = {r[0]: r[2] for r in rows}.get(args.baseline)
    if args.baseline and paired is None:
        raise SystemExit(f"--baseline {args.baseline!r} is not one of the --models specs")
    print(f"\nML-100K leave-last-one-out, {len(target.users)} users, full ranking, train+valid items masked"
          + (f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 or args.seed_list else ""))
    print("| model | NDCG@10 | Recall@10 | fit s | best epoch | s per epoch | ratio to best non-sequential |"
          + (f" ratio to {args.baseline}, per seed |" if paired is not None else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if paired is not None else ""))
    for spec, _, ndcg, recall, fit, epochs, per_epoch in sorted(rows, key=lambda r: -r[2].mean()):
        spread = f" ± {ndcg.std(ddof=1):.4f}" if len(ndcg) > 1 else ""
        shown = ", ".join(str(e) for e in epochs) if any(epochs) else "—"
        ratio = ""
        if paired is not None and len(ndcg) == len(paired):
            each = ndcg / paired  # the same seeds, in the same order
            ratio = f" {each.mean():.3f}" + (f" ± {each.std(ddof=1):.3f}" if len(each) > 1 else "") + " |"
        elif paired is not None:
            ratio = " — |"
        print(f"| {spec} | {ndcg.mean():.4f}{spread} | {recall:.4f} | {fit:.1f} | {shown} | "
              f"{f'{per_epoch:.2f}' if per_epoch else '—'} | {ndcg.mean() / base:.3f} |" + ratio)


if __name__ == "__main__":
    main()
