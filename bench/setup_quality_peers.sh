#!/usr/bin/env bash
# Install the peers measured by bench/quality.py, each in its own venv under bench/.venvs (git-ignored):
#   qsaelens5  sae-lens==5.6.0 (with the pyarrow and wandb pins it needs to import)
#   qsaelens6  the latest sae-lens 6.x
#   qsparsify  eai-sparsify (latest)
# torch is pinned first in each so that pip takes the CPU wheel already on disk. The venvs used by bench/run.py
# (bench/setup_peers.sh: .venvs/saelens, .venvs/sparsify) are left as they are.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p .venvs
mk() {  # mk NAME PIP-ARGS...
  local name=$1; shift
  if [ ! -x ".venvs/$name/bin/python" ] || ! ".venvs/$name/bin/python" -c "import torch" 2>/dev/null; then
    python3 -m venv ".venvs/$name"
    ".venvs/$name/bin/pip" install -q torch==2.13.0
    ".venvs/$name/bin/pip" install -q torch==2.13.0 "$@"
  fi
}
mk qsaelens5 sae-lens==5.6.0 'pyarrow<20' 'wandb<0.20'
mk qsaelens6 'sae-lens>=6,<7'
mk qsparsify eai-sparsify
for v in qsaelens5 qsaelens6; do
  ".venvs/$v/bin/python" -c "import importlib.metadata as m; print('$v: sae-lens', m.version('sae-lens'), 'torch', m.version('torch'))"
done
.venvs/qsparsify/bin/python -c "import importlib.metadata as m; print('qsparsify: eai-sparsify', m.version('eai-sparsify'), 'torch', m.version('torch'))"
