"""Run a program inside the namespaces of a running bwrap sandbox, with the agent's capabilities only.

This file is executed as a standalone script (``python -I -S nsexec.py ...``), never imported by the
package at run time: forking a fresh interpreter keeps the namespace switching out of the (possibly
multi-threaded) caller. It does what ``nsenter`` does, then drops the capabilities that entering the
sandbox's user namespace grants down to ``--caps`` (the agent's set: Docker's default, which only ever applies
to what the sandbox's user namespace owns), so processes it starts have exactly the privileges of the agent's
shell.

Usage::

    python -I -S nsexec.py --pid PID [--wd DIR] [--tty] [--caps N,N,...] [--seccomp FILE] [--cgroup-procs FILE]... -- ARGV...
    python -I -S nsexec.py --pid PID --serve FD [--seccomp FILE] [--cgroup-procs FILE]... --

``PID`` is the host pid of a process inside the sandbox (bwrap's child). The program's exit status is
relayed; if this launcher is killed, the program dies with it (PR_SET_PDEATHSIG). Having joined the
sandbox's user namespace, the process takes its root ids (the namespace maps them to unprivileged host ids);
``--seccomp`` names a compiled filter (``confine.seccomp_file``) installed before the program starts.

With ``--serve FD`` (a SOCK_SEQPACKET unix socket), the process that entered the sandbox does not exec one
program: it stays, as a spawner inside the sandbox, and starts a program per request, so a launch costs a
fork instead of an interpreter start plus namespace entry. A request is one message: JSON
``{"argv": [...], "env": {...}, "wd": "/dir"}`` with four descriptors attached (stdin, stdout, stderr, and a
status pipe). The spawner writes the program's pid as a line to the status pipe at once and its exit status
(a shell-style code) as a second line when it ends. ``{"kill": PID, "sig": N}`` signals a program's process
group. The spawner exits when the other end of the socket closes.
"""

import ctypes
import os
import signal
import sys

# Only ctypes is imported beyond built-ins: every extension module costs a dlopen on each launch.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off sys.path
from kernel import become_root, load_seccomp

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
TIOCSCTTY = 0x540E
NAMESPACES = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _die(msg: str, code: int = 126) -> None:
    os.write(2, f"ltenv-nsexec: {msg}\n".encode())
    os._exit(code)


def _parse(argv: list[str]) -> tuple[int, str, bool, list[str], int, str, set[int], list[str]]:
    pid, wd, tty, cgroups, serve, seccomp, caps = 0, "/", False, [], -1, "", set()
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return pid, wd, tty, cgroups, serve, seccomp, caps, argv[i + 1 :]
        if a == "--pid":
            pid = int(argv[i + 1])
            i += 2
        elif a == "--serve":
            serve = int(argv[i + 1])
            i += 2
        elif a == "--wd":
            wd = argv[i + 1]
            i += 2
        elif a == "--seccomp":
            seccomp = argv[i + 1]
            i += 2
        elif a == "--caps":
            caps = {int(c) for c in argv[i + 1].split(",") if c}
            i += 2
        elif a == "--cgroup-procs":
            cgroups.append(argv[i + 1])
            i += 2
        elif a == "--tty":
            tty = True
            i += 1
        else:
            _die(f"unknown argument {a!r}", 2)
    _die("missing '--' before the command", 2)
    raise AssertionError


def _exec(cmd: list[str], env=None) -> None:
    """execvp without os.execvp (which imports modules lazily: after the chroot they are not there)."""
    env = os.environ if env is None else env
    if "/" in cmd[0]:
        candidates = [cmd[0]]
    else:
        path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        candidates = [os.path.join(d or ".", cmd[0]) for d in path.split(":")]
    err = "not found"
    for c in candidates:
        try:
            os.execve(c, cmd, env)
        except FileNotFoundError:
            continue
        except OSError as e:
            err = e.strerror or str(e)
    _die(f"cannot run {cmd[0]!r}: {err}", 127)


