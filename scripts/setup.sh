#!/usr/bin/env bash
# Creates .venv (Python 3.10+) and installs tb_layerview with the given extras
# (tensorflow, jax, torch: Keras backends; test, demo), plus the system
# packages the browser tests need.
# Usage: scripts/setup.sh [tensorflow|jax|torch|test|demo]...
set -euo pipefail
cd "$(dirname "$0")/.."

extras=$(IFS=,; echo "$*")
need=()
if [[ ",$extras," == *",test,"* ]]; then
  [ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing system packages: ${need[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($python --version 2>&1)"
  "$python" -m venv .venv
fi
echo "== installing tb_layerview${extras:+[$extras]} into .venv"
.venv/bin/python -m pip install -q --upgrade pip
if [[ ",$extras," == *",torch,"* ]]; then
  # PyTorch's CPU build: the default wheel of a plain "torch" carries several
  # GB of CUDA libraries that CPU training does not use.
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
# A regular (non-editable) install: the tests and the demo run against the
# package as users get it, frontend assets included.
.venv/bin/python -m pip install -q ".${extras:+[$extras]}"
