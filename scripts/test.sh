#!/usr/bin/env bash
# Sets up everything (virtualenv, Python packages, Chromium, Node.js) and runs
# the whole test suite: pure functions, real fits on TensorFlow, JAX and
# PyTorch, a fresh environment without TensorFlow, multi-process training,
# TensorBoard's data provider, real tensorboard processes, node unit tests and
# a real browser.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# All three Keras backends: the suite runs the callback on each of them.
bash scripts/setup.sh tensorflow jax torch test demo
# .venv/bin/pytest (not "python -m pytest") keeps the source tree off sys.path,
# so the installed package is what gets tested.
exec .venv/bin/pytest "$@"
