#!/usr/bin/env bash
# Kaldi-style option parsing for recipes: `--some-name value` sets the shell variable some_name,
# which must already be defined (a typo is an error, not a silently ignored flag).
while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --*=*) name=${1%%=*}; value=${1#*=} ;;
    --*) name=$1; value=${2:-}; [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }; shift ;;
    *) break ;;
  esac
  name=${name#--}; name=${name//-/_}
  if [ -z "${!name+x}" ]; then echo "$0: unknown option --${name//_/-}" >&2; exit 1; fi
  printf -v "$name" '%s' "$value"
  shift
done
