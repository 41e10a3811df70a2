"""The bwrap sandbox: isolation, limits, file transfer and cleanup, on a real image and real namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ltenv.sandbox.base import SandboxSpec
from ltenv.sandbox.bwrap import BwrapSandbox, gc_stale, runtime_dir

pytestmark = pytest.mark.bwrap


def _snapshot(paths) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under the image's layer dirs: what must never change."""
    out = {}
    for root in paths:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


def test_exec_runs_inside_with_image_config(sandbox):
    res = sandbox.exec(["bash", "-c", "pwd; id -u; hostname; cat seed.txt; echo $LANG"])
    assert res.ok, res.text
    assert res.stdout.decode().split("\n")[:5] == ["/app", "0", "sandbox", "seed-write-greeting", "C.UTF-8"]


def test_exit_codes_and_stderr(sandbox):
    res = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (res.exit_code, res.stdout, res.stderr) == (7, b"out\n", b"err\n")
    missing = sandbox.exec(["no-such-program"])
    assert missing.exit_code == 127 and b"no-such-program" in missing.stderr


def test_all_capabilities_dropped(sandbox):
    status = sandbox.exec(["cat", "/proc/self/status"]).stdout.decode()
    caps = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))
    assert caps["CapEff"].strip() == "0" * 16
    assert caps["CapBnd"].strip() == "0" * 16
    assert not sandbox.exec(["mount", "-t", "tmpfs", "none", "/mnt"]).ok


def test_network_is_off_by_default(sandbox):
    code = textwrap.dedent(
        """
        import socket
        s = socket.socket(); s.settimeout(2)
        try:
            s.connect(("1.1.1.1", 53)); print("CONNECTED")
        except OSError as e:
            print("ERR", e.errno)
        """
    )
    res = sandbox.exec(["python3", "-c", code])
    assert res.stdout.startswith(b"ERR"), res.text
    links = sandbox.exec(["ip", "-o", "link"]).stdout.decode().strip().splitlines()
    assert len(links) == 1 and ": lo:" in links[0]


def test_loopback_works(sandbox):
    code = (
        "import socket,threading;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();p=s.getsockname()[1];"
        "threading.Thread(target=lambda:s.accept()[0].sendall(b'pong'),daemon=True).start();"
        "c=socket.create_connection(('127.0.0.1',p));print(c.recv(4).decode())"
    )
    assert sandbox.exec(["python3", "-c", code]).stdout == b"pong\n"


def test_rm_rf_root_leaves_host_and_cache_intact(sandbox, greeting_image, tmp_path):
    sentinel = tmp_path / "host-sentinel"
    sentinel.write_text("still here")
    before = _snapshot(greeting_image.layers)
    res = sandbox.exec(
        ["bash", "-c", "rm -rf --no-preserve-root / 2>/dev/null; ls /usr/bin | wc -l"], timeout=120
    )
    assert res.stdout.strip() in (b"0", b"")  # the episode's root really is gone...
    assert sentinel.read_text() == "still here"  # ...the host is not
    assert _snapshot(greeting_image.layers) == before  # ...nor the shared layer cache
    with BwrapSandbox(greeting_image, SandboxSpec()) as fresh:
        assert fresh.exec(["cat", "/app/seed.txt"]).stdout == b"seed-write-greeting\n"


def test_fork_bomb_is_contained(sandbox):
    t0 = time.monotonic()
    res = sandbox.exec(["bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived"], timeout=20)
    assert time.monotonic() - t0 < 30
    if sandbox._limits is None:
        pytest.skip("cgroups are not writable here: no pids limit to test")
    assert len(sandbox._limits.pids()) <= sandbox.spec.pids_limit
    # The host is responsive and can still create processes.
    assert subprocess.run(["true"]).returncode == 0
    assert res is not None


