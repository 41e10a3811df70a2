"""Many episodes in a row, some of them abandoned by a SIGKILLed driver: nothing may leak once gc has run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ltenv
from ltenv.env import TerminalEnv
from ltenv.sandbox.bwrap import runtime_dir
from ltenv.sandbox.docker import LABEL, api_client

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
MARK = "987654"  # a sleep duration no other process on the machine uses

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.bwrap]


def _host_processes_with(marker: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{p.name}: {cmd}")
    return found


def _killed_driver(backend: str) -> tuple[int, str]:
    """Start an episode in a child process, leave a command running, SIGKILL the child. Returns its pid."""
    code = textwrap.dedent(
        f"""
        import sys
        from ltenv.env import TerminalEnv
        env = TerminalEnv({str(FIXTURES / "write-greeting")!r}, backend={backend!r})
        env.reset()
        env.step("sleep {MARK} >/dev/null 2>&1 &")
        print("ready", flush=True)
        env.step("sleep {MARK}")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # the second command is running now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid, backend


def test_200_episodes_with_killed_drivers_leave_nothing_behind(store, bwrap_ok, docker_ok):
    driver_pids = [os.getpid()]
    episodes = 0
    envs = {
        b: TerminalEnv(FIXTURES / "write-greeting", backend=b, image_store=store) for b in ("bwrap", "docker")
    }
    try:
        for i in range(180):
            backend = "docker" if i % 3 == 0 else "bwrap"
            env = envs[backend]
            env.reset()
            obs, *_ = env.step(f"sleep {MARK} >/dev/null 2>&1 & echo started")
            assert obs == "started\n"
            if i % 10 == 0:  # now and then, also verify (the verifier runs in the same sandbox)
                _, reward, terminated, _, info = env.step(ltenv.SUBMIT)
                assert terminated and reward == 0.0, info
            episodes += 1
        for env in envs.values():
            env.close()
        for i in range(20):
            pid, _ = _killed_driver("docker" if i % 2 else "bwrap")
            driver_pids.append(pid)
            episodes += 1
    finally:
        for env in envs.values():
            env.close()
    assert episodes == 200

    # Each killed driver's janitor tears down what it left: containers, overlay mounts, episode dirs,
    # processes, with no `ltenv gc`.
    ours = {str(p) for p in driver_pids}
    api = api_client()

    def containers() -> list[dict]:
        return [
            c
            for c in api.containers(all=True, filters={"label": LABEL})
            if c["Labels"].get("ltenv.owner", "::").split(":")[1] in ours
        ]

    rt = runtime_dir()

    def leftover_dirs() -> list[str]:
        if not rt.is_dir():
            return []
        return [d.name for d in rt.iterdir() if d.name.split("-", 1)[0].split(".")[0] in ours]

    deadline = time.monotonic() + 60
    while (containers() or leftover_dirs()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers() == []
    assert leftover_dirs() == []
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if str(rt) in line]
    assert [m for m in mounts if any(f"/{p}-" in m or f"/{p}." in m for p in ours)] == []
    deadline = time.monotonic() + 10
    while _host_processes_with(MARK) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _host_processes_with(MARK) == []
