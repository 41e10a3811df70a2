"""The Gymnasium contract of TerminalEnv, on real sandboxes: reset, step, submit, budgets, cleanup."""

from __future__ import annotations

import gc
import os
import shutil
import time
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import ltenv
from ltenv.env import TerminalEnv
from ltenv.sandbox.bwrap import runtime_dir

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"

pytestmark = pytest.mark.bwrap


@pytest.fixture
def make_env(store, bwrap_ok):
    envs = []

    def make(name="write-greeting", **kw):
        env = TerminalEnv(FIXTURES / name, image_store=store, **kw)
        envs.append(env)
        return env

    yield make
    for e in envs:
        e.close()


def _live_sandboxes() -> set[str]:
    d = runtime_dir()
    return (
        {p.name for p in d.iterdir() if p.name.split("-", 1)[0].split(".")[0] == str(os.getpid())}
        if d.is_dir()
        else set()
    )


def test_gym_make_reset_step_submit(store, bwrap_ok):
    ids = ltenv.register_tasks(FIXTURES, namespace="LtenvTest")
    assert "LtenvTest/write-greeting" in ids
    env = gym.make("LtenvTest/write-greeting", image_store=store)
    try:
        obs, info = env.reset()
        assert obs.startswith("Write the line")
        assert obs.rstrip().endswith("root@sandbox:/app#")
        assert info["task"] == "write-greeting" and info["domain"] == "coding"
        obs, reward, terminated, truncated, info = env.step("echo hi")
        assert (obs, reward, terminated, truncated) == ("hi\n", 0.0, False, False)
        assert info["exit_code"] == 0 and info["timed_out"] is False and info["duration_s"] < 5
        env.step('echo "hello from $(cat seed.txt)" > greeting.txt')
        obs, reward, terminated, truncated, info = env.step(ltenv.SUBMIT)
        assert (reward, terminated, truncated) == (1.0, True, False)
        assert info["passed"] and info["termination"] == "submitted"
        assert {t["outcome"] for t in info["tests"]} == {"passed"} and len(info["tests"]) == 2
    finally:
        env.close()


def test_wrong_answer_scores_zero_with_test_detail(make_env):
    env = make_env()
    env.reset()
    env.step("echo 'hello from nobody' > greeting.txt")
    _, reward, terminated, _, info = env.step(ltenv.SUBMIT)
    assert reward == 0.0 and terminated and not info["passed"]
    outcomes = {t["name"].split("::")[-1]: t["outcome"] for t in info["tests"]}
    assert outcomes == {"test_greeting_file": "failed", "test_seed_untouched": "passed"}


def test_check_env_passes(make_env):
    env = make_env(command_timeout=5, info_timings=False)
    check_env(env, skip_render_check=True)


def test_verifier_sees_agent_processes(make_env):
    env = make_env("serve-http")
    env.reset()
    solve = (FIXTURES / "serve-http" / "solution" / "solve.sh").read_text()
    assert env.step(f"bash <<'EOF'\n{solve}\nEOF")[4]["exit_code"] == 0
    _, reward, *_ = env.step(ltenv.SUBMIT)
    assert reward == 1.0


def test_max_steps_truncates_and_verifier_runs(make_env):
    env = make_env(max_steps=2)
    env.reset()
    _, _, terminated, truncated, info = env.step('echo "hello from $(cat seed.txt)" > greeting.txt')
    assert not (terminated or truncated)
    obs, reward, terminated, truncated, info = env.step("true")
    assert truncated and not terminated
    assert info["termination"] == "max_steps" and reward == 1.0  # the work was done: it still counts
    assert "max_steps=2" in obs
    with pytest.raises(gym.error.ResetNeeded):
        env.step("true")


def test_wall_clock_budget_truncates(make_env):
    env = make_env(max_episode_seconds=1.5)
    env.reset()
    t0 = time.monotonic()
    _, _, terminated, truncated, info = env.step("sleep 30")
    assert truncated and not terminated and info["termination"] == "time_limit"
    assert info["timed_out"] and time.monotonic() - t0 < 10


def test_command_timeout_reported_in_info(make_env):
    env = make_env(command_timeout=1)
    env.reset()
    obs, _, _, _, info = env.step("sleep 10")
    assert info["timed_out"] and info["exit_code"] is None and "timed out" in obs
    assert env.step("echo ok")[0] == "ok\n"


def test_shell_exit_ends_episode_and_verifier_still_runs(make_env):
    env = make_env()
    env.reset()
    env.step('echo "hello from $(cat seed.txt)" > greeting.txt')
    _obs, reward, terminated, truncated, info = env.step("exit")
    assert truncated and not terminated
    assert info["shell_exited"] and info["termination"] == "shell_exited"
    assert reward == 1.0


