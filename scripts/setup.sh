#!/usr/bin/env bash
# One-time (idempotent) set-up for a fresh Debian/Ubuntu machine; sourced by demo.sh and test.sh.
#   - system packages, where missing and we are root: bubblewrap, the Docker engine (docker.io), debootstrap,
#     fuse-overlayfs, busybox-static (the verifier's command shims), passt (allow_internet networking), libseccomp2, chromium (headless, tests of the HTML report)
#   - starts dockerd in the background if no engine answers
#   - a virtualenv in .venv with the project installed (editable) and its dev tools
# Environment: LTENV_VENV (default .venv), PYTHON (default python3), LTENV_SKIP_SYSTEM=1 to skip apt and dockerd.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LTENV_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

install_system() {
  local missing=()
  command -v bwrap >/dev/null || missing+=(bubblewrap)
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v fuse-overlayfs >/dev/null || missing+=(fuse-overlayfs)
  [ -x /bin/busybox ] || missing+=(busybox-static)  # static: runs the verifier's pristine command shims
  command -v pasta >/dev/null || missing+=(passt)  # user-mode networking for allow_internet sandboxes
  /sbin/ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing+=(libseccomp2)  # the syscall filter
  command -v chromium >/dev/null || missing+=(chromium)  # headless, for the HTML report's tests
  command -v g++ >/dev/null || missing+=(g++)  # DeepSpeed compiles its ops just in time
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      log "missing system packages: ${missing[*]} (not root: install them yourself; docker-backed steps will skip)"
      return 0
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" iptables ca-certificates >/dev/null
  fi
}

start_docker() {
  command -v docker >/dev/null || return 0
  if docker info >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
    log "no Docker engine answers and we cannot start one; image builds will be unavailable"
    return 0
  fi
  log "starting dockerd"
  local logf="${LTENV_DOCKERD_LOG:-/var/log/ltenv-dockerd.log}"
  nohup setsid dockerd >"$logf" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then log "dockerd is up"; return 0; fi
    sleep 0.5
  done
  log "dockerd did not come up; last lines of $logf:"; tail -20 "$logf" >&2 || true
  return 1
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.ltenv-installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
  # torch: the CPU build by default (a plain `torch` would pull the multi-GB CUDA build); GPU users set
  # LTENV_TORCH to a spec of their choice, e.g. LTENV_TORCH="torch==2.13.0" with their index configured.
  # deepspeed: DS_BUILD_OPS=0 installs it without compiling ops (they build just in time, see below)
  DS_BUILD_OPS=0 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -e "$ROOT[dev,hf,ray,deepspeed]" "${LTENV_TORCH:-torch==2.13.0}"
  # Compile now the op every DeepSpeed run on CPU loads (shared-memory collectives, ~40 s on 2 cores) rather
  # than inside the first training run; on a GPU machine this builds nothing.
  log "compiling DeepSpeed's CPU op (once, about a minute on 2 cores)"
  "$VENV/bin/python" - <<'PY' >/dev/null 2>&1 || log "DeepSpeed's CPU comm op did not build (DeepSpeed on CPU will retry)"
from deepspeed.accelerator import get_accelerator

if get_accelerator().device_name() == "cpu":
    get_accelerator().create_op_builder("ShareMemCommBuilder").load(verbose=False)
PY
  echo "$want" >"$stamp"
}

if [ "${LTENV_SKIP_SYSTEM:-0}" != 1 ]; then
  install_system
  start_docker
fi
install_python
export PATH="$VENV/bin:$PATH"
