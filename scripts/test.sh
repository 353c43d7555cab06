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
# so the installed package is what gets tested. Two workers (pytest-xdist):
# much of the suite waits on subprocesses, tensorboard and the browser, so a
# second worker uses the time one leaves idle. Tests sharing a module-scoped
# fixture carry an xdist_group marker and stay on one worker.
exec .venv/bin/pytest -n 2 --dist loadgroup "$@"
