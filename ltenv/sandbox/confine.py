"""What confines a bwrap sandbox when the driver runs as root: a user namespace mapped to subordinate ids, a
seccomp filter at least as strict as Docker's default profile, and user-mode networking that keeps the host's
loopback out of reach.

* **Ids.** Every sandbox of a driving process lives in one user namespace whose root is an unprivileged host
  uid (``0 -> BASE``, 65536 ids, from ``/etc/subuid``'s entry for the driver's user or :data:`DEFAULT_SUBID`).
  Image layers are shown to it through idmapped mounts (host uid ``u`` appears as ``u``), so the image's root
  files belong to the sandbox's root, while the kernel sees ``BASE + u``: writes to ``/proc/sys`` and other
  host-wide settings are refused, and files the agent creates are not owned by host root.
* **Syscalls.** :func:`seccomp_program` compiles (with libseccomp, through its Python bindings) an allowlist
  equal to Docker's default profile for a process without capabilities — new namespaces, mounts, keyrings,
  ``bpf``, ``perf_event_open``, kernel modules, clocks and reboots are refused with ``EPERM`` — minus
  ``io_uring``. bwrap installs it on the sandbox's first process; ``nsexec.py`` and ``trusted.py`` install it on
  everything they start, so the verifier and the oracle get the same.
* **Network.** :func:`start_pasta` connects an ``allow_internet`` sandbox's own network namespace to the
  outside through ``pasta`` (Debian's ``passt``): outbound connections work where the machine has them; the
  host's loopback, and host services bound to it, do not (no gateway mapping, no port forwarding either way).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_SUBID = (1_000_000_000, 65536)
"""Host ids for sandboxes when ``/etc/subuid`` has no range for the driver's user: far above any login user."""
ID_COUNT = 65536
PASTA_GID = 1_000_065_535
"""Host gid that ``pasta`` daemons run under (as root), so the host's firewall can refuse their connections to the
host's own addresses (:func:`ltenv.sandbox.netguard.guard`): the top of the default sandbox range, a group no
host process has."""

# Docker's default seccomp profile (moby profiles/seccomp/default.json), the rules that apply to a process
# with Docker's default capabilities, as data: syscalls allowed unconditionally, plus ``chroot`` (allowed with
# CAP_SYS_CHROOT, one of those capabilities). io_uring is left out (kernel surface that
# bypasses the filter for the operations it performs; programs fall back to ordinary calls).
ALLOWED_SYSCALLS = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 chroot clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr
fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64
futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat
renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl
shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat
stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice
wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace arch_prctl modify_ldt
""".split()  # noqa: SIM905  (data, easier to read and diff as words)
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40
CLONE_NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: refused in ``clone``, as Docker does."""

_lock = threading.Lock()
_userns: tuple[int, int] | None = None  # (pid of the process that made it, descriptor)


def subid_range() -> tuple[int, int]:
    """The host ids (first, count) sandboxes use: ``LTENV_SUBID`` (``FIRST:COUNT``), else the driver user's
    entry in ``/etc/subuid``, else :data:`DEFAULT_SUBID`."""
    env = os.environ.get("LTENV_SUBID")
    if env:
        first, _, count = env.partition(":")
        return int(first), int(count or ID_COUNT)
    names = {str(os.geteuid())}
    with contextlib.suppress(KeyError):
        names.add(pwd.getpwuid(os.geteuid()).pw_name)
    with contextlib.suppress(OSError):
        for line in Path("/etc/subuid").read_text().splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in names and int(parts[2]) >= ID_COUNT:
                return int(parts[1]), ID_COUNT
    return DEFAULT_SUBID


def confined() -> bool:
    """Whether sandboxes get the subordinate-id user namespace (the driver is root; rootless drivers are
    already unprivileged on the host and keep bwrap's own mapping)."""
    return os.geteuid() == 0


_MAKE_USERNS = (
    "import ctypes,os,sys\n"
    "if ctypes.CDLL(None,use_errno=True).unshare(0x10000000): sys.exit(1)\n"
    "os.write(1,b'x'); os.read(0,1)\n"
)


def sandbox_userns() -> int:
    """A descriptor of this process's sandbox user namespace (made on first use, kept open: the namespace
    lives as long as the descriptor or any process in it)."""
    global _userns
    with _lock:
        if _userns is not None and _userns[0] == os.getpid():
            return _userns[1]
        first, count = subid_range()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _MAKE_USERNS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            if proc.stdout.read(1) != b"x":
                raise OSError(
                    f"creating a user namespace failed: {proc.stderr.read().decode(errors='replace')}"
                )
            for kind in ("uid", "gid"):
                with open(f"/proc/{proc.pid}/{kind}_map", "w") as f:
                    f.write(f"0 {first} {count}\n")
            fd = os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        _userns = (os.getpid(), fd)
        return fd


