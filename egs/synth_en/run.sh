#!/usr/bin/env bash
# synth_en: multi-speaker English read speech synthesized on this machine with Debian's TTS engines
# (espeak-ng voice variants, flite, festival diphone voices; some voices appear only in test).
# Self-contained: needs only a text source (the shared sentences dir or any text file) and the
# engines (local/install_tts.sh).
#
#   ./run.sh /path/to/text                          # dir with sentences_{train,dev,test}.txt
#   ./run.sh --num-train 6000 /path/to/text         # a bigger corpus
#   ./run.sh --stage 4 --model ctc /path/to/text
#
# Stages: 0 synthesize + manifests, 1 features, 2 train, 3 average (how many checkpoints: chosen
# on dev), 4 decode, 5 speed benchmark + RESULTS.md. Stage 0 and the split of test by voice are
# this corpus's own; 1-5 are ../stages.sh, shared by every recipe.
set -euo pipefail

stage=0
stop_stage=100
model=cassnat
avg=5                  # average up to the last N epoch checkpoints; stage 3 picks how many on dev
modes=auto             # decoding modes; auto: those of ctc_greedy at_beam cassnat cassnat_esa the model has
bench_threads=2
nj=2
num_train=1500
num_dev=100
num_test=200

. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 [--stage N] [--stop-stage N] [--model NAME] [--num-train N] <text-dir-or-file>" >&2
  exit 1
fi
text=$1
# Relative to where the user ran us, not to the recipe dir we cd into.
case $text in /*) ;; *) text=$PWD/$text ;; esac
cd "$(dirname "$0")"
exp=exp/$model
mkdir -p data exp

if in_stages 0 && [ ! -f data/manifests/.done ]; then
  echo "stage 0: synthesize $num_train/$num_dev/$num_test utterances"
  casnat prepare synth_en "$text" data/manifests --num-train $num_train --num-dev $num_dev \
    --num-test $num_test --num-jobs $nj
  touch data/manifests/.done
fi

# Stage 1's extra step: test_seen / test_unseen voices, decoded apart in stage 4.
local_features() {
  python local/split_by_voice.py data/fbank/cuts_test.jsonl.gz
}

recipe=synth_en
train_set=train
feature_sets="dev test"
dev_sets=dev
test_sets="test test_seen test_unseen"
bench_sets=test
results=RESULTS.md   # the default model's; any other model writes RESULTS_<model>.md
[ "$model" = cassnat ] || results=RESULTS_$model.md
run_stages
