#!/usr/bin/env bash
# Build casnat's CUDA kernels on a GPU machine, run the GPU tests and the GPU benchmarks.
#
# Why a script: GPU time is scarce and CI has no GPU, so the GPU checks run as one prepared pass on a
# borrowed machine. Each step logs to OUT_DIR and a failing step does not stop the next.
#
# Usage: bash tools/gpu_check.sh OUT_DIR [RECIPE_DIR]
#   RECIPE_DIR (e.g. egs/synth_en) with exp/cassnat and data/fbank/cuts_test.jsonl.gz: also time
#   every decoding mode on the GPU with `casnat bench-decode`.
# Env: PYTHON (default python3), TORCH_CUDA_ARCH_LIST (default 9.0), MAX_JOBS (default 16),
#   BENCH_UTTS (default 100) and BENCH_DECODE_ARGS (e.g. --profile) for bench-decode.
set -u -o pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [RECIPE_DIR]}
recipe=${2:-}
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # the in-place build, from any directory
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"

echo "== build"
start=$(date +%s)
if ! $py setup.py build_ext --inplace >"$out/build.log" 2>&1; then
  tail -30 "$out/build.log"
  echo "build failed: see $out/build.log"
  exit 1
fi
echo "built in $(($(date +%s) - start)) s"
$py -c "import torch, casnat.align._backend as b; print('CUDA kernels:', b.has_kernel('ctc_viterbi_align', torch.device('cuda')))"

echo "== tests"
$py -m pytest -q -p no:cacheprovider -rs tests/align tests/decode/test_cuda.py tests/train/test_cuda.py 2>&1 | tee "$out/tests.log" || status=1

echo "== bench_align --device cuda"
$py tools/bench_align.py --device cuda --threads "$(nproc)" 2>&1 | tee "$out/bench_align_cuda.txt" || status=1

if [[ -n $recipe ]]; then
  echo "== casnat bench-decode on $recipe"
  (cd "$recipe" && $py -m casnat.cli bench-decode --exp-dir exp/cassnat \
    --cuts data/fbank/cuts_test.jsonl.gz --device cuda --max-utts "${BENCH_UTTS:-100}" \
    --out "$out/bench_decode_cuda.md" ${BENCH_DECODE_ARGS:-} 2>&1 | tee "$out/bench_decode_cuda.log") || status=1
fi
exit $status