def _serve(sock_fd: int) -> None:
    """The spawner loop (see the module docstring). Runs inside the sandbox, capabilities already dropped."""
    # Already loaded by main() before the chroot (the host's modules are not visible after it).
    import json
    import select
    import socket

    sock = socket.socket(fileno=sock_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running: dict[int, int] = {}  # pid -> status fd
    # poll, not select: the inherited socket's number may be above select's limit of 1024
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        try:
            ready = {sock if fd == sock.fileno() else fd for fd, _ in poller.poll()}
        except InterruptedError:
            continue
        if wake_r in ready:
            os.read(wake_r, 4096)
        while running:  # reap whatever ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            fd = running.pop(pid, None)
            if fd is not None:
                code = os.waitstatus_to_exitcode(status)
                try:
                    os.write(fd, f"{128 - code if code < 0 else code}\n".encode())
                except OSError:
                    pass
                os.close(fd)
        if sock not in ready:
            continue
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except InterruptedError:
            continue
        if not msg:  # the host closed its end: the sandbox is being torn down
            os._exit(0)
        req = json.loads(msg)
        if "kill" in req:
            for target in (-int(req["kill"]), int(req["kill"])):
                try:
                    os.kill(target, int(req.get("sig", signal.SIGKILL)))
                except OSError:
                    pass
            continue
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        stdin, stdout, stderr, status_fd = fds
        child = os.fork()
        if child == 0:
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.dup2(stdin, 0)
                os.dup2(stdout, 1)
                os.dup2(stderr, 2)
                os.closerange(3, 65536)
                os.setsid()
                try:
                    os.chdir(req.get("wd") or "/")
                except OSError:
                    os.chdir("/")
                _exec(req["argv"], req["env"])
            finally:
                os._exit(127)
        for fd in (stdin, stdout, stderr):
            os.close(fd)
        os.write(status_fd, f"{child}\n".encode())
        running[child] = status_fd


def main() -> None:
    pid, wd, tty, cgroups, serve, seccomp, caps, cmd = _parse(sys.argv[1:])
    if not pid or not (cmd or serve >= 0):
        _die("usage: nsexec.py --pid PID [--wd DIR] [--tty] -- ARGV...", 2)
    libc = ctypes.CDLL(None, use_errno=True)
    if serve >= 0:  # everything the spawner needs, loaded before the chroot hides the host's modules
        import json
        import select  # noqa: F401
        import socket  # noqa: F401

        json.loads("{}")

    for procs in cgroups:
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as e:
            _die(f"cannot join cgroup {procs}: {e}")

    try:
        fds = {ns: os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in NAMESPACES}
        root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
    except OSError as e:
        _die(f"sandbox process {pid} is gone ({e})", 125)
    filter_prog = b""
    if seccomp:
        try:
            with open(seccomp, "rb") as f:
                filter_prog = f.read()
        except OSError as e:
            _die(f"cannot read the seccomp filter: {e}")

    for ns in NAMESPACES:
        # Joining the namespace we are already in fails with EINVAL for user namespaces: skip those.
        if os.fstat(fds[ns]).st_ino == os.stat(f"/proc/self/ns/{ns}").st_ino:
            continue
        if libc.setns(fds[ns], 0) != 0:
            _die(f"setns({ns}) failed: {os.strerror(ctypes.get_errno())}")
        if ns == "user":
            try:
                become_root()
            except OSError as e:
                _die(f"taking the sandbox's root ids failed: {e}")

    child = os.fork()  # the pid namespace applies to children only
    if child == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setsid()
        if tty and libc.ioctl(0, TIOCSCTTY, 0) != 0:
            _die(f"cannot take the terminal: {os.strerror(ctypes.get_errno())}")
        os.fchdir(root_fd)
        os.chroot(".")
        try:
            os.chdir(wd)
        except OSError:
            os.chdir("/")
        # The bounding set and the process's own sets keep ``caps`` only: a root program it starts gets exactly
        # those, any other uid none (as in a Docker container).
        for cap in range(last_cap + 1):
            if cap not in caps:
                libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for cap in caps:
            bit = 1 << (cap % 32)
            data[cap // 32].effective |= bit
            data[cap // 32].permitted |= bit
            data[cap // 32].inheritable |= bit
        if libc.capset(ctypes.byref(hdr), data) != 0:
            _die(f"capset failed: {os.strerror(ctypes.get_errno())}")
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if filter_prog:
            try:
                load_seccomp(filter_prog)
            except OSError as e:
                _die(f"installing the seccomp filter failed: {e}")
        if serve >= 0:
            _serve(serve)
        _exec(cmd)

    # Launcher: hold no terminal (so the PTY reports EOF when the program exits), relay signals, relay status.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)

    def _kill(signum, frame):
        try:
            os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _kill)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(125)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
