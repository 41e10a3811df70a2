"""The daemonless default backend: bubblewrap over an image's cached layers with a per-episode overlay.

Per episode:

* an overlayfs (kernel as root; ``fuse-overlayfs`` rootless) stacks the image's cached layers read-only
  under a fresh upper dir, so writes never touch the cache and cost nothing to throw away;
* ``bwrap`` starts a keeper process in new user (uid 0 inside, mapped to the caller), pid, mount, ipc,
  uts, cgroup and — unless the task allows internet — network namespaces, with every capability dropped;
* programs (the agent's shell, the verifier) join those namespaces through ``nsexec.py``, which drops
  capabilities again, so the verifier sees the agent's files, processes and loopback services;
* a cgroup limits memory, pids and cpu where cgroups are writable.

Nothing is written on the host inside the agent-controlled filesystem after the agent starts: files go in
with ``tar`` run *inside* the sandbox, so symlinks planted by the agent resolve inside it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import itertools
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import weakref
from pathlib import Path

from ltenv.errors import SandboxError
from ltenv.fdwait import wait_fds
from ltenv.sandbox import confine, disk, janitor, kernel, netguard
from ltenv.sandbox.base import (
    DEFAULT_ENV,
    ExecResult,
    PtyProcess,
    PtyRequest,
    Sandbox,
    SandboxSpec,
    run_bounded,
)
from ltenv.sandbox.images import PreparedImage, lower_dirs
from ltenv.sandbox.limits import CgroupLimits
from ltenv.sandbox.trusted_run import DOCKER_DEFAULT_CAPS

log = logging.getLogger(__name__)

_CAP_NAMES = {
    0: "CAP_CHOWN", 1: "CAP_DAC_OVERRIDE", 3: "CAP_FOWNER", 4: "CAP_FSETID", 5: "CAP_KILL", 6: "CAP_SETGID",
    7: "CAP_SETUID", 8: "CAP_SETPCAP", 10: "CAP_NET_BIND_SERVICE", 13: "CAP_NET_RAW", 18: "CAP_SYS_CHROOT",
    27: "CAP_MKNOD", 29: "CAP_AUDIT_WRITE", 31: "CAP_SETFCAP",
}  # fmt: skip

NSEXEC = str(Path(__file__).with_name("nsexec.py"))
NSEXEC_BOOT = (
    "import os,sys;o=os.environ.pop('LTENV_NSEXEC').split('\\x1f');sys.path.insert(0,o[0]);"
    "sys.argv=[o[0]+'/nsexec.py',*o[1:],*sys.argv[1:]];import nsexec;nsexec.main()"
)
"""What ``python -c`` runs for a launch: nsexec.py with the options from ``LTENV_NSEXEC``."""
CTL_MOUNT = "/run/ltenv"
MNT_DETACH = 2
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
_live: weakref.WeakSet[BwrapSandbox] = weakref.WeakSet()
_gc_done = False


def runtime_dir() -> Path:
    env = os.environ.get("LTENV_RUNTIME_DIR")
    return Path(env) if env else Path(f"/tmp/ltenv-{os.geteuid()}")


def bwrap_available() -> str | None:
    """Why the bwrap backend cannot run here, or ``None`` if it can."""
    if sys.platform != "linux":
        return "bubblewrap sandboxes need Linux"
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    if os.geteuid() != 0 and not shutil.which("fuse-overlayfs"):
        return "rootless use needs fuse-overlayfs (apt-get install fuse-overlayfs)"
    return None


def _mount_overlay(lower: list[str], upper: Path, work: Path, merged: Path) -> str:
    """Mount the episode's root. Returns the unmount method ("kernel" or "fuse")."""
    opts = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    if os.geteuid() == 0:
        if len(opts) > 4000:
            raise SandboxError(f"too many image layers for one overlay mount ({len(lower)})")
        if _libc.mount(b"overlay", str(merged).encode(), b"overlay", 0, opts.encode()) != 0:
            err = ctypes.get_errno()
            raise SandboxError(
                f"mounting the overlay root failed: {os.strerror(err)} (options: {opts[:300]})"
            )
        return "kernel"
    proc = subprocess.run(["fuse-overlayfs", "-o", opts, str(merged)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"fuse-overlayfs failed: {proc.stderr.strip()}")
    return "fuse"


def _mount_idmapped_overlay(lower: list[str], upper: Path, work: Path, merged: Path, userns: int) -> str:
    """The episode's root as root of a driver: an overlay of the layers (top first) seen through the sandbox
    user namespace's id map, so the image's files belong to the sandbox's root and writes land in ``upper``
    owned by the unprivileged host ids. Layers go in as descriptors: no option-length limit."""
    fds: list[int] = []
    try:
        for layer in lower:
            fds.append(kernel.idmapped_tree(layer, userns))
        mount_fd = kernel.overlay(fds, str(upper), str(work))
        try:
            kernel.attach(mount_fd, str(merged))
        finally:
            os.close(mount_fd)
    except OSError as e:
        raise SandboxError(f"mounting the overlay root failed: {e}") from e
    finally:
        for fd in fds:
            os.close(fd)
    return "kernel"


def _umount(merged: Path, method: str) -> None:
    if method == "kernel":
        if _libc.umount2(str(merged).encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):
                log.warning("unmounting %s failed: %s", merged, os.strerror(err))
    elif method == "fuse":
        subprocess.run(["fusermount3", "-u", "-z", str(merged)], capture_output=True)


def _rmtree(path: Path) -> None:
    def onerror(func, p, exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_tag() -> str:
    """``PID.START``: the driving process, by pid and start time (a pid alone can be reused)."""
    return f"{os.getpid()}.{janitor.proc_start(os.getpid())}"


def _owner_gone(tag: str) -> bool:
    """Whether the process an episode folder's name starts with (``PID.START``, or a bare ``PID`` from older
    versions) no longer exists. Folders whose names are neither are left alone."""
    pid, _, start = tag.partition(".")
    if not pid.isdigit():
        return False
    if start.isdigit():
        return janitor.proc_start(int(pid)) != int(start)
    return not _pid_alive(int(pid))


def gc_stale(verbose: bool = False) -> int:
    """Unmount and delete episode directories (and cgroups) left by processes that died without closing."""
    root = runtime_dir()
    removed = 0
    with contextlib.suppress(OSError):
        disk.gc_scratch(verbose)
    if not root.is_dir():
        return 0
    for d in root.iterdir():
        if not d.is_dir():
            continue
        if not _owner_gone(d.name.split("-", 1)[0]):
            continue
        _umount(d / "merged", "kernel" if os.geteuid() == 0 else "fuse")
        limits = CgroupLimits.attach(d.name)
        if limits is not None:
            limits.destroy()
        _rmtree(d)
        removed += 1
        if verbose:
            log.info("removed stale sandbox %s", d)
    return removed


def _open_pty(rows: int, cols: int, echo: bool) -> tuple[int, int]:
    """A new terminal (master non-blocking, slave) of the given size, with input echo on or off."""
    master, slave = os.openpty()
    termios.tcsetwinsize(slave, (rows, cols))
    if not echo:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


def _descendants(root_pid: int) -> list[int]:
    """Host pids of every descendant of ``root_pid`` (a process's first child right after it)."""
    children = _children_map()
    out, stack = [], [root_pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def _children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the host."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(entry.name))
    return children


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (from /proc/PID/task/PID/children where the kernel has it)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):
            return _children_map().get(pid, [])
        return []


def _read_until_eof(fd: int, timeout: float, limit: int = 65536) -> bytes:
    """Up to ``limit`` bytes from ``fd`` until end of file or ``timeout`` seconds, never blocking longer (a
    process elsewhere may still hold the pipe's write end)."""
    os.set_blocking(fd, False)
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < limit:
        left = deadline - time.monotonic()
        if left <= 0 or not wait_fds([fd], [], left)[0]:
            break
        try:
            chunk = os.read(fd, limit - len(out))
        except BlockingIOError:
            continue
        if not chunk:
            break
        out += chunk
    return out


def _kill_tree(pids: list[int]) -> None:
    for p in reversed(pids):
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """Gone or a zombie (we are not its parent, so we cannot wait for it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")


class BwrapPty(PtyProcess):
    def __init__(self, popen: subprocess.Popen, fd: int):
        self.popen = popen
        self.fd = fd

    def poll(self) -> int | None:
        return self.popen.poll()

    def _program_pid(self) -> int | None:
        # nsexec forks once: its only child is the program on the terminal.
        kids = _descendants(self.popen.pid)
        return kids[0] if kids else None

    def kill_children(self) -> int:
        prog = self._program_pid()
        pids = _descendants(prog) if prog is not None else []
        _kill_tree(pids)
        return len(pids)

    def kill(self) -> None:
        _kill_tree(_descendants(self.popen.pid))
        with contextlib.suppress(OSError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class KeeperPty(BwrapPty):
    """The program the sandbox's keeper started on the terminal (bwrap -> init -> keeper -> program).

    The terminal is the controlling terminal of bwrap's session: closing its last descriptor would hang it up
    and send SIGHUP to bwrap, ending the sandbox. So :meth:`kill` kills the program and everything it started
    but hands the descriptor to ``held`` (the sandbox closes those when it closes): a shell restarted after
    ``exec bash`` or ``exec 1>&-`` never takes the sandbox down."""

    def __init__(self, fd: int, pid: int, held: list[int] | None = None):
        self.fd = fd
        self._pid = pid
        self._killed = False
        self._held = held

    def _program_pid(self) -> int | None:
        return self._pid

    def poll(self) -> int | None:
        # The keeper and bwrap also hold the terminal, so it never reports EOF: look at the process instead.
        return 0 if self._killed or _exited(self._pid) else None

    def kill(self) -> None:
        _kill_tree([self._pid, *_descendants(self._pid)])
        self._killed = True
        if self.fd >= 0:
            if self._held is not None:
                self._held.append(self.fd)
            else:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
            self.fd = -1


class _Spawner:
    """Host side of the in-sandbox spawner (``nsexec.py --serve``): starts programs by request."""

    def __init__(self, sock: socket.socket, launcher: subprocess.Popen):
        self.sock = sock
        self.launcher = launcher
        self._send_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.launcher.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], wd: str, *, stdin: bool) -> _SpawnedProcess | None:
        """Start ``argv``; a Popen look-alike for :func:`run_bounded`, or ``None`` if the spawner is gone."""
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, status
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (st_r, st_w) = pipes
        if not stdin:
            os.close(in_w)
            in_w = -1
        msg = json.dumps({"argv": argv, "env": env, "wd": wd}).encode()
        try:
            with self._send_lock:
                socket.send_fds(self.sock, [msg], [in_r, out_w, err_w, st_w])
        except OSError:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w, st_r, st_w):
                if fd >= 0:
                    os.close(fd)
            return None
        finally:
            for fd in (in_r, out_w, err_w, st_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        proc = _SpawnedProcess(self, in_w, out_r, err_r, st_r)
        if proc.pid <= 0:  # no pid line: the spawner died with the request
            proc.close_all()
            return None
        return proc

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(OSError), self._send_lock:
            self.sock.send(json.dumps({"kill": pid, "sig": int(sig)}).encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.launcher.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait()
        if self.launcher.stderr:
            self.launcher.stderr.close()


class _SpawnedProcess:
    """A program started by the spawner, with the parts of :class:`subprocess.Popen` run_bounded uses."""

    def __init__(self, spawner: _Spawner, stdin: int, stdout: int, stderr: int, status: int):
        self.spawner = spawner
        self.stdin = os.fdopen(stdin, "wb", buffering=0) if stdin >= 0 else None
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self.stderr = os.fdopen(stderr, "rb", buffering=0)
        self._status = status
        self._buf = b""
        self.returncode: int | None = None
        line = self._line(10.0)
        self.pid = int(line) if line is not None and line.strip().isdigit() else -1

    def _line(self, timeout: float | None) -> bytes | None:
        """The next line of the status pipe; ``None`` on timeout; ``b""`` at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, _ = wait_fds([self._status], [], wait)
            if not r:
                return None
            chunk = os.read(self._status, 64)
            if not chunk:
                line, self._buf = self._buf, b""
                return line
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _ended(self, line: bytes) -> int:
        # No status line means the spawner died with the program: reported like a lost launcher (125).
        self.returncode = int(line) if line.strip().isdigit() else 125
        with contextlib.suppress(OSError):
            os.close(self._status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            line = self._line(0.0)
            if line is not None:
                self._ended(line)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            line = self._line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired("spawned program", timeout or 0)
            self._ended(line)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # A timed-out program is killed with its process group, as the launcher did.
        self.spawner.kill(self.pid, signal.SIGKILL if sig == signal.SIGTERM else sig)

    def kill(self) -> None:
        self.spawner.kill(self.pid, signal.SIGKILL)

    def close_all(self) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.returncode is None:
            self._ended(b"")


class BwrapSandbox(Sandbox):
    """A bubblewrap sandbox over a :class:`PreparedImage`.

    Example:
        >>> sb = BwrapSandbox(ImageStore().prepare(task), SandboxSpec())   # doctest: +SKIP
        >>> with sb: print(sb.exec(["echo", "hi"]).stdout)                 # doctest: +SKIP
        b'hi\\n'
    """

    def __init__(self, image: PreparedImage, spec: SandboxSpec | None = None):
        self.image = image
        self.spec = spec or SandboxSpec()
        self.dir: Path | None = None
        self._mount = ""
        self._proc: subprocess.Popen | None = None
        self._keeper_w: int | None = None
        self._child_pid = 0
        self._limits: CgroupLimits | None = None
        self._timer: threading.Timer | None = None
        self._closed = False
        self._staged: Path | None = None
        self._stage_seq = 0
        self.primary_pty: BwrapPty | None = None
        self._lock = threading.Lock()
        self._spawn: _Spawner | None = None
        self.expired = False
        self._pasta: int | None = None
        self._dns_forward = False
        self._disk: disk.Scratch | None = None
        self._janitor_key = ""
        self._held_fds: list[int] = []  # terminals whose hangup would signal bwrap: closed last
        env = dict(DEFAULT_ENV)
        env.update(image.config.env)
        env.update(self.spec.env)
        self.env = env

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, pty: PtyRequest | None = None) -> None:
        """Start the sandbox. With ``pty``, also start that program on a terminal (see :attr:`primary_pty`):
        its launcher boots while the sandbox comes up, which takes its cost off the reset path."""
        global _gc_done
        if self._proc is not None:
            return
        why = bwrap_available()
        if why:
            raise SandboxError(why)
        if not _gc_done:
            _gc_done = True
            with contextlib.suppress(OSError):
                gc_stale()
        root = runtime_dir()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{_owner_tag()}-{next(_counter)}-{secrets.token_hex(3)}"
        self.dir = root / name
        for sub in ("merged", "ctl"):
            (self.dir / sub).mkdir(parents=True)
        _live.add(self)
        try:
            # The episode's writes go to a filesystem of the task's storage size: a runaway write ends with
            # ENOSPC inside the sandbox, not on the host's disk.
            self._disk = disk.Scratch.create(self.dir / "disk", self.spec.storage_mb)
            for sub in ("upper", "work"):
                (self._disk.path / sub).mkdir()
            if confine.confined():
                # bwrap runs as the sandbox's root (an unprivileged host uid): it must pass through these
                # folders to bind the root and the control mount; names are unguessable, nothing is listable.
                os.chmod(root, 0o711)
                os.chmod(self.dir, 0o711)
                os.chmod(self.dir / "ctl", 0o755)
                first = confine.subid_range()[0]
                os.chown(self._disk.path / "upper", first, first)
            self._start(name, pty)
        except BaseException:
            self.close()
            raise
        self._janitor_key = name
        procs = [self._proc.pid, self._pasta] if self._proc is not None else [self._pasta]
        janitor.register(
            name,
            procs=[[p, janitor.proc_start(p)] for p in procs if p],
            cgroup=name if self._limits else "",
            mounts=[str(self.dir / "merged")] * (self._mount == "kernel")
            + [str(m) for m in (self._disk.mounts if self._disk else [])],
            dir=str(self.dir),
        )

    def _start(self, name: str, pty: PtyRequest | None) -> None:
        assert self.dir is not None
        merged = self.dir / "merged"
        lower = lower_dirs(self.image.layers)
        if not lower:
            raise SandboxError(f"image {self.image.image_id} has no layers")
        confined = confine.confined()
        owner = None
        if confined:
            userns = confine.sandbox_userns()
            owner = confine.subid_range()[0]
            self._mount = _mount_idmapped_overlay(lower, self._upper, self._disk_dir / "work", merged, userns)
        else:
            self._mount = _mount_overlay(lower, self._upper, self._disk_dir / "work", merged)
        self._prepare_root(merged, owner)

        self._limits = CgroupLimits.create(
            name, memory_mb=self.spec.memory_mb, pids=self.spec.pids_limit, cpus=self.spec.cpus
        )
        args = [
            "--bind", str(merged), "/",
            "--proc", "/proc",
            # Docker's floor: kernel settings and the sysrq trigger read-only (the sysctl files show the
            # reader's own namespaces), /sys an empty read-only folder.
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
            "--tmpfs", "/sys", "--remount-ro", "/sys",
            "--dev", "/dev",
            "--ro-bind", str(self.dir / "ctl"), CTL_MOUNT,
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net",
            "--hostname", self.spec.hostname,
            "--chdir", self.spec.workdir,
        ]  # fmt: skip
        # Root in the sandbox holds Docker's default capabilities, scoped to the sandbox's user namespace.
        args += ["--cap-drop", "ALL", *(a for c in DOCKER_DEFAULT_CAPS for a in ("--cap-add", _CAP_NAMES[c]))]
        if not confined:  # rootless: bwrap maps the caller's uid to root in a namespace of its own
            args += ["--unshare-user", "--uid", "0", "--gid", "0"]
        if self.spec.allow_internet and os.path.exists("/etc/resolv.conf"):
            own = confine.sandbox_resolv_conf(Path("/etc/resolv.conf").read_text(errors="replace"))
            if own is None:
                args += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
            else:  # the host's resolver is on its loopback: pasta forwards DNS (only) to it
                (self.dir / "ctl" / "resolv.conf").write_text(own)
                args += ["--ro-bind", str(self.dir / "ctl" / "resolv.conf"), "/etc/resolv.conf"]
                self._dns_forward = True
        seccomp_fd = os.open(self._seccomp_path(), os.O_RDONLY | os.O_CLOEXEC)
        info_r, info_w = os.pipe()
        keeper_r, keeper_w = os.pipe()
        args_r, args_w = os.pipe()
        passed = (info_w, args_r, seccomp_fd)  # descriptors bwrap inherits: the terminal must not land on one
        master = slave = tty_fd = None
        # The keeper announces itself: bwrap writes --info-fd before the child has finished pivoting into the
        # new root, so joining its namespaces earlier could land in a half-built sandbox. With a pty request
        # the keeper then runs that program on the terminal itself (no launcher on the reset path) and keeps
        # the sandbox alive after it exits, for the verifier.
        keeper = "echo ready"
        if pty is not None:
            master, slave = _open_pty(pty.rows, pty.cols, pty.echo)
            # POSIX sh only redirects single-digit descriptors: the terminal goes to a fixed one in the child.
            # It is placed there by _child_setup (dup2 in the child), never reserved in this process: a
            # low descriptor number here may belong to another thread and be closed at any moment.
            tty_fd = next(d for d in (9, 8, 7, 6, 5) if d not in passed)
            assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in pty.env.items())
            redirs = f"<&{tty_fd} >&{tty_fd} 2>&{tty_fd} {tty_fd}>&-"
            keeper += f"; {assigns} {shlex.join(pty.argv)} {redirs}; exec {tty_fd}>&-"
        keeper += "; read _ignored; exit 0"
        args += ["--seccomp", str(seccomp_fd), "--info-fd", str(info_w)]
        # Options travel through a pipe: the sandbox's process list shows "bwrap --args N", no host paths.
        data = b"".join(a.encode() + b"\0" for a in args)
        if len(data) > 60000:
            raise SandboxError("bwrap's arguments exceed a pipe's buffer")
        os.write(args_w, data)
        os.close(args_w)
        argv = ["bwrap", "--args", str(args_r), "--", "/bin/sh", "-c", keeper]
        procs_files = self._limits.procs_files if self._limits else []
        ctty = slave
        userns_fd = confine.sandbox_userns() if confined else -1

        def _child_setup() -> None:  # runs in the child between fork and exec: raw syscalls only
            pid = str(os.getpid()).encode()
            for f in procs_files:
                fd = os.open(f, os.O_WRONLY)
                os.write(fd, pid)
                os.close(fd)
            if userns_fd >= 0:  # bwrap starts as the sandbox's root: an unprivileged host uid
                if kernel.libc.setns(userns_fd, kernel.CLONE_NEWUSER) != 0:
                    os._exit(125)
                kernel.become_root()
            # Descriptors reach bwrap by inheritance: every descriptor Python opens is close-on-exec, so
            # only these (and stdio) survive the exec. subprocess's pass_fds is not used on purpose:
            # it needs each number open in this process at fork time, which a single-digit terminal
            # number cannot promise in a process whose other threads open and close descriptors.
            os.set_inheritable(info_w, True)
            os.set_inheritable(args_r, True)
            os.set_inheritable(seccomp_fd, True)
            if ctty is not None:  # the terminal becomes the sandbox session's controlling terminal
                os.setsid()
                fcntl.ioctl(ctty, termios.TIOCSCTTY, 0)
                if ctty != tty_fd:
                    os.dup2(ctty, tty_fd)  # the copy is inheritable
                else:  # dup2 onto itself would keep close-on-exec
                    os.set_inheritable(tty_fd, True)

        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=keeper_r,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=False,
                env=self.env if pty is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=_child_setup,
            )
        except BaseException:
            if master is not None:
                os.close(master)
            raise
        finally:
            os.close(info_w)
            os.close(keeper_r)
            os.close(args_r)
            os.close(seccomp_fd)
            if slave is not None:
                os.close(slave)
        self._keeper_w = keeper_w
        try:
            self._await_ready(info_r)
            if self.spec.allow_internet:
                self._connect_network()
            if master is not None:
                self.primary_pty = KeeperPty(master, self._keeper_child(), self._held_fds)
        except BaseException:
            if master is not None and self.primary_pty is None:
                os.close(master)
            raise
        if self.spec.lifetime_sec:
            self._timer = threading.Timer(self.spec.lifetime_sec, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _connect_network(self) -> None:
        """``allow_internet``: the sandbox keeps its own network namespace, connected to the outside through
        user-mode networking (pasta). The host's network namespace is never shared: its loopback services
        stay out of reach."""
        assert self.dir is not None
        why = netguard.guard()  # pasta's connections to the host's own addresses are refused
        if why is not None:
            netguard.warn_unguarded(why)
        try:
            self._pasta = confine.start_pasta(
                f"/proc/{self._child_pid}/ns/net",
                self.dir / "pasta.pid",
                userns=f"/proc/{self._child_pid}/ns/user",
                dns_forward=self._dns_forward,
            )
        except OSError as e:
            raise SandboxError(
                f"the task allows internet access, but connecting its sandbox failed: {e}"
            ) from e

    def _await_ready(self, info_r: int) -> None:
        assert self._proc is not None
        with os.fdopen(info_r, "rb") as f:
            raw = f.read()
        if not raw:
            raise SandboxError(f"bwrap failed to start: {self._failure_output()}")
        self._child_pid = int(json.loads(raw)["child-pid"])
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        self._proc.stdout.close()
        if ready.strip() != b"ready":
            raise SandboxError(
                f"the sandbox did not come up (no /bin/sh in the image?): {self._failure_output()}"
            )

    def _keeper_child(self, timeout: float = 10.0) -> int:
        """Host pid of the program the keeper starts right after announcing itself."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            keeper = _children(self._child_pid)
            program = _children(keeper[0]) if keeper else []
            if program:
                return program[0]
            if self._proc is None or self._proc.poll() is not None:
                break
            time.sleep(0.0005)
        raise SandboxError(f"the sandbox's terminal program did not start: {self._failure_output()}")

    def _failure_output(self, timeout: float = 5.0) -> str:
        """What bwrap said on stderr. It is waited for ``timeout`` seconds; one still running then (a keeper
        whose terminal program never ran waits for its stdin forever) is killed with all it started, and
        stderr is read without blocking, so a failed start never hangs its caller."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_all()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=timeout)
        if self._proc.stderr is None or self._proc.stderr.closed:
            return ""
        return _read_until_eof(self._proc.stderr.fileno(), timeout=1.0).decode(errors="replace").strip()

    def _prepare_root(self, merged: Path, owner: int | None = None) -> None:
        """Before the agent exists: working directory and the files a container runtime would provide, owned
        by the sandbox's root (host uid ``owner`` where the sandbox's ids are mapped)."""
        made: list[Path] = []
        wd = merged / self.spec.workdir.lstrip("/")
        if not wd.is_symlink() and not wd.exists():
            parent = wd
            while not parent.parent.exists():
                parent = parent.parent
            wd.mkdir(parents=True, exist_ok=True)
            made += [wd, *[p for p in wd.parents if p.is_relative_to(parent)]]
        etc = merged / "etc"
        if etc.is_dir() and not etc.is_symlink():
            hosts = etc / "hosts"
            if not hosts.is_symlink() and (not hosts.exists() or hosts.stat().st_size == 0):
                hosts.write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{self.spec.hostname}\n")
                made.append(hosts)
            hostname = etc / "hostname"
            if not hostname.is_symlink():
                hostname.write_text(self.spec.hostname + "\n")
                made.append(hostname)
        if owner is not None:
            for path in made:
                # The overlay shows idmapped layers: the sandbox's root is host uid `owner` on the upper layer.
                os.chown(path, owner, owner, follow_symlinks=False)

    @staticmethod
    def _seccomp_path() -> Path:
        return confine.seccomp_file(runtime_dir())

    def _expire(self) -> None:
        self.expired = True
        log.warning("sandbox %s reached its lifetime of %ss; killing it", self.dir, self.spec.lifetime_sec)
        self._kill_all()

    def _kill_all(self) -> None:
        if self._limits is not None:
            self._limits.kill_all()
        if self._proc is not None and self._proc.poll() is None:
            _kill_tree(_descendants(self._proc.pid))
            with contextlib.suppress(OSError):
                self._proc.kill()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._closed

    def exit_reason(self) -> str:
        if self._closed:
            return "the sandbox was closed"
        if self.expired:
            return f"it reached its lifetime of {self.spec.lifetime_sec:g}s"
        if self._proc is not None and self._proc.poll() is not None:
            return f"bwrap exited with {self._proc.returncode}"
        return "the sandbox is running"

    @property
    def oom_killed(self) -> bool:
        return bool(self._limits and self._limits.oom_killed())

    def resource_events(self) -> dict[str, int]:
        """Limit hits so far (see :meth:`Sandbox.resource_events`); the cgroup outlives the sandbox's death
        until :meth:`close`, so a death by exhaustion is still visible."""
        return (self._limits.events() or {}) if self._limits is not None else {}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.primary_pty is not None:  # started but never taken by a session
            self.primary_pty.kill()
            self.primary_pty = None
        if self._spawn is not None:
            self._spawn.close()
        self._kill_all()
        if self._pasta is not None and self.dir is not None:
            confine.stop_pasta(self._pasta, self.dir / "pasta.pid")
            self._pasta = None
        if self._keeper_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._keeper_w)
            self._keeper_w = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            if self._proc.stderr:
                self._proc.stderr.close()
        for fd in self._held_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held_fds.clear()
        if self._limits is not None:
            self._limits.destroy()
        if self.dir is not None:
            if self._disk is not None:
                self._disk.discard()  # what the agent wrote is not written back to the host on unmount
            if self._mount:
                _umount(self.dir / "merged", self._mount)
            if self._disk is not None:
                self._disk.release()
            _rmtree(self.dir)
        if self._janitor_key:
            janitor.unregister(self._janitor_key)
        _live.discard(self)

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------ running things inside
    def _check(self) -> None:
        if self._closed or self._proc is None:
            raise SandboxError("sandbox is closed" if self._closed else "sandbox not started")
        if self._proc.poll() is not None:
            raise SandboxError(f"sandbox is dead ({self.exit_reason()})")

    def _launcher(
        self, argv: list[str], workdir: str | None, tty: bool, serve: int | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and extra environment of an ``nsexec.py`` launch. Its options (host paths among
        them) travel in the environment, which the agent cannot read once the launcher has taken the
        sandbox's ids: its process list shows ``ltenv-nsexec`` and the program's own arguments only."""
        opts = ["--pid", str(self._child_pid), "--wd", workdir or self.spec.workdir]
        opts += ["--seccomp", str(self._seccomp_path()), "--caps", ",".join(map(str, DOCKER_DEFAULT_CAPS))]
        if serve is not None:
            opts += ["--serve", str(serve)]
        if tty:
            opts.append("--tty")
        for f in self._limits.procs_files if self._limits else []:
            opts += ["--cgroup-procs", f]
        env = {"LTENV_NSEXEC": "\x1f".join([os.path.dirname(NSEXEC), *opts])}
        return ["ltenv-nsexec", "-I", "-S", "-c", NSEXEC_BOOT, "--", *argv], env

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
        self._check()
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        popen = self._spawner().spawn(argv, full_env, workdir or self.spec.workdir, stdin=stdin is not None)
        if popen is None:  # the spawner is gone (killed from inside?): a launcher per program still works
            cmd, extra = self._launcher(argv, workdir, tty=False)
            popen = subprocess.Popen(
                cmd,
                executable=sys.executable,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**full_env, **extra},
            )
        res = run_bounded(popen, stdin=stdin, timeout=timeout, max_output=max_output)
        if res.exit_code in (125, 126) and b"ltenv-nsexec:" in res.stderr and not self.alive:
            raise SandboxError(f"sandbox died: {res.stderr.decode(errors='replace').strip()}")
        if not self.alive:
            raise SandboxError(f"sandbox is dead ({self.exit_reason()})")
        return res

    def _spawner(self) -> _Spawner:
        """The in-sandbox spawner (started on first use): a program launch costs a fork, not a launcher."""
        with self._lock:
            if self._spawn is None or not self._spawn.alive:
                if self._spawn is not None:
                    self._spawn.close()
                parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                cmd, extra = self._launcher([], None, tty=False, serve=child.fileno())
                try:
                    launcher = subprocess.Popen(
                        cmd,
                        executable=sys.executable,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        pass_fds=(child.fileno(),),
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra},
                    )
                finally:
                    child.close()
                self._spawn = _Spawner(parent, launcher)
            return self._spawn

    def spawn_pty(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        rows: int = 40,
        cols: int = 160,
        echo: bool = True,
    ) -> BwrapPty:
        self._check()
        return self._spawn_pty(argv, env, rows, cols, echo)

    def _spawn_pty(
        self, argv: list[str], env: dict[str, str] | None, rows: int, cols: int, echo: bool
    ) -> BwrapPty:
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        master, slave = _open_pty(rows, cols, echo)
        cmd, extra = self._launcher(argv, None, tty=True)
        try:
            popen = subprocess.Popen(
                cmd,
                executable=sys.executable,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**full_env, **extra},
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return BwrapPty(popen, master)

    def stage_file(self, data: bytes) -> str | None:
        """Write ``data`` to the read-only control mount (host side) and return its path in the sandbox."""
        self._check()
        assert self.dir is not None
        ctl = self.dir / "ctl"
        self._stage_seq += 1
        name = f"cmd{self._stage_seq}"  # per sandbox: a reset replays the same names
        path = ctl / name
        tmp = ctl / f".{name}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o444)
        tmp.rename(path)
        if self._staged is not None:
            with contextlib.suppress(OSError):
                self._staged.unlink()
        self._staged = path
        return f"{CTL_MOUNT}/{name}"

    def trusted_unavailable(self) -> str | None:
        return None

    def run_trusted(self, job):
        from ltenv.sandbox.trusted_run import CAP_WAKE_ALARM, VIEW_MOUNT, launch

        self._check()
        assert self.dir is not None
        (self.dir / "ctl" / VIEW_MOUNT).mkdir(exist_ok=True)
        return launch(
            job,
            pid=self._child_pid,
            layers=lower_dirs(self.image.layers),
            scratch=self.dir / "pristine",
            mount_point=f"{CTL_MOUNT}/{VIEW_MOUNT}",
            # the agent's set plus one: the agent's processes then lack a capability the verifier's have, so
            # the kernel refuses them its /proc/PID/{root,fd,mem} (ptrace access needs a superset)
            caps=(*DOCKER_DEFAULT_CAPS, CAP_WAKE_ALARM),
            cgroup_procs=self._limits.procs_files if self._limits else [],
            seccomp=str(self._seccomp_path()),
            idmap=confine.confined(),
        )

    @property
    def upper_dir(self) -> Path | None:
        """Host path of the episode's copy-on-write layer (what the episode changed), for inspection."""
        return self._upper if self.dir is not None and self._disk is not None else None

    @property
    def _disk_dir(self) -> Path:
        assert self._disk is not None
        return self._disk.path

    @property
    def _upper(self) -> Path:
        return self._disk_dir / "upper"


@atexit.register
def _close_all() -> None:
    for sb in list(_live):
        with contextlib.suppress(Exception):
            sb.close()
