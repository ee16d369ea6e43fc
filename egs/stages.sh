#!/usr/bin/env bash
# Stages 1-5 shared by every recipe, sourced by egs/<corpus>/run.sh after parse_options.sh.
# A recipe keeps only what is its corpus's own: its options, stage 0 (`casnat prepare ...`),
# which sets exist, and extra per-corpus steps (hooks below). It then calls `run_stages`:
#
#   1 features  `casnat features` for $train_set (speed-perturbed when $speed_perturb = true)
#               and each of $feature_sets; then the hook local_features
#   2 train     the hook train_model (default: `casnat train --config $train_config --resume`)
#   3 average   `casnat average --select-on` the $dev_sets: the newest n <= $avg epoch
#               checkpoints, n chosen on dev (never test) -> $exp/avg-dev.pt, $exp/avg_select.txt
#   4 decode    `casnat decode` every part of $test_sets with every mode of $modes
#               -> $exp/decode_<part>_<mode>/
#   5 results   `casnat bench-decode` every part of $bench_sets -> $exp/bench_<part>.md, then
#               $results: `casnat report` (stage 4's WERs) + avg_select.txt + the benchmarks
#   6 robustness `casnat bench-robust` every part of $robust_sets (default: $bench_sets): WER
#               under gain, white/babble noise, reverberation and telephone made from that test
#               split, input level normalization as the model has it and on (-25 dBFS)
#               -> $exp/robust_<part>.md, all parts in $robust_results (beside $results:
#               RESULTS_robustness.md for RESULTS.md)
#
# Variables the recipe sets before run_stages (from its options or fixed):
#   stage stop_stage  the stage range (run.sh --stage N --stop-stage M)
#   recipe            corpus name for the RESULTS header
#   model exp         experiment name and directory
#   avg modes nj bench_threads
#   train_set feature_sets dev_sets test_sets bench_sets   set names: <fbank>/cuts_<set>.jsonl.gz
#   results           the results file stage 5 writes
# and, with defaults here:
#   manifests=data/manifests  fbank=data/fbank  train_config=conf/$model.yaml  speed_perturb=true
#   features_done     one marker for the whole of stage 1 ($fbank/.done); empty: a marker per
#                     set ($fbank/.done_<set>), for corpora too large to extract in one go
#   device_opts       options for average, decode and bench-decode (e.g. "--device cuda")
#   decode_opts       more options for decode and bench-decode (e.g. "--num-samples 16")
#   hardware          what the RESULTS header says the benchmark ran on
#   robust_sets robust_results robust_modes robust_levels robust_opts   stage 6: its sets, its
#                     file, its modes (auto: ctc_greedy and cassnat, those the model has), its
#                     --level-dbfs values ("model on") and more options (e.g. "--max-utts 500")
# Stages 0-2 leave .done markers, so re-running skips them (delete one to redo); stages 3-6 are
# cheap next to training and rerun whenever they are inside the stage range.

. "$(dirname "${BASH_SOURCE[0]}")/decode_modes.sh"

# True when stage $1 is inside --stage .. --stop-stage.
in_stages() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

# Hooks a recipe may redefine after sourcing this file.
local_features() { :; }   # after stage 1's extraction, before its marker (synth_en: split by voice)
train_model() {           # stage 2's command
  casnat train --config "$train_config" --exp-dir "$exp" --resume
}

stage_features() {
  local set sp
  in_stages 1 || return 0
  [ -z "$features_done" ] || [ ! -f "$features_done" ] || return 0
  echo "stage 1: fbank as $train_config's features: section says (train speed perturbation 0.9/1.0/1.1: $speed_perturb)"
  mkdir -p "$fbank"
  for set in $train_set $feature_sets; do
    [ -n "$features_done" ] || [ ! -f "$fbank/.done_$set" ] || continue
    sp=
    [ "$set" != "$train_set" ] || [ "$speed_perturb" != true ] || sp=--speed-perturb
    casnat features --cuts "$manifests/cuts_$set.jsonl.gz" --out-dir "$fbank" $sp \
      --num-jobs "$nj" --config "$train_config"
    [ -n "$features_done" ] || touch "$fbank/.done_$set"
  done
  local_features
  [ -z "$features_done" ] || touch "$features_done"
}

stage_train() {
  in_stages 2 && [ ! -f "$exp/.train.done" ] || return 0
  echo "stage 2: train $model (log: $exp/train.log, tensorboard --logdir $exp/tensorboard)"
  mkdir -p "$exp"
  train_model
  touch "$exp/.train.done"
}

