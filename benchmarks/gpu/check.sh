#!/usr/bin/env bash
# The one GPU check script (device machine: Python 3.12, CUDA torch, triton; no megatron-core).
# Carry megatron-core as a wheel in .whl/ (see the device README), then:
#   bash benchmarks/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 benchmarks/gpu/logprob_triton.py --tokens 8192
python3 benchmarks/gpu/logprob_fused_head.py --tokens 16384
