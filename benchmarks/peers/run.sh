#!/usr/bin/env bash
# Peer comparison: RecBole, LensKit and implicit on the same split files as penchant, all scored by
# penchant's evaluator. Each peer gets its own virtual environment under .peers/ (RecBole 1.2.1 needs
# NumPy < 2; LensKit needs NumPy ≥ 2). Usage: bash benchmarks/peers/run.sh [SEEDS]
# or, for the three splits of benchmarks/bench_splits.py (issue 39; its docstring has the other steps):
#    bash benchmarks/peers/run.sh splits   # writes .peers/work/splits/<split>/lists for each split
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${1:-3}
DATA=${PENCHANT_DATA:-../shared/data}/ml-100k
WORK=.peers/work
mkdir -p "$WORK"
make venv >/dev/null
[ -x .peers/recbole/bin/python ] || { python3 -m venv .peers/recbole &&
  .peers/recbole/bin/pip install -q torch==2.13.0 "numpy<2" "scipy<1.12" "pandas<2.2" recbole==1.2.1; }
[ -x .peers/lenskit/bin/python ] || { python3 -m venv .peers/lenskit &&
  .peers/lenskit/bin/pip install -q torch==2.13.0 lenskit==2025.8.1 implicit==0.7.3; }

if [ "$SEEDS" = splits ]; then  # EASE and ALS (LensKit/implicit), RecBole's EASE, MultiVAE and LightGCN per split
  .venv/bin/python benchmarks/bench_splits.py write --data "$DATA"
  for s in random-2026 random-1 temporal; do
    R=.peers/work/splits/$s
    .peers/lenskit/bin/python benchmarks/peers/lenskit_implicit_runner.py --data "$R" --out "$R/lists" \
      --models implicit-ALS,lenskit-EASE,lenskit-ImplicitMF
    .peers/recbole/bin/python benchmarks/peers/recbole_runner.py --data "$R/recbole/ml100ksplit" --name ml100ksplit \
      --out "$R/lists" --models EASE,MultiVAE,LightGCN
  done
  exit 0
fi
.venv/bin/penchant split "$DATA" --out "$WORK/split" --ratios 0.8,0.1,0.1 --seed 2026
.venv/bin/penchant split "$DATA" --out "$WORK/inter" --ratios 0.8,0.1,0.1 --seed 2026 --format inter
mkdir -p "$WORK/recbole/ml100ksplit"   # RecBole reserves the name ml-100k for its bundled copy
for f in "$WORK"/inter/ml-100k.*; do b=$(basename "$f"); cp "$f" "$WORK/recbole/ml100ksplit/${b/ml-100k/ml100ksplit}"; done

.peers/lenskit/bin/python benchmarks/peers/lenskit_implicit_runner.py --data "$WORK/split" --out "$WORK/lists"
.peers/recbole/bin/python benchmarks/peers/recbole_runner.py --data "$WORK/recbole/ml100ksplit" --name ml100ksplit \
  --out "$WORK/lists"
.venv/bin/python benchmarks/peers/score.py --split "$WORK/split" --lists "$WORK/lists" --seeds "$SEEDS" \
  --markdown "$WORK/peers.md" --json "$WORK/peers.json"
