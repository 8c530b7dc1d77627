#!/usr/bin/env bash
# Builds RecBole 1.2.1's own virtual environment for the CTR peer benchmark, under the git-ignored
# .peers/ (the same recipe as benchmarks/peers/run.sh, so both share .peers/recbole).
# torch is pinned first to the CPU wheel (a looser pin pulls a multi-GB CUDA build); RecBole 1.2.1
# uses NumPy 1.x APIs (np.float, etc. in its deps) and scipy's old sparse interfaces, hence
# numpy<2 and scipy<1.12; pandas 3 (copy-on-write) breaks its ID remapping and in-place fillna,
# hence pandas<2.2 (the shared .peers/recbole of run.sh is rebuilt if it holds pandas 3).
# Usage: bash benchmarks/peers/recbole_ctr/setup.sh  (idempotent)
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${RECBOLE_VENV:-.peers/recbole}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import recbole, pandas; assert int(pandas.__version__.split(\".\")[0]) < 3" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q "numpy<2" "scipy<1.12" "pandas<2.2" recbole==1.2.1
fi
"$VENV/bin/python" -c "import recbole, torch, numpy; print('recbole', recbole.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__)"
