"""The sandbox protocol every backend implements, and the values it passes around."""

from __future__ import annotations

import abc
import functools
import io
import os
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ltenv.fdwait import wait_fds
from ltenv.output import HeadTailBuffer

DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "TERM": "xterm-256color",
    "LANG": "C.UTF-8",
    "USER": "root",
}


DEFAULT_STORAGE_MB = 10240
"""Disk a sandbox may fill when its task sets no ``storage_mb``: its writes beyond that fail with ``ENOSPC``."""


@dataclass
class SandboxSpec:
    """What a sandbox is started with. Backends read the fields they support."""

    workdir: str = "/app"
    """Working directory of the shell and of exec'd commands (created if missing)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment on top of the image's (which is on top of :data:`DEFAULT_ENV`)."""
    allow_internet: bool = False
    memory_mb: int = 2048
    cpus: float = 1.0
    pids_limit: int = 512
    storage_mb: int | None = DEFAULT_STORAGE_MB
    """Disk the sandbox may fill (its writable layer, ``/tmp`` included); ``None``: no limit."""
    lifetime_sec: float | None = None
    """Hard wall-clock limit: the sandbox is killed after this long, whatever runs in it."""
    hostname: str = "sandbox"


@dataclass
class PtyRequest:
    """A program to start on a terminal together with the sandbox (the agent's shell)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    rows: int = 40
    cols: int = 160
    echo: bool = True
    """Terminal echo of input (off for command mode: the shell's input is not output)."""


@dataclass
class ExecResult:
    """Outcome of :meth:`Sandbox.exec`. Output is bounded (head and tail kept)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    duration_s: float = 0.0
    stdout_dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def text(self) -> str:
        return (self.stdout + self.stderr).decode("utf-8", errors="replace")


class PtyProcess(abc.ABC):
    """A process attached to a terminal inside the sandbox; ``fd`` reads and writes the terminal's master side."""

    fd: int

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Exit status if the process has exited, else ``None``."""

    @abc.abstractmethod
    def kill_children(self) -> int:
        """SIGKILL every descendant of the process (not the process itself); returns how many."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the process and its descendants, and release the terminal."""


@dataclass(frozen=True)
class SandboxSetup:
    """What a task puts into its sandbox at start (``[environment] setup_files`` / ``setup_script``)."""

    task_name: str
    files_dir: Path | None = None
    """Host folder whose tree is copied to ``/`` (root-owned, modes kept; directories are not touched)."""
    script: Path | None = None
    """Host bash script run once as root in ``/`` after the files are copied."""
    script_label: str = "setup script"
    """How the script is named in errors (e.g. ``setup/setup.sh``)."""
    timeout: float = 120.0

    def __bool__(self) -> bool:
        return self.files_dir is not None or self.script is not None


SETUP_SCRIPT_PATH = "/tmp/.ltenv-setup.sh"


class Sandbox(abc.ABC):
    """An isolated Linux userland for one episode.

    Lifecycle: ``start()`` → any number of ``exec``/``spawn_pty``/``put``/``get`` → ``close()``.
    ``close()`` is idempotent and also runs at interpreter exit.

    A sandbox with a :attr:`setup` applies it at the end of ``start()``, whatever the backend: every
    backend's ``start`` is wrapped (see ``__init_subclass__``), so the files and the setup script are in
    place before ``start()`` returns, i.e. before the agent shell's first command, the oracle or the verifier.
    A failing setup closes the sandbox and raises :class:`~ltenv.errors.SandboxError` naming the task and
    the script's output tail.
    """

    spec: SandboxSpec
    env: dict[str, str]
    """The environment commands run with: :data:`DEFAULT_ENV`, then the image's, then :attr:`spec`'s."""
    primary_pty: PtyProcess | None = None
    """The program requested with ``start(pty=...)``, until a caller takes it."""
    setup: SandboxSetup | None = None
    """Applied once at the end of :meth:`start` (set by :func:`ltenv.sandbox.create_sandbox`)."""
    _setup_applied: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        start = cls.__dict__.get("start")
        if start is None or getattr(start, "_ltenv_applies_setup", False):
            return

        @functools.wraps(start)
        def start_then_setup(self, *args, **kw):
            start(self, *args, **kw)
            if self.setup and not self._setup_applied:
                self._setup_applied = True
                try:
                    self.apply_setup(self.setup)
                except BaseException:
                    self.close()
                    raise

        start_then_setup._ltenv_applies_setup = True  # type: ignore[attr-defined]
        cls.start = start_then_setup  # type: ignore[method-assign]

    def apply_setup(self, setup: SandboxSetup) -> None:
        """Copy ``setup.files_dir`` to ``/`` and run ``setup.script`` (called by ``start``)."""
        from ltenv.errors import SandboxError

        extra = {SETUP_SCRIPT_PATH.lstrip("/"): setup.script.read_bytes()} if setup.script is not None else {}
        data = _files_tar(setup.files_dir, extra)
        if data is not None:
            try:
                self._untar(data, "/")
            except SandboxError as e:
                raise SandboxError(f"task {setup.task_name}: copying the setup files failed: {e}") from None
        if setup.script is not None:
            res = self.exec(
                [
                    "/bin/bash",
                    "-c",
                    f'bash {SETUP_SCRIPT_PATH}; rc=$?; rm -f {SETUP_SCRIPT_PATH}; exit "$rc"',
                ],
                timeout=setup.timeout,
                workdir="/",
            )
            if not res.ok:
                why = f"timed out after {setup.timeout:g}s" if res.timed_out else f"exited {res.exit_code}"
                tail = res.text.strip()[-800:] or "(no output)"
                raise SandboxError(f"task {setup.task_name}: {setup.script_label} {why}:\n{tail}")

    @abc.abstractmethod
    def start(self, *, pty: PtyRequest | None = None) -> None:
        """Start the sandbox; with ``pty``, also start that program on a terminal as :attr:`primary_pty`."""

    @abc.abstractmethod
    def exec(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        max_output: int = 1 << 20,
    ) -> ExecResult:
        """Run ``argv`` to completion (or ``timeout``, then kill) and return its bounded output."""

    @abc.abstractmethod
    def spawn_pty(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        rows: int = 40,
        cols: int = 160,
        echo: bool = True,
    ) -> PtyProcess:
        """Start ``argv`` on a new pseudo-terminal inside the sandbox, as its controlling terminal."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def alive(self) -> bool: ...

    def exit_reason(self) -> str:
        """Why the sandbox is no longer running (meaningful once :attr:`alive` is ``False``)."""
        return "the sandbox is not running"

    def resource_events(self) -> dict[str, int]:
        """How often the sandbox has hit its own limits so far, from the kernel's counters: ``memory``
        (processes killed for exceeding ``memory_mb``), ``pids`` (forks refused at ``pids_limit``).

        Counts only grow; compare two readings to see whether a limit was hit in between. A limit the
        backend cannot observe is missing (empty where it observes none). Still meaningful after the
        sandbox died, so that a death by exhaustion can be told from one caused from outside.
        """
        return {}

    def trusted_unavailable(self) -> str | None:
        """Why :meth:`run_trusted` cannot run here, or ``None`` if it can."""
        return f"{type(self).__name__} has no private verifier view"

    def run_trusted(self, job):  # -> ltenv.sandbox.trusted_run.TrustedRun
        """Run ``job`` (a :class:`~ltenv.sandbox.trusted_run.TrustedJob`) in a private view of this sandbox: the
        agent's final filesystem, processes and network, with fresh ``/tests`` and ``/logs/verifier`` and the
        image as built at ``/.ltenv-verifier/image``, out of the agent's reach. See ``trusted.py``."""
        from ltenv.errors import SandboxError

        raise SandboxError(self.trusted_unavailable() or "not supported")

    def stage_file(self, data: bytes) -> str | None:
        """Make ``data`` readable (not writable) inside the sandbox cheaply; return its path, or ``None``
        if the backend has no fast path (callers then send the data another way)."""
        return None

    # -- files, built on exec + tar so that paths resolve *inside* the sandbox (symlinks included)
    def put(self, src: Path | str, dest: str, *, mode: int | None = None) -> None:
        """Copy a host file or directory to ``dest`` in the sandbox (a directory's contents go into ``dest``)."""
        src = Path(src)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            if src.is_dir():
                for p in sorted(src.rglob("*")):
                    if "__pycache__" in p.parts:
                        continue
                    tar.add(p, arcname=p.relative_to(src).as_posix(), recursive=False, filter=_root_owned)
                target_dir = dest
            else:
                info = tar.gettarinfo(str(src), arcname=os.path.basename(dest))
                info = _root_owned(info)
                if mode is not None:
                    info.mode = mode
                with open(src, "rb") as f:
                    tar.addfile(info, f)
                target_dir = os.path.dirname(dest) or "/"
        self._untar(buf.getvalue(), target_dir)

    def put_bytes(self, data: bytes, dest: str, *, mode: int = 0o644) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(dest))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self._untar(buf.getvalue(), os.path.dirname(dest) or "/")

    def _untar(self, data: bytes, target_dir: str) -> None:
        res = self.exec(
            ["/bin/sh", "-c", 'mkdir -p "$1" && exec tar -x -o -C "$1" -f -', "sh", target_dir],
            stdin=data,
            timeout=120,
            workdir="/",
        )
        if not res.ok:
            from ltenv.errors import SandboxError

            raise SandboxError(f"copying into the sandbox at {target_dir} failed: {res.text.strip()[-400:]}")

    def get(self, path: str, *, max_bytes: int = 16 << 20) -> bytes | None:
        """Contents of a regular file in the sandbox, or ``None`` if it does not exist."""
        res = self.exec(
            ["/bin/sh", "-c", '[ -f "$1" ] || exit 3; exec cat -- "$1"', "sh", path],
            timeout=60,
            workdir="/",
            max_output=max_bytes,
        )
        if res.exit_code == 3:
            return None
        if not res.ok:
            from ltenv.errors import SandboxError

            raise SandboxError(f"reading {path} from the sandbox failed: {res.text.strip()[-400:]}")
        return res.stdout

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def _files_tar(root: Path | None, extra: dict[str, bytes] | None = None) -> bytes | None:
    """A tar of the regular files and symlinks below ``root`` (root-owned, modes kept) plus ``extra``
    (relative path -> content, mode 0700), without directory entries so that existing directories in the
    sandbox keep their modes; ``None`` if there is nothing."""
    buf = io.BytesIO()
    n = 0
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, content in (extra or {}).items():
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(content), 0o700, int(time.time())
            tar.addfile(_root_owned(info), io.BytesIO(content))
            n += 1
        for dirpath, dirnames, filenames in os.walk(root) if root is not None else ():
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if not (p.is_file() or p.is_symlink()):
                    continue
                info = _root_owned(tar.gettarinfo(str(p), arcname=p.relative_to(root).as_posix()))
                if info.isreg():
                    with open(p, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                n += 1
    return buf.getvalue() if n else None


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def run_bounded(
    popen: subprocess.Popen,
    *,
    stdin: bytes | None,
    timeout: float | None,
    max_output: int,
    on_timeout=None,
) -> ExecResult:
    """Feed ``stdin``, drain stdout/stderr into bounded buffers, enforce ``timeout``; never buffers unboundedly."""
    t0 = time.monotonic()
    out, err = HeadTailBuffer(max_output), HeadTailBuffer(max(4096, max_output // 4))
    fds = {}
    if popen.stdout is not None:
        fds[popen.stdout.fileno()] = out
    if popen.stderr is not None:
        fds[popen.stderr.fileno()] = err
    pending = memoryview(stdin or b"")
    win = popen.stdin.fileno() if popen.stdin is not None else None
    if win is not None:
        os.set_blocking(win, False)
        if not pending:
            popen.stdin.close()
            win = None
    timed_out = False
    deadline = None if timeout is None else t0 + timeout
    exited_at = None
    while fds or win is not None:
        now = time.monotonic()
        wait = None if deadline is None else max(0.0, deadline - now)
        if wait == 0.0:
            timed_out = True
            break
        if popen.poll() is not None:
            # The process is gone but a background child may hold the pipes open: drain briefly, then stop.
            exited_at = exited_at or now
            if now - exited_at > 0.5:
                break
        wait = 0.05 if wait is None else min(wait, 0.05)
        r, w = wait_fds(list(fds), [win] if win is not None else [], wait)
        for fd in r:
            chunk = os.read(fd, 65536)
            if chunk:
                fds[fd].write(chunk)
            else:
                del fds[fd]
        if w:
            try:
                n = os.write(win, pending[:65536])
                pending = pending[n:]
            except BrokenPipeError:
                pending = pending[:0]
            if not pending:
                popen.stdin.close()
                win = None
    if timed_out:
        if on_timeout is not None:
            on_timeout()
        try:
            popen.send_signal(signal.SIGTERM)
            popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            popen.kill()
        # Whatever is still buffered is read without blocking.
        for fd, buf in fds.items():
            os.set_blocking(fd, False)
            try:
                while chunk := os.read(fd, 65536):
                    buf.write(chunk)
            except (BlockingIOError, OSError):
                pass
    code = popen.wait()
    for f in (popen.stdout, popen.stderr, popen.stdin):
        if f is not None and not f.closed:
            f.close()
    return ExecResult(
        exit_code=code if not timed_out else 124,
        stdout=out.getvalue(),
        stderr=err.getvalue(),
        timed_out=timed_out,
        duration_s=time.monotonic() - t0,
        stdout_dropped=out.dropped,
    )
