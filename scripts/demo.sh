#!/usr/bin/env bash
# The main job: set up everything, build every bundled task image (bootstrapping the Debian base image
# with debootstrap when no registry answers), validate the whole bundled suite (oracle passes, a do-nothing
# agent fails, twice each), then play one scripted episode through the Gymnasium environment and print it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
ltenv images export
ltenv validate --jobs "${LTENV_JOBS:-2}"
ltenv play "${LTENV_DEMO_TASK:-maze-shortest-paths}" --oracle
