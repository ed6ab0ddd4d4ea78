#!/usr/bin/env bash
# Install the peers measured by bench/run.py, each in its own venv under bench/.venvs (git-ignored).
# torch is pinned first so that pip takes the CPU wheel; SAELens 5.6.0 needs the pyarrow and wandb pins to import.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p .venvs
if [ ! -x .venvs/saelens/bin/python ]; then
  python3 -m venv .venvs/saelens
  .venvs/saelens/bin/pip install -q torch==2.13.0
  .venvs/saelens/bin/pip install -q torch==2.13.0 sae-lens==5.6.0 'pyarrow<20' 'wandb<0.20'
fi
if [ ! -x .venvs/sparsify/bin/python ]; then
  python3 -m venv .venvs/sparsify
  .venvs/sparsify/bin/pip install -q torch==2.13.0
  .venvs/sparsify/bin/pip install -q torch==2.13.0 eai-sparsify
fi
.venvs/saelens/bin/python -c "import sae_lens; print('SAELens', sae_lens.__version__)"
.venvs/sparsify/bin/python -c "import importlib.metadata as m; print('sparsify', m.version('eai-sparsify'))"