def test_memory_limit_kills_hog(sandbox):
    if sandbox._limits is None:
        pytest.skip("cgroups are not writable here: no memory limit to test")
    res = sandbox.exec(["python3", "-c", "x = bytearray(2 * 1024**3); print('allocated')"], timeout=60)
    assert b"allocated" not in res.stdout
    assert res.exit_code != 0
    assert sandbox.exec(["echo", "alive"]).stdout == b"alive\n"


def test_flooding_exec_output_is_bounded(sandbox):
    res = sandbox.exec(["bash", "-c", "head -c 50000000 /dev/urandom"], max_output=4096, timeout=60)
    assert res.ok
    assert len(res.stdout) < 4096 + 100
    assert res.stdout_dropped > 49_000_000


def test_exec_timeout(sandbox):
    t0 = time.monotonic()
    res = sandbox.exec(["sleep", "30"], timeout=1)
    assert res.timed_out and res.exit_code == 124
    assert time.monotonic() - t0 < 6
    assert sandbox.exec(["true"]).ok


def test_put_and_get(sandbox, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f.txt").write_text("content")
    (tmp_path / "d" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(tmp_path / "d" / "run.sh", 0o755)
    sandbox.put(tmp_path / "d", "/opt/stuff")
    assert sandbox.get("/opt/stuff/sub/f.txt") == b"content"
    assert sandbox.exec(["/opt/stuff/run.sh"]).stdout == b"ran\n"
    sandbox.put_bytes(b"\x00\x01binary", "/tmp/b.bin")
    assert sandbox.get("/tmp/b.bin") == b"\x00\x01binary"
    assert sandbox.get("/does/not/exist") is None


def test_symlinks_planted_by_the_agent_resolve_inside(sandbox, tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    # The agent points /tests at a path that also exists on the host; copying tests in must not write there.
    sandbox.exec(["mkdir", "-p", str(host_dir)])
    sandbox.exec(["ln", "-s", str(host_dir), "/tests"])
    src = tmp_path / "tests"
    src.mkdir()
    (src / "test.sh").write_text("echo hi\n")
    sandbox.put(src, "/tests")
    assert list(host_dir.iterdir()) == []
    assert sandbox.get(f"{host_dir}/test.sh") == b"echo hi\n"  # it landed inside the sandbox


def test_tests_and_solution_are_not_in_the_image(sandbox):
    res = sandbox.exec(["bash", "-c", "ls -d /tests /solution /app/tests /app/solution 2>&1; true"])
    assert b"No such file" in res.stdout and b"/tests\n" not in res.stdout


def test_close_is_idempotent_and_cleans_up(greeting_image):
    sb = BwrapSandbox(greeting_image, SandboxSpec())
    sb.start()
    d = sb.dir
    assert d is not None and (d / "merged" / "app").is_dir()
    sb.close()
    sb.close()
    assert not d.exists()
    assert not sb.alive
    with pytest.raises(Exception, match="closed"):
        sb.exec(["true"])


def test_lifetime_kills_sandbox(greeting_image):
    with BwrapSandbox(greeting_image, SandboxSpec(lifetime_sec=1)) as sb:
        time.sleep(2.5)
        assert sb.expired and not sb.alive
        with pytest.raises(Exception, match="lifetime"):
            sb.exec(["true"])


def test_gc_removes_sandboxes_of_killed_processes(greeting_image):
    code = textwrap.dedent(
        f"""
        import sys, time
        from ltenv.sandbox.images import ImageStore
        from ltenv.sandbox.bwrap import BwrapSandbox
        sb = BwrapSandbox(ImageStore().cached({greeting_image.image_id!r}))
        sb.start()
        print(sb.dir, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    leaked = Path(line)
    assert leaked.is_dir() and leaked.parent == runtime_dir()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    assert leaked.exists()  # nobody cleaned up: the process was SIGKILLed
    assert gc_stale() >= 1
    assert not leaked.exists()
    mounts = Path("/proc/mounts").read_text()
    assert str(leaked) not in mounts
