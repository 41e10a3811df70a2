"""Host side of trusted runs: a program (the verifier) in a private view of a sandbox, on the pristine image.

:func:`launch` starts ``trusted.py`` (see its docstring for what the program sees) for a backend that knows
the sandbox's host pid, the image's layer directories and a mount point under the sandbox's read-only
control mount. Both backends use it; they differ only in where those come from.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ltenv.sandbox.base import ExecResult, run_bounded

TRUSTED = str(Path(__file__).with_name("trusted.py"))
CAP_WAKE_ALARM = 35
"""The one capability a trusted program holds beyond the agent's: inert inside a user namespace and harmless
outside one, it makes the program's permitted set exceed the agent's, so the kernel refuses the agent's
processes access to its ``/proc/PID/{root,cwd,fd,mem,environ}`` (ptrace access mode checks)."""
DOCKER_DEFAULT_CAPS = (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31)
"""Docker's default capability set (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP): what the agent has in a container."""
VIEW_MOUNT = ".v"
"""Name of the (empty) directory under the control mount where a trusted view's root is mounted."""


@dataclass
class TrustedJob:
    """What to run in the private view."""

    script: str
    """Shell script to run (a path inside the view, e.g. ``/tests/test.sh``)."""
    files: bytes
    """A tar extracted at the view's root before the script starts (e.g. ``tests/...``)."""
    env: dict[str, str]
    """The program's whole environment (nothing is inherited from the agent)."""
    workdir: str
    timeout: float
    args: list[str] = field(default_factory=list)
    view_files: dict[str, str] = field(default_factory=dict)
    """Text files placed in ``/.ltenv-verifier/`` (e.g. ``boot.py``)."""
    fresh_dirs: tuple[str, ...] = ()
    """Directories that start empty and writable besides ``/tests`` and ``/logs/verifier``."""
    collect: tuple[str, ...] = ("/logs/verifier",)
    """Files (or folders, walked) that come back in :attr:`TrustedRun.files` once every process of the view is
    gone."""
    max_output: int = 1 << 20


@dataclass
class TrustedRun(ExecResult):
    files: dict[str, bytes] = field(default_factory=dict)
    """Collected files by path in the view."""
    reports: list[dict] = field(default_factory=list)
    """One per pytest session run through the pristine Python (counts, exit status, failing tests)."""
    runtime: dict = field(default_factory=dict)
    """What ran: the pristine shell, loader and Python entry points."""
    error: str | None = None
    """Why the view could not be set up (the program did not run)."""


@functools.cache
def static_busybox() -> str | None:
    """A statically linked busybox on this machine (Debian: ``busybox-static``), or ``None``.

    It runs the verifier's command shims without any program of the agent's (every dynamically linked program
    would load the sandbox's dynamic loader). Without it only the shell and Python are pristine."""
    for path in (
        os.environ.get("LTENV_BUSYBOX"),
        shutil.which("busybox"),
        "/bin/busybox",
        "/usr/bin/busybox",
    ):
        if not path or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if head[:4] == b"\x7fELF" and b"ld-linux" not in head and b"ld-musl" not in head:
            return os.path.realpath(path)
    return None


@functools.cache
def _shim_writer_digest() -> str:
    """Part of the command-shim cache key: the code that writes them (a change to it means new shims)."""
    return hashlib.sha256((Path(__file__).with_name("trusted.py")).read_bytes()).hexdigest()


def _shim_cache(layers: list[str], path: str) -> dict[str, str]:
    """Where this image's command shims are cached on the host (written by the first verification)."""
    from ltenv.sandbox.images import cache_dir

    key = hashlib.sha256(
        json.dumps([_shim_writer_digest(), layers, path, static_busybox()]).encode()
    ).hexdigest()[:24]
    root = cache_dir() / "verifier-shims"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return {}
    return {"dir": str(root), "key": key}


def launch(
    job: TrustedJob,
    *,
    pid: int,
    layers: list[str],
    scratch: Path,
    mount_point: str,
    caps: tuple[int, ...],
    cgroup_procs: list[str] = (),  # type: ignore[assignment]
    seccomp: str = "",
    idmap: bool = False,
) -> TrustedRun:
    """Run ``job`` in a private view of the sandbox whose process ``pid`` (a host pid) is inside it.

    ``layers``: the image's layer directories, top first. ``scratch``: an empty host directory for mounting
    them. ``mount_point``: an existing directory in the sandbox that the agent cannot change (under the
    read-only control mount). ``caps``: the program's capabilities. ``seccomp``: a compiled filter the program
    runs under (the agent's). ``idmap``: show the layers through the sandbox's user namespace's id map (a
    namespace whose root is not host root).
    """
    scratch.mkdir(parents=True, exist_ok=True)
    config = {
        "pid": pid,
        "layers": layers,
        "scratch": str(scratch),
        "mount_point": mount_point,
        "caps": sorted(caps),
        "cgroup_procs": list(cgroup_procs),
        "seccomp": seccomp,
        "idmap": idmap,
        "script": job.script,
        "args": job.args,
        "env": job.env,
        "workdir": job.workdir,
        "timeout": job.timeout,
        "view_files": job.view_files,
        "fresh_dirs": list(job.fresh_dirs),
        "collect": list(job.collect),
        "busybox": static_busybox() or "",
        "shims": _shim_cache(layers, job.env.get("PATH", "")),
    }
    job_r, job_w = os.pipe()
    res_r, res_w = os.pipe()
    try:
        popen = subprocess.Popen(
            [sys.executable, "-I", "-S", TRUSTED, str(job_r), str(res_w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(job_r, res_w),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    finally:
        os.close(job_r)
        os.close(res_w)
    result_chunks: list[bytes] = []

    def _read_result() -> None:
        with os.fdopen(res_r, "rb") as f:
            result_chunks.append(f.read())

    reader = threading.Thread(target=_read_result, daemon=True)
    reader.start()
    with os.fdopen(job_w, "wb") as f, contextlib.suppress(BrokenPipeError):
        f.write(json.dumps(config).encode())
    res = run_bounded(popen, stdin=job.files, timeout=job.timeout + 30, max_output=job.max_output)
    reader.join(timeout=10)
    raw = b"".join(result_chunks)
    run = TrustedRun(**{f: getattr(res, f) for f in ExecResult.__dataclass_fields__})
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not data:
        run.error = (
            "the verifier's launcher ended without a result: " + res.stderr.decode(errors="replace")[-500:]
        )
        return run
    if data.get("error"):
        run.error = data["error"]
        run.exit_code = int(data.get("exit_code", 125))
        return run
    run.exit_code = int(data["exit_code"])
    run.timed_out = bool(data.get("timed_out")) or res.timed_out
    run.files = {k: bytes.fromhex(v) for k, v in data.get("files", {}).items()}
    run.reports = list(data.get("reports", []))
    run.runtime = dict(data.get("runtime", {}))
    return run
