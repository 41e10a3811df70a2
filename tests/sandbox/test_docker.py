"""Docker specifics: container settings, labels and orphan collection, a container dying mid-episode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ltenv.errors import SandboxError
from ltenv.sandbox import create_sandbox
from ltenv.sandbox.docker import LABEL, DockerSandbox, api_client, gc_containers
from ltenv.terminal import ShellSession

pytestmark = pytest.mark.docker


@pytest.fixture
def make(store, fixture_task):
    boxes: list[DockerSandbox] = []

    def make(name="write-greeting", **overrides) -> DockerSandbox:
        sb = create_sandbox(fixture_task(name), backend="docker", store=store, **overrides)
        boxes.append(sb)
        return sb

    yield make
    for sb in boxes:
        sb.close()


def _inspect(sb: DockerSandbox) -> dict:
    return api_client().inspect_container(sb.container_id)


def test_container_gets_the_task_limits_and_labels(make):
    sb = make(memory_mb=300, cpus=0.5, pids_limit=77)
    sb.start()
    attrs = _inspect(sb)
    hc = attrs["HostConfig"]
    assert hc["NetworkMode"] == "none"
    assert hc["Memory"] == 300 * 1024 * 1024 and hc["MemorySwap"] == hc["Memory"]
    assert hc["NanoCpus"] == 500_000_000 and hc["PidsLimit"] == 77
    labels = attrs["Config"]["Labels"]
    assert labels[LABEL] == "1" and labels["ltenv.task"] == "write-greeting"
    assert labels["ltenv.owner"].split(":")[1] == str(__import__("os").getpid())
    # ... and the limits hold inside: the cgroup says so (v1 or v2 layout).
    pids_max = sb.exec(
        ["sh", "-c", "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"]
    )
    assert pids_max.stdout.strip() == b"77"
    links = sb.exec(["ip", "-o", "link"]).stdout.decode().strip().splitlines()
    assert len(links) == 1 and ": lo:" in links[0]


def test_allow_internet_gives_a_network_interface(make):
    sb = make(allow_internet=True)
    sb.start()
    assert _inspect(sb)["HostConfig"]["NetworkMode"] == "ltenv-internet"  # behind the host's firewall rules
    links = sb.exec(["ip", "-o", "link"]).stdout.decode()
    assert "eth0" in links


def test_image_env_is_kept_and_defaults_fill_in(make):
    sb = make(env={"EXTRA": "1"})
    sb.start()
    out = sb.exec(["sh", "-c", 'echo "$LANG|$PYTHONDONTWRITEBYTECODE|$EXTRA|$HOME|$(hostname)"']).stdout
    assert out == b"C.UTF-8|1|1|/root|sandbox\n"


def test_container_killed_mid_episode_gives_a_clear_error(make):
    sb = make()
    sh = ShellSession(sb, timeout=10)
    sb.start(pty=sh.pty_request())
    sh.start()
    assert sh.run("echo up").output == "up\n"
    api_client().kill(sb.container_id)
    t0 = time.monotonic()
    res = sh.run("echo still there?")
    assert res.shell_exited and time.monotonic() - t0 < 10
    assert not sb.alive
    with pytest.raises(
        SandboxError, match=r"the sandbox is dead \(the container is exited \(exit code 137\)\)"
    ):
        sb.exec(["true"])


def test_lifetime_stops_the_container(make):
    sb = make(lifetime_sec=1)
    sb.start()
    deadline = time.monotonic() + 15
    while sb.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sb.alive
    with pytest.raises(SandboxError, match="lifetime ended"):
        sb.exec(["true"])


def test_close_removes_the_container(make):
    sb = make()
    sb.start()
    cid = sb.container_id
    sb.close()
    sb.close()
    assert not api_client().containers(all=True, filters={"id": cid})
    with pytest.raises(SandboxError, match="closed"):
        sb.exec(["true"])


def test_gc_removes_containers_of_killed_processes_only(make, store):
    mine = make()
    mine.start()
    tag = mine.image
    code = textwrap.dedent(
        f"""
        import time
        from ltenv.sandbox.docker import DockerSandbox
        sb = DockerSandbox({tag!r}, task_name="orphan")
        sb.start()
        print(sb.container_id, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    orphan = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    api = api_client()
    assert api.containers(filters={"id": orphan})  # nobody cleaned up: the owner was SIGKILLed
    assert gc_containers() >= 1
    assert not api.containers(all=True, filters={"id": orphan})
    assert api.containers(filters={"id": mine.container_id})  # a live owner's container stays
    assert mine.exec(["true"]).ok


def test_gc_cli_reports_containers(make):
    out = subprocess.run(
        [sys.executable, "-m", "ltenv.cli", "gc", "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) >= {"sandboxes", "containers"}


# Keeps forking while it is being killed: every child spawns more children.
_SPAWNER = "spawn() { while :; do sleep 300 & sleep 0.01; done; }; spawn & spawn & spawn & wait"


def _sleepers(sb: DockerSandbox) -> bytes:
    res = sb.exec(["sh", "-c", "for p in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$p; echo; done"])
    return b"\n".join(line for line in res.stdout.splitlines() if b"sleep 300" in line or b"spawn" in line)


@pytest.mark.parametrize("path", ["host", "in-container"])
def test_a_timed_out_tree_that_keeps_forking_is_killed_whole(make, monkeypatch, path):
    """On a local engine the tree is stopped and killed from the host; elsewhere a bounded script in the
    container does it. Either way nothing of a forking tree is left, and nothing hangs."""
    import ltenv.sandbox.docker as docker_mod

    if path == "in-container":
        monkeypatch.setattr(docker_mod, "_kill_tree_from_host", lambda *a, **k: None)
    sb = make()
    sb.start()
    t0 = time.monotonic()
    res = sb.exec(["bash", "-c", _SPAWNER], timeout=1.5)
    assert res.timed_out
    assert time.monotonic() - t0 < 30
    assert _sleepers(sb) == b""
    assert sb.exec(["echo", "alive"]).stdout == b"alive\n"


def test_host_side_kill_never_touches_another_containers_processes(make):
    """The host pid of a container's init is checked against the container's id before its cgroup is used."""
    import ltenv.sandbox.docker as docker_mod

    a, b = make(), make()
    a.start()
    b.start()
    b.exec(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
    pid_b = int(
        b.exec(
            [
                "sh",
                "-c",
                "for p in /proc/[0-9]*; do grep -q 'sleep' $p/comm 2>/dev/null && echo ${p#/proc/}; done",
            ]
        ).stdout.split()[0]
    )
    # a's id with b's init pid (as if a's pid had been reused by b): no cgroup matches, nothing is killed.
    assert docker_mod._kill_tree_from_host(b._host_pid(), a.container_id, pid_b, children_only=False) is None
    assert b"sleep 300" in _sleepers(b)
