#!/usr/bin/env bash
# Sourced by recipes. `decode_modes EXP_DIR [MODE ...]` prints the modes EXP_DIR's model can run,
# as its config.yaml says (`casnat decode --list-modes`): with no MODE, the modes the registry
# (casnat/decode/modes.py) marks as recipe defaults; otherwise those of the given MODEs the model
# has, in the given order. A CTC model gets ctc_greedy, an AT model adds at_beam, a CASS-NAT
# model adds cassnat and cassnat_esa (and at_beam when it has an AT ranker). `--modes` on a
# recipe overrides the default; stage 3 asks for the modes it selects the checkpoint average on.
decode_modes() {
  local exp=$1 supported m out=""
  shift
  if [ $# -eq 0 ]; then
    casnat decode --exp-dir "$exp" --list-modes --recipe-defaults
    return
  fi
  supported=" $(casnat decode --exp-dir "$exp" --list-modes) " || return 1
  for m in "$@"; do
    if [[ $supported == *" $m "* ]]; then out+="${out:+ }$m"; fi
  done
  echo "$out"
}
