#!/usr/bin/env bash
# Sets up everything and runs the demo: TensorBoard with the Layer View tab,
# serving while several models train with the LayerView callback.
# Extra arguments go to demo/run_demo.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh tensorflow demo
exec .venv/bin/python demo/run_demo.py "$@"
