#!/usr/bin/env bash
# Install the Debian TTS engines synth_en uses (espeak-ng, flite, festival + two voices, sox).
# Idempotent: installs only what is missing; uses sudo only when not root.
set -euo pipefail
pkgs=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k sox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_tts.sh: all TTS packages already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_tts.sh: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
