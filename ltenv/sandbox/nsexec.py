"""Run a program inside the namespaces of a running bwrap sandbox, with every capability dropped.

This file is executed as a standalone script (``python -I -S nsexec.py ...``), never imported by the
package at run time: forking a fresh interpreter keeps the namespace switching out of the (possibly
multi-threaded) caller. It does what ``nsenter`` does, then drops the capabilities that entering the
sandbox's user namespace grants, so processes it starts have exactly the privileges of the agent's shell.

Usage::

    python -I -S nsexec.py --pid PID [--wd DIR] [--tty] [--cgroup-procs FILE]... -- ARGV...

``PID`` is the host pid of a process inside the sandbox (bwrap's child). The program's exit status is
relayed; if this launcher is killed, the program dies with it (PR_SET_PDEATHSIG).
"""

import ctypes
import os
import signal
import sys

# Only ctypes is imported beyond built-ins: every extension module costs a dlopen on each launch.

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


def _parse(argv: list[str]) -> tuple[int, str, bool, list[str], list[str]]:
    pid, wd, tty, cgroups = 0, "/", False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return pid, wd, tty, cgroups, argv[i + 1 :]
        if a == "--pid":
            pid = int(argv[i + 1])
            i += 2
        elif a == "--wd":
            wd = argv[i + 1]
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


def _exec(cmd: list[str]) -> None:
    """execvp without os.execvp (which imports modules lazily: after the chroot they are not there)."""
    if "/" in cmd[0]:
        candidates = [cmd[0]]
    else:
        path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        candidates = [os.path.join(d or ".", cmd[0]) for d in path.split(":")]
    err = "not found"
    for c in candidates:
        try:
            os.execve(c, cmd, os.environ)
        except FileNotFoundError:
            continue
        except OSError as e:
            err = e.strerror or str(e)
    _die(f"cannot run {cmd[0]!r}: {err}", 127)


def main() -> None:
    pid, wd, tty, cgroups, cmd = _parse(sys.argv[1:])
    if not pid or not cmd:
        _die("usage: nsexec.py --pid PID [--wd DIR] [--tty] -- ARGV...", 2)
    libc = ctypes.CDLL(None, use_errno=True)

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

    for ns in NAMESPACES:
        # Joining the namespace we are already in fails with EINVAL for user namespaces: skip those.
        if os.fstat(fds[ns]).st_ino == os.stat(f"/proc/self/ns/{ns}").st_ino:
            continue
        if libc.setns(fds[ns], 0) != 0:
            _die(f"setns({ns}) failed: {os.strerror(ctypes.get_errno())}")

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
        for cap in range(last_cap + 1):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        if libc.capset(ctypes.byref(hdr), data) != 0:
            _die(f"capset failed: {os.strerror(ctypes.get_errno())}")
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
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