def _build_filter():
    try:
        import seccomp  # libseccomp's own bindings (Debian: python3-seccomp)
    except ImportError:
        import pyseccomp as seccomp  # the same API through ctypes (PyPI)
    import errno

    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    if seccomp.system_arch() == seccomp.Arch.X86_64:  # 32-bit programs, as Docker allows them
        for arch in (seccomp.Arch.X86, seccomp.Arch.X32):
            with contextlib.suppress(Exception):
                f.add_arch(arch)
    allow = seccomp.ALLOW
    for name in ALLOWED_SYSCALLS:
        try:
            f.add_rule(allow, name)
        except Exception:  # not a syscall on this architecture
            continue
    for value in PERSONALITY_ALLOWED:
        f.add_rule(allow, "personality", seccomp.Arg(0, seccomp.EQ, value))
    f.add_rule(allow, "socket", seccomp.Arg(0, seccomp.NE, AF_VSOCK))
    f.add_rule(allow, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # glibc falls back to clone, which is checked
    return f


@functools.cache
def seccomp_program() -> bytes:
    """The compiled filter (classic BPF for this machine's architecture)."""
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        _build_filter().export_bpf(tmp)
        tmp.seek(0)
        return tmp.read()


FILTER_VERSION = "1"
"""Part of the compiled filter's cache key: bump when :func:`_build_filter` changes."""


@functools.cache
def _filter_key() -> str:
    """What the compiled filter depends on: the rules and this machine's architecture."""
    spec = [FILTER_VERSION, ALLOWED_SYSCALLS, PERSONALITY_ALLOWED, AF_VSOCK, CLONE_NAMESPACE_FLAGS]
    spec.append(os.uname().machine)
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


def seccomp_file(directory: Path) -> Path:
    """The compiled filter, written once per machine under ``directory`` (readable by the sandbox launchers).
    Compiling it takes about a second (hundreds of rules, three architectures), so every process after the
    first reads the file instead."""
    path = directory / f"seccomp-{_filter_key()}.bpf"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(seccomp_program())
        os.chmod(tmp, 0o444)
        tmp.rename(path)
    return path


DNS_FORWARD = "169.254.1.53"
"""Where a sandbox sends DNS queries when the host's resolver listens on its loopback (systemd-resolved's
127.0.0.53, dnsmasq): pasta forwards port 53 of this address, and nothing else, to the host's resolver."""


def sandbox_resolv_conf(host_text: str) -> str | None:
    """The ``resolv.conf`` an ``allow_internet`` sandbox needs, given the host's: ``None`` when the host's
    works as it is (a nameserver reachable from another network namespace), else the host's options and
    search list with :data:`DNS_FORWARD` as the only nameserver."""
    servers, others = [], []
    for line in host_text.splitlines():
        words = line.split()
        if words and words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words and not words[0].startswith(("#", ";")):
            others.append(line)
    if not servers or any(not _loopback(s) for s in servers):
        return None
    return "".join(f"{line}\n" for line in [f"nameserver {DNS_FORWARD}", *others])


def _loopback(addr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def pasta_available() -> str | None:
    """Why user-mode networking cannot run here, or ``None``."""
    return None if shutil.which("pasta") else "pasta is not installed (apt-get install passt)"


def start_pasta(netns: str, pidfile: Path, *, userns: str | None = None, dns_forward: bool = False) -> int:
    """Connect the network namespace at ``netns`` (a ``/proc/PID/ns/net`` path) to the outside. Returns the
    pid of the ``pasta`` daemon once the namespace's interface, address, route and DNS are up. ``userns``: the
    namespace's user namespace, for a driver that is not root (pasta joins it as its owner). ``dns_forward``:
    forward DNS queries to :data:`DNS_FORWARD` to the host's resolver (see :func:`sandbox_resolv_conf`)."""
    why = pasta_available()
    if why:
        raise OSError(why)
    cmd = [
        "pasta",
        "--config-net",
        "--no-map-gw",  # the gateway address is not the host: host loopback services stay unreachable
        "-t", "none", "-u", "none",  # nothing forwarded into the sandbox
        "-T", "none", "-U", "none",  # nothing forwarded from the sandbox to the host's loopback
        "--netns", netns,
        "-P", str(pidfile),
        "-q",
    ]  # fmt: skip
    if dns_forward:
        cmd += ["--dns-forward", DNS_FORWARD]
    if userns:
        cmd += ["--userns", userns]
    if os.geteuid() == 0:  # pasta isolates itself (own namespaces, no capabilities, its own seccomp filter)
        cmd += ["--runas", f"0:{PASTA_GID}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise OSError(f"pasta failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    for _ in range(200):
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().strip())
        time.sleep(0.005)
    raise OSError("pasta started but wrote no pid file")


def stop_pasta(pid: int, pidfile: Path) -> None:
    """Stop the daemon :func:`start_pasta` started (if ``pidfile`` still names it)."""
    try:
        if int(pidfile.read_text().strip()) != pid:
            return
    except (OSError, ValueError):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        pidfile.unlink()