stage_average() {
  local set select_modes cuts=()
  in_stages 3 || return 0
  echo "stage 3: average the newest n <= $avg epoch checkpoints (the last one: the final weights when the run ended mid-epoch), n chosen on $dev_sets"
  select_modes=$(decode_modes "$exp" ctc_greedy cassnat)   # cassnat when the model has it
  for set in $dev_sets; do cuts+=("$fbank/cuts_$set.jsonl.gz"); done
  casnat average --exp-dir "$exp" --last "$avg" --out "$exp/avg-dev.pt" \
    --select-on "${cuts[@]}" --select-modes $select_modes $device_opts | tee "$exp/avg_select.txt"
}

# modes=auto: what the trained model can decode with (stages 4 and 5).
resolve_modes() {
  if [ "$modes" = auto ] && [ "$stage" -le 5 ] && [ "$stop_stage" -ge 4 ]; then
    modes=$(decode_modes "$exp")
  fi
}

stage_decode() {
  local part mode
  in_stages 4 || return 0
  echo "stage 4: decode $test_sets with $modes"
  for part in $test_sets; do
    for mode in $modes; do
      casnat decode --exp-dir "$exp" --checkpoint "$exp/avg-dev.pt" \
        --cuts "$fbank/cuts_$part.jsonl.gz" --mode "$mode" --out-dir "$exp/decode_${part}_${mode}" \
        $device_opts $decode_opts
    done
  done
}

stage_results() {
  local part
  in_stages 5 || return 0
  echo "stage 5: speed + accuracy of every mode side by side (batch 1 and batched), $results"
  for part in $bench_sets; do
    casnat bench-decode --exp-dir "$exp" --checkpoint "$exp/avg-dev.pt" \
      --cuts "$fbank/cuts_$part.jsonl.gz" --modes $modes --num-threads "$bench_threads" \
      --profile --out "$exp/bench_$part.md" $device_opts $decode_opts 2>&1 | tee "$exp/bench_$part.log"
  done
  mkdir -p "$(dirname "$results")"
  {
    echo "# $recipe: $model ($(date -u +%Y-%m-%d), $hardware)"
    echo
    echo '## WER per test set and mode (`casnat decode`, stage 4)'
    echo
    casnat report "$exp"
    echo
    echo '## Checkpoint averaging, chosen on dev (stage 3: word errors per dev set and mode)'
    echo
    cat "$exp/avg_select.txt"
    for part in $bench_sets; do
      echo
      echo "## $part: WER and decoding speed, measured side by side on one model (\`casnat bench-decode\`)"
      echo
      cat "$exp/bench_$part.md"
    done
  } > "$results.tmp" && mv "$results.tmp" "$results"
  cat "$results"
}

# Stage 6: how WER holds up when the test audio is quieter, louder, noisy, reverberant or
# telephone-band, with the same model and the input level normalized or not.
stage_robustness() {
  local part rmodes
  in_stages 6 || return 0
  rmodes=$robust_modes
  [ "$rmodes" != auto ] || rmodes=$(decode_modes "$exp" ctc_greedy cassnat)
  echo "stage 6: robustness (gain, noise, reverberation, telephone) of $robust_sets with $rmodes"
  mkdir -p "$exp"
  for part in $robust_sets; do
    casnat bench-robust --exp-dir "$exp" --checkpoint "$exp/avg-dev.pt" \
      --cuts "$fbank/cuts_$part.jsonl.gz" --modes $rmodes --level-dbfs $robust_levels \
      --num-threads "$bench_threads" --out "$exp/robust_$part.md" $device_opts $decode_opts \
      $robust_opts 2>&1 | tee "$exp/robust_$part.log"
  done
  mkdir -p "$(dirname "$robust_results")"
  {
    echo "# $recipe: $model, robustness ($(date -u +%Y-%m-%d), $hardware)"
    for part in $robust_sets; do
      echo
      echo "## $part: WER % under level, noise, room and channel changes (\`casnat bench-robust\`, stage 6)"
      echo
      cat "$exp/robust_$part.md"
    done
  } > "$robust_results.tmp" && mv "$robust_results.tmp" "$robust_results"
  cat "$robust_results"
}

# Stages 1-6 in order, each only inside --stage .. --stop-stage.
run_stages() {
  : "${manifests:=data/manifests}" "${fbank:=data/fbank}" "${train_config:=conf/$model.yaml}"
  : "${speed_perturb:=true}" "${features_done=$fbank/.done}" "${device_opts:=}" "${decode_opts:=}"
  : "${hardware:=$(nproc) CPU cores, torch threads $bench_threads}"
  : "${robust_sets=$bench_sets}" "${robust_results:=${results%.md}_robustness.md}"
  : "${robust_modes:=auto}" "${robust_levels:=model on}" "${robust_opts:=}"
  stage_features
  stage_train
  stage_average
  resolve_modes
  stage_decode
  stage_results
  stage_robustness
}
