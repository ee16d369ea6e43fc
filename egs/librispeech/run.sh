#!/usr/bin/env bash
# LibriSpeech 100h (train-clean-100) or 960h CASS-NAT, on GPUs.
#
#   ./run.sh /data/LibriSpeech                                  # 100h, one GPU, all stages
#   ./run.sh --config-name 960h --ngpu 4 --nj 16 /data/LibriSpeech
#   ./run.sh --stage 4 --modes "cassnat_esa" /data/LibriSpeech  # decode again
#   ./run.sh --data-dir /big/disk/librispeech_data /data/LibriSpeech
#
# <corpus> is the LibriSpeech/ directory (with train-clean-100/, dev-clean/, ...), as unpacked
# from openslr.org/12 (lhotse's download_librispeech fetches it).
# Stages: 0 manifests, 1 features, 2 train, 3 average, 4 decode, 5 results table.
# Each finished stage (features: each part) leaves a .done marker, so re-running skips it.
set -euo pipefail

stage=0
stop_stage=100
config_name=100h       # conf/cassnat_$config_name.yaml: 100h | 960h
config=                # another YAML instead (its data/ paths are rewritten like the conf's)
ngpu=1                 # >1: torchrun DDP; 0: train and decode on CPU
data_dir=data          # manifests + features; relative paths other than "data" are taken from
                       # the directory you run from (features are large: put them on a big disk)
exp_dir=               # default exp/cassnat_$config_name
speed_perturb=auto     # auto: 0.9/1.0/1.1 copies for 100h, none for 960h; true | false
avg=10                 # average the last N epoch checkpoints (CASSNAT.md)
modes=auto             # decoding modes; auto: those of ctc_greedy at_beam cassnat cassnat_esa the model has
test_sets="dev_clean dev_other test_clean test_other"
num_samples=16         # cassnat_esa: K (the papers use 50 for 960h)
nj=2                   # parallel jobs for manifests and features

. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../decode_modes.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 [--stage N] [--stop-stage N] [--config-name 100h|960h] [--ngpu N] [--nj N]" >&2
  echo "          [--data-dir DIR] [--exp-dir DIR] [--config X.yaml] <LibriSpeech-dir>" >&2
  exit 1
fi
corpus=$1
case $config_name in
  100h) parts="train-clean-100,dev-clean,dev-other,test-clean,test-other"; train_set=train
        [ "$speed_perturb" = auto ] && speed_perturb=true ;;
  960h) parts="train-clean-100,train-clean-360,train-other-500,dev-clean,dev-other,test-clean,test-other"
        train_set=train_960; [ "$speed_perturb" = auto ] && speed_perturb=false ;;
  *) echo "$0: --config-name must be 100h or 960h, not '$config_name'" >&2; exit 1 ;;
esac
case $corpus in /*) ;; *) corpus=$PWD/$corpus ;; esac
case $data_dir in /*) ;; *) [ "$data_dir" = data ] || data_dir=$PWD/$data_dir ;; esac
[ -z "$config" ] || case $config in /*) ;; *) config=$PWD/$config ;; esac
[ -z "$exp_dir" ] || case $exp_dir in /*) ;; *) exp_dir=$PWD/$exp_dir ;; esac
cd "$(dirname "$0")"
config=${config:-conf/cassnat_$config_name.yaml}
exp=${exp_dir:-exp/cassnat_$config_name}
device=cuda; [ "$ngpu" -ge 1 ] || device=cpu
mkdir -p "$data_dir" "$exp"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f "$data_dir/manifests/.done_$config_name" ]; then
  echo "stage 0: manifests of $parts"
  casnat prepare librispeech "$corpus" "$data_dir/manifests" --parts "$parts" --num-jobs $nj
  touch "$data_dir/manifests/.done_$config_name"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: 80-dim fbank (train speed perturbation: $speed_perturb)"
  fbank=$data_dir/fbank
  train_fbank=$fbank  # speed-perturbed train parts live apart, so 100h and 960h can share a data dir
  [ "$speed_perturb" = true ] && train_fbank=$data_dir/fbank_sp
  for part in ${parts//,/ }; do
    part=${part//-/_}
    out=$fbank sp=
    case $part in train_*) out=$train_fbank; [ "$speed_perturb" = true ] && sp="--speed-perturb" ;; esac
    if [ ! -f "$out/.done_$part" ]; then
      casnat features --cuts "$data_dir/manifests/cuts_$part.jsonl.gz" --out-dir "$out" $sp --num-jobs $nj
      rm -f "$fbank"/.done_combined_*
      touch "$out/.done_$part"
    fi
  done
  # The configs' training and validation sets, joined from the per-part feature manifests.
  if [ ! -f "$fbank/.done_combined_$config_name" ]; then
    if [ $config_name = 100h ]; then
      cp "$train_fbank/cuts_train_clean_100.jsonl.gz" "$fbank/cuts_train.jsonl.gz"
    else
      lhotse combine "$train_fbank"/cuts_train_{clean_100,clean_360,other_500}.jsonl.gz \
        "$fbank/cuts_train_960.jsonl.gz"
    fi
    lhotse combine "$fbank"/cuts_dev_{clean,other}.jsonl.gz "$fbank/cuts_dev.jsonl.gz"
    touch "$fbank/.done_combined_$config_name"
  fi
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ ! -f "$exp/.train.done" ]; then
  echo "stage 2: train $config on $ngpu GPU(s) (log: $exp/train.log, tensorboard --logdir $exp/tensorboard)"
  # The experiment's copy of the config, with data/ pointing at --data-dir.
  sed "s#\([ :]\)data/fbank/#\1$data_dir/fbank/#g" "$config" > "$exp/train.yaml"
  if [ "$ngpu" -gt 1 ]; then
    torchrun --standalone --nproc_per_node=$ngpu -m casnat.bin.train --config "$exp/train.yaml" \
      --exp-dir "$exp" --resume
  else
    casnat train --config "$exp/train.yaml" --exp-dir "$exp" --resume --device $device
  fi
  touch "$exp/.train.done"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: average the last $avg epoch checkpoints"
  casnat average --exp-dir "$exp" --last $avg --out "$exp/avg-$avg.pt"
fi

if [ "$modes" = auto ] && [ $stage -le 5 ] && [ $stop_stage -ge 4 ]; then
  modes=$(decode_modes "$exp")   # what the trained model can decode with
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: decode $test_sets with $modes"
  for part in $test_sets; do
    for mode in $modes; do
      casnat decode --exp-dir "$exp" --checkpoint "$exp/avg-$avg.pt" --device $device \
        --cuts "$data_dir/fbank/cuts_$part.jsonl.gz" --mode $mode --num-samples $num_samples \
        --out-dir "$exp/decode_${part}_${mode}"
    done
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: results"
  casnat report "$exp"
fi
