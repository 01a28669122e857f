#!/usr/bin/env bash
# The GPU check on the GPU machine (README, "GPU check"): installs the wheels carried in
# .gpu-wheels/ into a scratch directory, then runs benchmarks/gpu_check.py with the image's own
# Python and PyTorch, the library from source. Results: benchmarks/results/*_gpu.json.
# Arguments go to gpu_check.py (e.g. --budget-s 300, --sections ppo,scan).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${SSMRL_GPU_SITE:-/tmp/ssmrl-site}
if compgen -G ".gpu-wheels/*.whl" > /dev/null; then
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" .gpu-wheels/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-/tmp/ssmrl-minari}
export SSMRL_RUNS_DIR=${SSMRL_RUNS_DIR:-/tmp/ssmrl-runs}
export SSMRL_OFFLINE=1 PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
