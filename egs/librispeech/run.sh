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
# Stages: 0 manifests, 1 features, 2 train, 3 average (how many checkpoints: chosen on
# dev-clean + dev-other), 4 decode, 5 speed benchmark + RESULTS.md. Stage 0 and the DDP training
# command are this corpus's own; 1-5 are ../stages.sh, shared by every recipe.
# Stages 0-2 leave .done markers (features: one per set), so re-running skips them.
set -euo pipefail

stage=0
stop_stage=100
config_name=100h       # conf/cassnat_$config_name.yaml: 100h | 960h
config=                # another YAML instead (its data/ paths are rewritten like the conf's)
ngpu=1                 # >1: torchrun DDP; 0: train and decode on CPU
data_dir=data          # manifests + features; relative paths other than "data" are taken from
                       # the directory you run from (features are large: put them on a big disk)
exp_dir=               # default exp/cassnat_$config_name
results=               # default RESULTS.md for 100h, RESULTS_cassnat_960h.md for 960h
speed_perturb=auto     # auto: 0.9/1.0/1.1 copies for 100h, none for 960h; true | false
avg=10                 # average up to the last N epoch checkpoints; stage 3 picks how many on dev
modes=auto             # decoding modes; auto: those of ctc_greedy at_beam cassnat cassnat_esa the model has
test_sets="dev_clean dev_other test_clean test_other"
bench_sets="test_clean test_other"
num_samples=16         # cassnat_esa: K (the papers use 50 for 960h)
bench_threads=2        # torch CPU threads of the benchmark
nj=2                   # parallel jobs for manifests and features

. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

if [ $# -ne 1 ]; then
  echo "usage: $0 [--stage N] [--stop-stage N] [--config-name 100h|960h] [--ngpu N] [--nj N]" >&2
  echo "          [--data-dir DIR] [--exp-dir DIR] [--config X.yaml] [--results X.md] <LibriSpeech-dir>" >&2
  exit 1
fi
corpus=$1
# The sets casnat prepare librispeech writes (cuts_train = train-clean-100, cuts_train_960 =
# all three train parts, cuts_dev = dev-clean + dev-other) are the configs' train and dev sets.
case $config_name in
  100h) parts="train-clean-100,dev-clean,dev-other,test-clean,test-other"; train_set=train
        [ "$speed_perturb" = auto ] && speed_perturb=true ;;
  960h) parts="train-clean-100,train-clean-360,train-other-500,dev-clean,dev-other,test-clean,test-other"
        train_set=train_960; [ "$speed_perturb" = auto ] && speed_perturb=false ;;
  *) echo "$0: --config-name must be 100h or 960h, not '$config_name'" >&2; exit 1 ;;
esac
# Relative to where the user ran us, not to the recipe dir we cd into.
case $corpus in /*) ;; *) corpus=$PWD/$corpus ;; esac
case $data_dir in /*) ;; *) [ "$data_dir" = data ] || data_dir=$PWD/$data_dir ;; esac
[ -z "$config" ] || case $config in /*) ;; *) config=$PWD/$config ;; esac
[ -z "$exp_dir" ] || case $exp_dir in /*) ;; *) exp_dir=$PWD/$exp_dir ;; esac
[ -z "$results" ] || case $results in /*) ;; *) results=$PWD/$results ;; esac
cd "$(dirname "$0")"
config=${config:-conf/cassnat_$config_name.yaml}
model=cassnat_$config_name
exp=${exp_dir:-exp/$model}
results=${results:-RESULTS.md}   # the default setup's; 960h writes RESULTS_cassnat_960h.md
[ "$config_name" = 100h ] || [ "$results" != RESULTS.md ] || results=RESULTS_$model.md
device=cuda; [ "$ngpu" -ge 1 ] || device=cpu
mkdir -p "$data_dir" "$exp"

if in_stages 0 && [ ! -f "$data_dir/manifests/.done_$config_name" ]; then
  echo "stage 0: manifests of $parts"
  casnat prepare librispeech "$corpus" "$data_dir/manifests" --parts "$parts" --num-jobs $nj
  touch "$data_dir/manifests/.done_$config_name"
fi

# Stage 2: the experiment's copy of the config, with data/ pointing at --data-dir; DDP on > 1 GPU.
train_model() {
  sed "s#\([ :]\)data/fbank/#\1$data_dir/fbank/#g" "$config" > "$exp/train.yaml"
  if [ "$ngpu" -gt 1 ]; then
    torchrun --standalone --nproc_per_node=$ngpu -m casnat.bin.train --config "$exp/train.yaml" \
      --exp-dir "$exp" --resume
  else
    casnat train --config "$exp/train.yaml" --exp-dir "$exp" --resume --device $device
  fi
}

recipe=librispeech
manifests=$data_dir/manifests
fbank=$data_dir/fbank
train_config=$config   # stage 1 takes the front end from its features: section
features_done=         # a marker per set: 100h and 960h share the data dir and its dev/test sets
feature_sets="dev dev_clean dev_other test_clean test_other"
dev_sets="dev_clean dev_other"
device_opts="--device $device"
decode_opts="--num-samples $num_samples"
hardware="device $device, $(nproc) CPU cores, torch threads $bench_threads"
run_stages