def test_reset_gives_fresh_sandbox(make_env):
    env = make_env()
    env.reset()
    env.step("touch /app/leftover && cd /tmp")
    _obs, _ = env.reset()
    assert env.step("ls /app; pwd")[0] == "seed.txt\n/app\n"


def test_close_releases_everything(make_env):
    before = _live_sandboxes()
    env = make_env()
    env.reset()
    assert len(_live_sandboxes() - before) == 1
    env.close()
    assert _live_sandboxes() == before
    env.close()  # idempotent


def test_close_after_exception_and_on_garbage_collection(store, bwrap_ok):
    before = _live_sandboxes()
    env = TerminalEnv(FIXTURES / "write-greeting", image_store=store)
    env.reset()
    with pytest.raises(TypeError):
        env.step(b"bytes are not actions")  # type: ignore[arg-type]
    del env
    gc.collect()
    assert _live_sandboxes() == before


def test_missing_reward_file_is_reported(make_env, tmp_path, store):
    dest = tmp_path / "no-reward"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    (dest / "tests" / "test.sh").write_text("#!/bin/bash\necho 'forgot the reward'\n")
    env = TerminalEnv(dest, image_store=store)
    try:
        env.reset()
        _, reward, terminated, _, info = env.step(ltenv.SUBMIT)
        assert reward == 0.0 and terminated
        assert "reward.txt" in info["verifier_error"]
    finally:
        env.close()


def test_reward_json_is_read(tmp_path, store, bwrap_ok):
    dest = tmp_path / "json-reward"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    (dest / "tests" / "test.sh").write_text(
        "#!/bin/bash\nmkdir -p /logs/verifier\necho '{\"reward\": 0.5}' > /logs/verifier/reward.json\n"
    )
    env = TerminalEnv(dest, image_store=store)
    try:
        env.reset()
        _, reward, _, _, info = env.step(ltenv.SUBMIT)
        assert reward == 0.5 and not info["passed"]
    finally:
        env.close()


def test_registration_is_cheap_and_lazy(tmp_path):
    for i in range(500):
        d = tmp_path / f"dom{i % 10}" / f"task-{i:03d}"
        d.mkdir(parents=True)
        (d / "task.toml").write_text("this is not even valid toml [[[")  # not parsed at registration
    t0 = time.perf_counter()
    ids = ltenv.register_tasks(tmp_path, namespace="Cheap")
    elapsed = time.perf_counter() - t0
    assert len(ids) == 500 and elapsed < 0.5, elapsed
    assert "Cheap/task-042" in gym.registry
    with pytest.raises(ltenv.errors.TaskLoadError, match="invalid TOML"):
        gym.make("Cheap/task-042")


def test_bundled_tasks_registered_on_import():
    names = [k for k in gym.registry if k.startswith("LiteCoder/")]
    assert len(names) >= 30
    assert "LiteCoder/maze-shortest-paths" in names


def _kill_sandbox(sandbox) -> None:
    """Kill a sandbox from outside, as the OOM killer or an operator would."""
    if sandbox.__class__.__name__ == "DockerSandbox":
        from ltenv.sandbox.docker import api_client

        api_client().kill(sandbox.container_id)
    else:
        os.kill(sandbox._proc.pid, 9)


@pytest.mark.parametrize("mode", ["command", "keys"])
def test_sandbox_dying_mid_episode_truncates_with_a_clear_error(backend, store, mode):
    env = TerminalEnv(FIXTURES / "write-greeting", backend=backend, image_store=store, action_mode=mode)
    try:
        env.reset()
        env.step("echo alive\n" if mode == "keys" else "echo alive")
        _kill_sandbox(env.sandbox)
        deadline = time.monotonic() + 10
        while env.sandbox.alive and time.monotonic() < deadline:  # the kill lands asynchronously
            time.sleep(0.05)
        t0 = time.monotonic()
        _, reward, terminated, truncated, info = env.step(
            "echo still there?\n" if mode == "keys" else "echo x"
        )
        assert time.monotonic() - t0 < 20
        assert (reward, terminated, truncated) == (0.0, False, True)
        assert info["termination"] == "sandbox_error"
        expected = "exit code 137" if backend == "docker" else "bwrap exited with -9"
        assert info["error"].startswith("the sandbox died: ") and expected in info["error"], info["error"]
        assert info["verifier_error"]
        with pytest.raises(gym.error.ResetNeeded):
            env.step("echo again")
        env.reset()  # a fresh sandbox works again
        assert env.step("echo back\n" if mode == "keys" else "echo back")[0] is not None
    finally:
        env.close()
