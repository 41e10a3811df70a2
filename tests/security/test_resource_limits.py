"""An agent that exhausts its own sandbox (fork bomb, memory hog) meets the limits of its sandbox's cgroup, and the
episode says so: the agent's doing, never an infrastructure error.

Behaviour, on both backends:

* a limit hit during a step is named in the observation (``[the sandbox hit its memory limit ...]``) and in
  ``info["limits_hit"]``; the episode goes on while the sandbox can still be driven;
* a shell the kernel killed at the memory limit is replaced by a fresh one (command mode) and the episode goes on;
* where the exhaustion leaves the sandbox unusable (it died of it, its shell cannot be restarted, or the verifier
  cannot run in it, e.g. a fork bomb still running at submit) the episode ends with
  ``termination="resource_limit"``, reward 0 and a verifier status of ``ok``: an outcome of the agent's, kept
  by the exports as a rejected example, like a timeout;
* a sandbox killed from outside, with no limit hit, still ends as ``sandbox_error``.

Evidence, not guesses: the counters of the sandbox's cgroup (``Sandbox.resource_events``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import ltenv
from ltenv.data import ExportStats, export_pairs
from ltenv.env import TerminalEnv
from ltenv.evaluation import FAILURE_MODES, classify_failure
from ltenv.trajectory import Trajectory

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tasks"
MEMORY_MB, PIDS = 128, 64

pytestmark = pytest.mark.slow

# Forks until the process table is full, then keeps it full (a failed fork is retried, not fatal).
FORK_LOOP = """python3 -c '
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
' >/dev/null 2>&1 &
sleep 1; echo started"""


@pytest.fixture(scope="module")
def small_task(tmp_path_factory) -> Path:
    """write-greeting with a small memory and process limit (same image)."""
    import shutil

    dest = tmp_path_factory.mktemp("limits") / "write-greeting"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    toml = dest / "task.toml"
    text = toml.read_text()
    assert "memory_mb = 1024" in text
    toml.write_text(text.replace("memory_mb = 1024", f"memory_mb = {MEMORY_MB}\npids_limit = {PIDS}"))
    return dest


@pytest.fixture
def env(backend, store, small_task):
    e = TerminalEnv(small_task, backend=backend, image_store=store, command_timeout=5)
    e.reset()
    if "resource_events" not in vars(type(e.sandbox)):
        e.close()
        pytest.fail(f"{type(e.sandbox).__name__} does not implement Sandbox.resource_events")
    yield e
    e.close()


def test_memory_hog_is_killed_and_the_episode_goes_on(env):
    obs, _, terminated, truncated, info = env.step('python3 -c "b = bytearray(512 << 20)"')
    assert not (terminated or truncated), info
    assert info["exit_code"] == 137 and info["limits_hit"] == ["memory"]
    assert f"the sandbox hit its memory limit ({MEMORY_MB} MB)" in obs
    obs, *_, info = env.step("echo fine")
    assert obs == "fine\n" and "limits_hit" not in info


def test_shell_killed_at_the_memory_limit_is_restarted(env):
    # The shell itself grows past the limit (a command substitution holds its output in the shell's memory).
    obs, _, terminated, truncated, info = env.step(
        "cd /tmp; export KEEP=1; x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"
    )
    assert not (terminated or truncated), info
    assert info["limits_hit"] == ["memory"] and info["shell_restarted"], info
    assert "survived" not in obs and "a new one started" in obs
    obs, *_, info = env.step('echo "[$KEEP]"; pwd')
    assert obs == f"[]\n{env.sandbox.spec.workdir}\n"  # a fresh shell: the old one's state is gone


def test_sandbox_dying_of_memory_ends_as_resource_limit(env):
    # The OOM killer takes the sandbox's pid 1 (the agent made it the preferred victim), so the sandbox dies.
    hogs = 'for i in 1 2 3 4 5 6 7 8; do python3 -c "import time; b = bytearray(20 << 20); time.sleep(60)" & done'
    obs, reward, terminated, truncated, info = env.step(f"echo 1000 > /proc/1/oom_score_adj; {hogs}; wait")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["termination"] == "resource_limit", info
    assert "memory limit" in info["error"] and info["verifier_status"] == "ok", info
    assert "[episode over: the sandbox hit its memory limit" in obs
    deadline = time.monotonic() + 10  # the engine may report the container stopped a moment later
    while env.sandbox.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not env.sandbox.alive


def test_fork_bomb_ends_as_resource_limit_when_the_verifier_cannot_run(env):
    obs, _, terminated, truncated, info = env.step(FORK_LOOP)
    assert not (terminated or truncated), info
    assert "pids" in info["limits_hit"] and f"process limit ({PIDS} processes)" in obs
    obs, *_ = env.step("echo builtins still work")  # no fork needed
    assert obs.startswith("builtins still work\n")
    obs, reward, terminated, truncated, info = env.step(ltenv.SUBMIT)
    assert terminated and reward == 0.0 and not info["passed"]
    assert info["termination"] == "resource_limit", info
    assert info["verifier_status"] == "ok" and not info["verifier_error"], info
    assert "process limit" in info["error"] and "the verifier could not run" in info["error"]


def test_shell_fork_bomb_is_reported_and_never_a_sandbox_error(env):
    _, _, terminated, truncated, info = env.step(":(){ :|:& };:")
    assert not (terminated or truncated), info
    hit = info.get("limits_hit", [])
    _, _, terminated, truncated, info = env.step("sleep 1; echo done")
    hit += info.get("limits_hit", [])
    assert "pids" in hit
    if not (terminated or truncated):
        *_, info = env.step(ltenv.SUBMIT)
    # The bomb may still be running when the verifier starts (it cannot run: resource_limit) or may have
    # burnt out (the verifier runs and the do-nothing agent fails): either way the agent's outcome.
    assert info["termination"] in ("resource_limit", "submitted"), info
    assert info["reward"] == 0.0 and info["verifier_status"] == "ok", info


def test_a_sandbox_killed_from_outside_stays_a_sandbox_error(env):
    env.step("echo alive")
    if env.backend == "docker":
        env.sandbox.api.kill(env.sandbox.container_id)
    else:
        env.sandbox._proc.kill()
    deadline = time.monotonic() + 10
    while env.sandbox.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    _, reward, terminated, truncated, info = env.step("echo x")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["termination"] == "sandbox_error" and "limits_hit" not in info, info


# ---------------------------------------------------------------------------------------------- records


def _episode(attempt: int, reward: float, termination: str, cmd: str) -> Trajectory:
    return Trajectory(
        task="t",
        attempt=attempt,
        reward=reward,
        passed=reward == 1.0,
        termination=termination,
        messages=[
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": cmd},
        ],
    )


def test_resource_limit_is_an_agent_failure_mode_and_a_rejected_example():
    bomb = _episode(1, 0.0, "resource_limit", ":(){ :|:& };:")
    assert "resource_limit" in FAILURE_MODES and classify_failure(bomb) == "resource_limit"
    good = _episode(0, 1.0, "submitted", "echo hello > greeting.txt")
    stats = ExportStats()
    pairs = export_pairs([good, bomb], stats=stats)
    assert pairs.num_rows == 1 and pairs[0]["rejected_attempt"] == 1
    assert not stats.excluded  # unlike sandbox_error, not dropped as an infrastructure failure
