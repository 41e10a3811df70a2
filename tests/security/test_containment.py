"""The containment suite: what an agent does inside a sandbox must not reach the host, on either backend, when
the driver runs as root. Each test is one attack, run for real in a real sandbox (a model under training or a
synthesized task would write the same commands). Resource exhaustion (fork bomb, memory) is in
test_resource_limits.py, disk quotas in test_disk_quota.py, task-folder links in test_task_folders.py.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ltenv

pytestmark = pytest.mark.slow

GREETING = "write-greeting"


def sh(sb, script: str, timeout: float = 60):
    res = sb.exec(["bash", "-c", script], timeout=timeout)
    return res.exit_code, (res.stdout + res.stderr).decode(errors="replace")


@pytest.fixture
def make_sandbox(backend, store, fixture_task):
    """Sandboxes of the greeting fixture on the backend under test, closed at the end. ``shell=True`` also
    returns a shell session on the terminal the sandbox starts with (as environments do)."""
    from ltenv.sandbox import create_sandbox
    from ltenv.terminal import ShellSession

    made = []

    def make(shell: bool = False, **overrides):
        overrides.setdefault("memory_mb", 512)
        overrides.setdefault("pids_limit", 256)
        sb = create_sandbox(fixture_task(GREETING), backend=backend, store=store, **overrides)
        made.append(sb)
        if not shell:
            sb.start()
            return sb
        session = ShellSession(sb, timeout=3)
        sb.start(pty=session.pty_request())
        session.start()
        return sb, session

    yield make
    for sb in made:
        sb.close()


def test_kernel_settings_are_read_only(sandbox):
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    _code, out = sh(
        sandbox,
        "for f in /proc/sys/kernel/core_pattern /proc/sys/kernel/domainname /proc/sys/vm/drop_caches "
        "/proc/sys/net/ipv4/ip_forward /proc/sysrq-trigger; do "
        "(echo '|/tmp/pwn %p' > $f) 2>/dev/null && echo WROTE $f; done; echo done",
    )
    assert "done" in out and "WROTE" not in out, out
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before


def test_sys_is_read_only(sandbox):
    _code, out = sh(
        sandbox,
        "for f in /sys/x /sys/kernel/x /sys/kernel/mm/transparent_hugepage/enabled /sys/module/x "
        "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do "
        "(echo 1 > $f) 2>/dev/null && echo WROTE $f; done; "
        "echo done",
    )
    assert "done" in out and "WROTE" not in out, out


PRIVILEGED_SYSCALLS = textwrap.dedent(
    """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    nr = {"unshare": 272, "mount": 165, "setns": 308, "add_key": 248, "keyctl": 250, "bpf": 321,
          "perf_event_open": 298, "init_module": 175, "kexec_load": 246, "open_by_handle_at": 304,
          "pivot_root": 155, "swapon": 167, "settimeofday": 164, "acct": 163}
    def attempt(name, *args):
        ret = libc.syscall(nr[name], *args)
        print(name, "OK" if ret >= 0 else "refused", ctypes.get_errno())
    attempt("unshare", 0x10000000)            # CLONE_NEWUSER
    attempt("unshare", 0x00020000)            # CLONE_NEWNS
    attempt("mount", b"none", b"/mnt", b"tmpfs", 0, None)
    fd = os.open("/proc/1/ns/mnt", os.O_RDONLY)
    attempt("setns", fd, 0)
    attempt("add_key", b"user", b"k", b"v", 1, ctypes.c_int(-3))
    attempt("keyctl", 0, ctypes.c_int(-3), 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
    attempt("bpf", 0, None, 0)
    attempt("perf_event_open", None, 0, -1, -1, 0)
    attempt("init_module", None, 0, b"")
    attempt("kexec_load", 0, 0, None, 0)
    attempt("open_by_handle_at", 3, None, 0)
    attempt("pivot_root", b"/", b"/tmp")
    attempt("swapon", b"/tmp/x", 0)
    attempt("settimeofday", None, None)
    attempt("acct", b"/tmp/acct")
    """
)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_privileged_syscalls_are_refused(sandbox):
    _code, out = sh(sandbox, f"python3 - <<'EOF'\n{PRIVILEGED_SYSCALLS}\nEOF")
    lines = [line for line in out.splitlines() if line.split()[:1] and line.split()[0].isidentifier()]
    assert len(lines) == 15, out
    assert all(" refused " in line for line in lines), out


def test_namespace_tools_fail(sandbox):
    _code, out = sh(
        sandbox,
        "unshare -U true 2>/dev/null && echo ESCAPED unshare; "
        "unshare -m true 2>/dev/null && echo ESCAPED unshare-m; "
        "nsenter -t 1 -m -u -n true 2>/dev/null && echo ESCAPED nsenter; "
        "mount -t tmpfs x /mnt 2>/dev/null && echo ESCAPED mount; "
        "mount -o remount,rw /proc/sys 2>/dev/null && echo ESCAPED remount; echo done",
    )
    assert "done" in out and "ESCAPED" not in out, out


def test_no_host_devices(sandbox):
    _code, out = sh(
        sandbox,
        "ls /dev; for d in /dev/sda /dev/vda /dev/nvme0n1 /dev/mem /dev/kmem /dev/port; do "
        "[ -e $d ] && echo PRESENT $d; done; "
        "mknod /tmp/disk b 253 0 2>/dev/null; head -c 1 /tmp/disk >/dev/null 2>&1 && echo READ-DISK; "
        "mknod /tmp/mem c 1 1 2>/dev/null; head -c 1 /tmp/mem >/dev/null 2>&1 && echo READ-MEM; echo done",
    )
    assert "done" in out, out
    assert "PRESENT" not in out and "READ-DISK" not in out and "READ-MEM" not in out, out


def test_host_files_and_processes_are_invisible(sandbox, tmp_path):
    marker = f"ltenv-secret-{secrets.token_hex(6)}"
    host_file = Path("/tmp") / marker
    host_file.write_text("host secret\n")
    try:
        _code, out = sh(
            sandbox,
            f"cat /tmp/{marker} 2>/dev/null && echo LEAKED; find / -xdev -name '{marker}' 2>/dev/null | "
            f"grep -q . && echo LEAKED-FIND; ls /proc | grep -c '^[0-9]'; "
            f"kill -0 {os.getpid()} 2>/dev/null && echo SEES-DRIVER; echo done",
        )
    finally:
        host_file.unlink()
    assert "done" in out and "LEAKED" not in out, out
    procs = int(out.split()[0])
    assert procs < 40, f"the sandbox sees {procs} processes: the host's?"


def test_process_list_shows_no_host_paths(sandbox):
    from ltenv.sandbox.bwrap import runtime_dir

    _code, out = sh(sandbox, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    project = str(Path(ltenv.__file__).resolve().parent.parent)
    assert str(runtime_dir()) not in out and project not in out, out


@pytest.mark.bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="the id mapping of bwrap sandboxes whose driver is root")
def test_agent_files_are_not_host_root_files(bwrap_ok, store, fixture_task):
    """bwrap only: Docker's default keeps the container's root as host root (without userns-remap)."""
    from ltenv.sandbox import create_sandbox

    sb = create_sandbox(fixture_task(GREETING), backend="bwrap", store=store, memory_mb=512, pids_limit=256)
    sb.start()
    try:
        _check_agent_files(sb)
    finally:
        sb.close()


def _check_agent_files(sb) -> None:
    code, out = sh(
        sb,
        "echo x > /app/agent-file && cp /bin/bash /app/suid-bash && chmod 4755 /app/suid-bash "
        "&& id -u && stat -c %u /app/agent-file",
    )
    assert code == 0 and out.split() == ["0", "0"], out  # root inside
    upper = sb.upper_dir
    for name in ("agent-file", "suid-bash"):
        st = (upper / "app" / name).stat()
        assert st.st_uid != 0 and st.st_gid != 0, f"{name} is owned by host root"
    # the image's own files, once copied up, are not host root's either
    sh(sb, "echo '# touched' >> /etc/passwd")
    assert (upper / "etc" / "passwd").stat().st_uid != 0


@pytest.fixture(params=["127.0.0.1", "0.0.0.0"], ids=["host-loopback", "host-all-addresses"])
def loopback_server(request):
    """A TCP server of the host's (on its 127.0.0.1 only, or on every address, as model servers often
    listen); records every connection it accepts."""
    srv = socket.socket()
    srv.bind((request.param, 0))
    srv.listen(16)
    srv.settimeout(0.2)
    accepted: list[tuple] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join(timeout=2)
    srv.close()


LOOPBACK_PROBE = textwrap.dedent(
    """
    import socket, struct, sys
    port = int(sys.argv[1])
    hosts = ["127.0.0.1", "localhost", "::1", *sys.argv[2:]]
    for line in open("/proc/net/route").read().splitlines()[1:]:  # the default gateway, whatever it is
        f = line.split()
        if f[1] == "00000000":
            hosts.append(socket.inet_ntoa(struct.pack("<I", int(f[2], 16))))
    for h in hosts:
        try:
            socket.create_connection((h, port), timeout=2).close()
            print("CONNECTED", h)
        except OSError:
            pass
    print("done")
    """
)


def _host_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [*out, "172.17.0.1", "10.0.2.2", "192.168.65.2"]


@pytest.mark.parametrize("allow_internet", [False, True], ids=["offline", "internet"])
def test_host_loopback_services_are_unreachable(make_sandbox, loopback_server, allow_internet):
    port, accepted = loopback_server
    sb = make_sandbox(allow_internet=allow_internet)
    hosts = " ".join(_host_addresses())
    _code, out = sh(sb, f"python3 - {port} {hosts} <<'EOF'\n{LOOPBACK_PROBE}\nEOF", timeout=120)
    assert "done" in out, out
    assert "CONNECTED" not in out and not accepted, (out, accepted)


def test_offline_task_has_no_network(make_sandbox):
    sb = make_sandbox(allow_internet=False)
    _code, out = sh(
        sb,
        "cat /proc/net/dev | awk 'NR>2 {print $1}'; timeout 5 bash -c 'echo > /dev/tcp/1.1.1.1/53' "
        "2>/dev/null && echo ONLINE; echo done",
    )
    assert "done" in out and "ONLINE" not in out, out
    interfaces = [x.rstrip(":") for x in out.split() if x.endswith(":")]
    assert interfaces == ["lo"], out


def test_shell_restart_after_exec_bash_keeps_the_sandbox(backend, make_sandbox):
    sb, shell = make_sandbox(shell=True)
    try:
        shell.run("echo marker > /tmp/state")
        for idiom in ("exec bash", "exec 1>&-"):
            shell.run(idiom)
            res = shell.run("sleep 30")  # a timeout: the session recovers, restarting its shell if needed
            assert res.timed_out
            assert sb.alive, f"the sandbox died after {idiom!r} and a timeout: {sb.exit_reason()}"
            after = shell.run("cat /tmp/state")
            assert after.output.strip() == "marker", after.output
    finally:
        shell.close()


def test_rm_rf_root_harms_only_the_episode(make_sandbox, tmp_path):
    marker = tmp_path / "host-file"
    marker.write_text("still here")
    sb = make_sandbox()
    sh(sb, "rm -rf --no-preserve-root / 2>/dev/null; true", timeout=120)
    assert marker.read_text() == "still here"
    fresh = make_sandbox()
    code, out = sh(fresh, "ls /bin/bash /usr/bin/python3 && cat /etc/hostname")
    assert code == 0, f"the image was damaged by an earlier episode: {out}"


def _host_pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def test_detached_processes_die_with_the_sandbox(make_sandbox):
    tag = str(900000 + secrets.randbelow(99999))
    sb = make_sandbox()
    sh(
        sb,
        f"setsid nohup sleep {tag} >/dev/null 2>&1 < /dev/null & "
        f"(sleep {tag}1 >/dev/null 2>&1 < /dev/null &) ; "
        f"python3 -c 'import os,time\nif os.fork()==0:\n os.setsid()\n if os.fork()==0: time.sleep({tag}2)' "
        ">/dev/null 2>&1 </dev/null; sleep 0.3; true",
    )
    assert len(_host_pids(f"sleep {tag}")) >= 2
    sb.close()
    deadline = time.monotonic() + 10
    while _host_pids(f"sleep {tag}") or _host_pids(f"time.sleep\\({tag}2"):
        assert time.monotonic() < deadline, "processes of a closed sandbox survived it"
        time.sleep(0.2)


DRIVER = """
import sys, time
from pathlib import Path
from ltenv.sandbox import create_sandbox
from ltenv.tasks import load_task
task = load_task(Path(sys.argv[1]))
sb = create_sandbox(task, backend=sys.argv[2], memory_mb=512, pids_limit=256, allow_internet=True)
sb.start()
sb.exec(["bash", "-c", f"setsid nohup sleep {sys.argv[3]} >/dev/null 2>&1 </dev/null & true"])
print("READY", getattr(sb, "dir", None) or "-", flush=True)
time.sleep(600)
"""


def _containers_of(task: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=ltenv.managed=1", "--filter", f"label=ltenv.task={task}"],
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def test_sandbox_dies_with_a_killed_driver(backend, store, tmp_path):
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"
    tag = str(800000 + secrets.randbelow(99999))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    before = set(_containers_of(GREETING)) if backend == "docker" else set()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(fixtures / GREETING), backend, tag],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("READY"), line
    sandbox_dir = line.split()[1]
    assert _host_pids(f"sleep {tag}")
    containers = set(_containers_of(GREETING)) - before if backend == "docker" else set()
    assert backend != "docker" or containers
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def left() -> bool:
        if _host_pids(f"sleep {tag}"):
            return True
        if backend == "docker":
            return bool(containers & set(_containers_of(GREETING)))
        return Path(sandbox_dir).exists() or sandbox_dir in Path("/proc/mounts").read_text()

    deadline = time.monotonic() + 30
    while left():
        assert time.monotonic() < deadline, (
            "the sandbox outlived its driver (processes, folder, mount, container)"
        )
        time.sleep(0.2)


def test_flooding_and_hung_commands_are_bounded(sandbox):
    t0 = time.monotonic()
    res = sandbox.exec(
        ["bash", "-c", "head -c 200000000 /dev/zero | tr '\\0' x"], timeout=60, max_output=1 << 20
    )
    assert len(res.stdout) <= (1 << 20) + 4096
    hung = sandbox.exec(["bash", "-c", "sleep 1000 & sleep 1000"], timeout=1)
    assert hung.timed_out and time.monotonic() - t0 < 60
    assert sandbox.alive
    assert sandbox.exec(["true"], timeout=10).exit_code == 0


def test_seccomp_filter_refuses_what_docker_refuses():
    """The compiled filter, loaded in a host process: namespace, mount, keyring and module calls fail with
    EPERM; ordinary calls work (the filter is an allowlist like Docker's default profile)."""
    from ltenv.sandbox import confine

    assert not {"mount", "unshare", "setns", "keyctl", "add_key", "bpf", "ptrace_attach"} & set(
        confine.ALLOWED_SYSCALLS
    )
    prog = confine.seccomp_program()
    code = textwrap.dedent(
        f"""
        import ctypes, os, sys
        sys.path.insert(0, {str(Path(confine.__file__).parent)!r})
        from kernel import load_seccomp
        load_seccomp(bytes.fromhex({prog.hex()!r}))
        libc = ctypes.CDLL(None, use_errno=True)
        print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
        print("mount", libc.mount(b"x", b"/mnt", b"tmpfs", 0, None), ctypes.get_errno())
        print("keyctl", libc.syscall(250, 0, -3, 0), ctypes.get_errno())
        print("getpid", os.getpid() > 0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["unshare"] == "-1 1" and lines["mount"] == "-1 1" and lines["keyctl"] == "-1 1", out
    assert lines["getpid"] == "True", out


def test_a_loopback_resolver_is_reached_through_dns_forwarding_only():
    """Hosts whose resolver listens on loopback (systemd-resolved) give allow_internet sandboxes a resolv.conf
    naming pasta's DNS forwarding address; any other resolver is used as it is."""
    from ltenv.sandbox.confine import DNS_FORWARD, sandbox_resolv_conf

    resolved = "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n"
    own = sandbox_resolv_conf(resolved)
    assert own is not None and own.splitlines()[0] == f"nameserver {DNS_FORWARD}"
    assert "options edns0 trust-ad" in own and "search corp.example" in own and "127.0.0.53" not in own
    assert sandbox_resolv_conf("nameserver ::1\n") is not None
    assert sandbox_resolv_conf("nameserver 10.255.255.53\n") is None
    assert sandbox_resolv_conf("nameserver 127.0.0.53\nnameserver 1.1.1.1\n") is None
    assert sandbox_resolv_conf("") is None


def test_the_agents_shell_holds_what_root_holds_in_a_docker_container(make_sandbox):
    """The shell the agent types into: root with Docker's default capabilities (on bwrap scoped to the
    sandbox's user namespace), so `chown` and `su` work as in a container; everything else is refused."""
    from ltenv.sandbox.trusted_run import DOCKER_DEFAULT_CAPS

    _sb, session = make_sandbox(shell=True)
    res = session.run(
        "grep CapEff /proc/$$/status; touch /tmp/f && chown nobody /tmp/f && stat -c %U /tmp/f; "
        "su -s /bin/sh nobody -c 'id -u; grep CapEff /proc/self/status'; mount -t tmpfs none /mnt || echo refused",
        timeout=30,
    )
    lines = res.output.split()
    assert f"{sum(1 << c for c in DOCKER_DEFAULT_CAPS):016x}" == lines[1], res.output
    assert lines[2:6] == ["nobody", "65534", "CapEff:", "0" * 16], res.output
    assert "refused" in res.output
