#!/usr/bin/env bash
# Sourced by recipes. `decode_modes EXP_DIR [MODE ...]` prints those of the given modes (default:
# the recipes' ctc_greedy at_beam cassnat cassnat_esa) that EXP_DIR's model can run, as its
# config.yaml says: a CTC model gets ctc_greedy, an AT model adds at_beam, a CASS-NAT model adds
# cassnat and cassnat_esa (and at_beam when it has an AT ranker). `--modes` on a recipe overrides
# the default; stage 3 asks for the modes it selects the checkpoint average on.
decode_modes() {
  local exp=$1 supported m out=""
  shift
  local want=("$@")
  [ $# -gt 0 ] || want=(ctc_greedy at_beam cassnat cassnat_esa)
  supported=" $(casnat decode --exp-dir "$exp" --list-modes) " || return 1
  for m in "${want[@]}"; do
    if [[ $supported == *" $m "* ]]; then out+="${out:+ }$m"; fi
  done
  echo "$out"
}
