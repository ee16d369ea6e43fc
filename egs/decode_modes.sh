#!/usr/bin/env bash
# Sourced by recipes. `decode_modes EXP_DIR` prints the recipes' default decoding modes
# (ctc_greedy at_beam cassnat cassnat_esa) that EXP_DIR's model can run, as its config.yaml says:
# a CTC model gets ctc_greedy, an AT model adds at_beam, a CASS-NAT model adds cassnat and
# cassnat_esa (and at_beam when it has an AT ranker). `--modes` on a recipe overrides this.
decode_modes() {
  local supported m out=""
  supported=" $(casnat decode --exp-dir "$1" --list-modes) " || return 1
  for m in ctc_greedy at_beam cassnat cassnat_esa; do
    if [[ $supported == *" $m "* ]]; then out+="${out:+ }$m"; fi
  done
  echo "$out"
}
