#!/usr/bin/env bash
# FSDD connected digits: real human speech (6 speakers, 8 kHz, resampled to 16 kHz).
#
#   ./run.sh /path/to/fsdd                       # all stages
#   ./run.sh --stage 3 --stop-stage 4 /path/to/fsdd
#   ./run.sh --model ctc /path/to/fsdd           # conf/ctc.yaml -> exp/ctc
#
# Stages: 0 manifests, 1 features, 2 train, 3 average (how many checkpoints: chosen on dev),
# 4 decode, 5 speed benchmark + RESULTS.md.
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
. "$(dirname "$0")/../decode_modes.sh"

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

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f data/manifests/.done ]; then
  echo "stage 0: manifests (connected digits from clips 5-49, test from official clips 0-4)"
  casnat prepare fsdd "$corpus" data/manifests --num-train $num_train
  touch data/manifests/.done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ ! -f data/fbank/.done ]; then
  echo "stage 1: 80-dim fbank (train with speed perturbation 0.9/1.0/1.1)"
  casnat features --cuts data/manifests/cuts_train.jsonl.gz --out-dir data/fbank --speed-perturb --num-jobs $nj
  for part in dev dev_isolated test test_isolated; do
    casnat features --cuts data/manifests/cuts_$part.jsonl.gz --out-dir data/fbank --num-jobs $nj
  done
  touch data/fbank/.done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ ! -f $exp/.train.done ]; then
  echo "stage 2: train $model (log: $exp/train.log, tensorboard --logdir $exp/tensorboard)"
  casnat train --config conf/$model.yaml --exp-dir $exp --resume
  touch $exp/.train.done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  # How many checkpoints to average is chosen on held-out clips (connected dev and the same
  # clips in isolation), never on test.
  echo "stage 3: average the newest n <= $avg epoch checkpoints, n chosen on dev"
  select_modes=$(decode_modes $exp ctc_greedy cassnat)   # cassnat when the model has it
  casnat average --exp-dir $exp --last $avg --out $exp/avg-dev.pt \
    --select-on data/fbank/cuts_dev.jsonl.gz data/fbank/cuts_dev_isolated.jsonl.gz \
    --select-modes $select_modes | tee $exp/avg_select.txt
fi

if [ "$modes" = auto ] && [ $stage -le 5 ] && [ $stop_stage -ge 4 ]; then
  modes=$(decode_modes $exp)   # what the trained model can decode with
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: decode"
  for part in test test_isolated; do
    for mode in $modes; do
      casnat decode --exp-dir $exp --checkpoint $exp/avg-dev.pt --cuts data/fbank/cuts_$part.jsonl.gz \
        --mode $mode --out-dir $exp/decode_${part}_${mode}
    done
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  results=RESULTS.md   # the default model's; any other model writes RESULTS_<model>.md
  [ "$model" = cassnat ] || results=RESULTS_$model.md
  echo "stage 5: speed + accuracy of every mode side by side (batch 1 and batched), $results"
  for part in test test_isolated; do
    python ../../tools/bench_decode.py --exp-dir $exp --checkpoint $exp/avg-dev.pt \
      --cuts data/fbank/cuts_$part.jsonl.gz --modes $modes --num-threads $bench_threads \
      --profile --out $exp/bench_$part.md 2>&1 | tee $exp/bench_$part.log
  done
  {
    echo "# fsdd: $model ($(date -u +%Y-%m-%d), $(nproc) CPU cores, torch threads $bench_threads)"
    echo
    echo '## WER per test set and mode (`casnat decode`, stage 4)'
    echo
    casnat report $exp
    echo
    echo '## Checkpoint averaging, chosen on dev (stage 3: word errors per dev set and mode)'
    echo
    cat $exp/avg_select.txt
    for part in test test_isolated; do
      echo
      echo "## $part: WER and decoding speed, measured side by side on one model (tools/bench_decode.py)"
      echo
      cat $exp/bench_$part.md
    done
  } > $results.tmp && mv $results.tmp $results
  cat $results
fi
