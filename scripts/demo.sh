#!/usr/bin/env bash
# The main job: set up everything (system packages where missing and root, dockerd, the venv), then run
# `ltenv demo`: on CPU, with nothing downloaded, a tiny Qwen3-architecture model built locally learns
# procedural terminal tasks through the real pipeline -- oracle rollouts on training seeds, SFT export,
# training/sft.py, evaluation on held-out seeds, rollouts of the SFT model, multi-turn preference pairs,
# training/dmpo.py, evaluation again -- and prints pass@1 per family for the untrained, SFT and DMPO models
# with the seconds of every stage. Outputs go to ${LTENV_DEMO_OUT:-runs/demo}; a rerun resumes.
# Extra arguments go to `ltenv demo` (e.g. --quick, --fresh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec ltenv demo --out "${LTENV_DEMO_OUT:-runs/demo}" "$@"
