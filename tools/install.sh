#!/usr/bin/env bash
# Install casnat into the current Python environment (use a venv).
#
#   bash tools/install.sh          # casnat + the TTS engines the default recipe (egs/synth_en) needs
#   bash tools/install.sh --dev    # also pytest, ruff, hypothesis, onnx + onnxruntime for the test suite
#
# torch: if none is installed, the CPU build torch==2.13.0 is installed first (on a GPU machine,
# install your CUDA torch before running this; casnat accepts any torch>=2.4 and keeps yours).
# The compiled ops are built against that torch (--no-build-isolation), with CUDA kernels when it
# has CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,fbank]" || extras="[fbank]"

bash egs/synth_en/local/install_tts.sh

python -m pip install -q --upgrade pip setuptools wheel
python -c "import torch" 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q --no-build-isolation -e ".$extras"
python -c "import casnat.align as a; print('casnat installed; alignment backend:', a.backend())"
