#!/usr/bin/env bash
# FSDD connected digits: real human speech (6 speakers, 8 kHz, resampled to 16 kHz).
#
#   ./run.sh /path/to/fsdd                       # all stages
#   ./run.sh --stage 3 --stop-stage 4 /path/to/fsdd
#   ./run.sh --model ctc /path/to/fsdd           # conf/ctc.yaml -> exp/ctc
#
# Stages: 0 manifests, 1 features, 2 train, 3 average (how many checkpoints: chosen on dev),
# 4 decode, 5 speed benchmark + RESULTS.md. Stage 0 is this corpus's own; 1-5 are
# ../stages.sh, shared by every recipe.
# Each finished stage leaves a .done marker, so re-running skips it (delete the marker to redo).
set -euo pipefail

stage=0
stop_stage=100
model=cassnat          # conf/$model.yaml
avg=5                  # average up to the last N epoch checkpoints; stage 3 picks how many on dev
modes=auto             # decoding modes; auto: those of ctc_greedy at_beam cassnat cassnat_esa the model has
bench_threads=2
nj=2
num_train=2000

. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 [--stage N] [--stop-stage N] [--model NAME] [--modes '...'] <fsdd-dir>" >&2
  echo "  <fsdd-dir> holds recordings/{digit}_{speaker}_{index}.wav" >&2
  exit 1
fi
corpus=$1
# Relative to where the user ran us, not to the recipe dir we cd into.
case $corpus in /*) ;; *) corpus=$PWD/$corpus ;; esac
cd "$(dirname "$0")"
exp=exp/$model
mkdir -p data exp

if in_stages 0 && [ ! -f data/manifests/.done ]; then
  echo "stage 0: manifests (connected digits from clips 5-49, test from official clips 0-4)"
  casnat prepare fsdd "$corpus" data/manifests --num-train $num_train
  touch data/manifests/.done
fi

recipe=fsdd
train_set=train
feature_sets="dev dev_isolated test test_isolated"
# How many checkpoints to average is chosen on held-out clips (connected dev and the same
# clips in isolation), never on test.
dev_sets="dev dev_isolated"
test_sets="test test_isolated"
bench_sets="test test_isolated"
results=RESULTS.md   # the default model's; any other model writes RESULTS_<model>.md
[ "$model" = cassnat ] || results=RESULTS_$model.md
run_stages
