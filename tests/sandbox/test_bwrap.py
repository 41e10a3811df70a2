"""bwrap specifics: capabilities, the shared layer cache, cgroups, lifetime and cleanup (see test_contract.py)."""

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


def _caps(text: str) -> dict[str, str]:
    return {
        k: v.strip() for k, v in (line.split(":\t") for line in text.splitlines() if line.startswith("Cap"))
    }


def test_root_holds_dockers_default_capabilities_only(bwrap_sandbox):
    """As in a Docker container: root in the sandbox has Docker's 14 default capabilities (scoped to the
    sandbox's user namespace), nothing more; another uid has none; no_new_privs, so no program can gain more
    (the agent's shell: test_containment.py)."""
    from ltenv.sandbox.trusted_run import DOCKER_DEFAULT_CAPS

    want = f"{sum(1 << c for c in DOCKER_DEFAULT_CAPS):016x}"
    caps = _caps(bwrap_sandbox.exec(["cat", "/proc/self/status"]).stdout.decode())
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == want
    assert b"NoNewPrivs:\t1" in bwrap_sandbox.exec(["cat", "/proc/self/status"]).stdout
    assert not bwrap_sandbox.exec(["mount", "-t", "tmpfs", "none", "/mnt"]).ok
    other = bwrap_sandbox.exec(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                                "/proc/self/status"]).stdout.decode()  # fmt: skip
    assert "CapEff:\t0000000000000000" in other, other


def test_rm_rf_root_leaves_host_and_cache_intact(bwrap_sandbox, greeting_image, tmp_path):
    sentinel = tmp_path / "host-sentinel"
    sentinel.write_text("still here")
    before = _snapshot(greeting_image.layers)
    res = bwrap_sandbox.exec(
        ["bash", "-c", "rm -rf --no-preserve-root / 2>/dev/null; ls /usr/bin | wc -l"], timeout=120
    )
    assert res.stdout.strip() in (b"0", b"")  # the episode's root really is gone...
    assert sentinel.read_text() == "still here"  # ...the host is not
    assert _snapshot(greeting_image.layers) == before  # ...nor the shared layer cache
    with BwrapSandbox(greeting_image, SandboxSpec()) as fresh:
        assert fresh.exec(["cat", "/app/seed.txt"]).stdout == b"seed-write-greeting\n"


def test_fork_bomb_is_contained(bwrap_sandbox):
    t0 = time.monotonic()
    res = bwrap_sandbox.exec(
        ["bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived"], timeout=20
    )
    assert time.monotonic() - t0 < 30
    if bwrap_sandbox._limits is None:
        pytest.skip("cgroups are not writable here: no pids limit to test")
    assert len(bwrap_sandbox._limits.pids()) <= bwrap_sandbox.spec.pids_limit
    # The host is responsive and can still create processes.
    assert subprocess.run(["true"]).returncode == 0
    assert res is not None


def test_memory_limit_is_a_cgroup(bwrap_sandbox):
    if bwrap_sandbox._limits is None:
        pytest.skip("cgroups are not writable here: no memory limit to test")
    res = bwrap_sandbox.exec(["python3", "-c", "x = bytearray(2 * 1024**3); print('allocated')"], timeout=60)
    assert b"allocated" not in res.stdout
    assert res.exit_code != 0
    assert bwrap_sandbox.exec(["echo", "alive"]).stdout == b"alive\n"


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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _ppid(proc_dir: Path) -> int:
    stat = _read(proc_dir / "stat")
    return int(stat[stat.rfind(b")") + 2 :].split()[1]) if stat else -1


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
    # Its janitor would clean up after it (test_containment covers that): kill both, as a machine crash would.
    janitors = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"janitor.py" in _read(p / "cmdline") and _ppid(p) == proc.pid
    ]
    assert janitors, "the driver started no janitor"
    for pid in janitors:
        os.kill(pid, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    assert leaked.exists()  # nobody cleaned up: the process and its janitor were SIGKILLed
    assert gc_stale() >= 1
    assert not leaked.exists()
    mounts = Path("/proc/mounts").read_text()
    assert str(leaked) not in mounts


def test_exec_survives_the_spawner_being_killed_from_inside(bwrap_sandbox):
    assert bwrap_sandbox.exec(["true"]).ok  # the spawner is up
    kill = (
        "for p in /proc/[0-9]*; do grep -q nsexec $p/cmdline 2>/dev/null && kill -9 ${p#/proc/}; done; true"
    )
    bwrap_sandbox.exec(["sh", "-c", kill])
    for _ in range(3):
        assert bwrap_sandbox.exec(["echo", "still works"]).stdout == b"still works\n"


def test_concurrent_execs_get_their_own_output_and_status(bwrap_sandbox):
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int):
        return bwrap_sandbox.exec(
            ["sh", "-c", f"sleep 0.0{i % 5}; echo out-{i}; echo err-{i} >&2; exit {i % 7}"]
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(32)))
    for i, r in enumerate(results):
        assert (r.exit_code, r.stdout, r.stderr) == (i % 7, f"out-{i}\n".encode(), f"err-{i}\n".encode())


def test_a_start_that_fails_while_bwrap_lives_on_reports_instead_of_hanging():
    """A keeper whose terminal program never ran waits on its stdin forever, and a process that escaped
    the tree may still hold bwrap's stderr: reading that stderr for the error message must neither wait
    for the keeper nor for end of file."""
    proc = subprocess.Popen(
        ["sh", "-c", "echo 'bwrap: setting up the terminal failed' >&2; (sleep 30 & echo $!); exec sleep 30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    escaped = int(proc.stdout.readline())  # its `sleep` is out of the tree and holds stderr
    box = BwrapSandbox.__new__(BwrapSandbox)  # only the process half: no image or mount is involved
    box._proc, box._limits = proc, None
    t0 = time.monotonic()
    said = box._failure_output(timeout=0.5)
    took = time.monotonic() - t0
    assert said == "bwrap: setting up the terminal failed"
    assert proc.poll() is not None  # the one that would not exit was killed
    assert took < 5, took  # bounded by the wait and read timeouts, not by the escaped process
    os.kill(escaped, signal.SIGKILL)
