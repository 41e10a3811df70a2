"""Procgen tasks in real sandboxes: the setup hook on both backends, the Gymnasium environments of the
families, and the stepwise oracle."""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import ltenv
from ltenv.procgen.base import Family, Instance, register
from ltenv.procgen.materialize import load_instances


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("klmnoprst") for _ in range(10))


@register
class EnvEcho(Family):
    name = "env-echo"
    domain = "coding"
    description = "Write the word to /app/answer.txt."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        w = _word(rng)
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction=f"Write the word {w} to /app/answer.txt",
            files={"/app/README.md": "Answers go to /app/answer.txt.\n"},
            commands=(f"echo {w} > /app/answer.txt",),
            check=f'[ "$(cat /app/answer.txt 2>/dev/null)" = "{w}" ]\n',
        )


@register
class EnvMulti(Family):
    name = "env-multi"
    domain = "system_admin"
    description = "Copy a token the agent has to read first."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        token = _word(rng)
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction="Write the token stored in /app/data/token.txt to /app/answer.txt",
            files={"/app/data/token.txt": f"token: {token}\n"},
            commands=("cat /app/data/token.txt", f"echo {token} > /app/answer.txt"),
            check=f'[ "$(cat /app/answer.txt 2>/dev/null)" = "{token}" ]\n',
            metadata={"answer": token},
        )


@register
class EnvSetup(Family):
    name = "env-setup"
    domain = "system_admin"
    description = "Files with modes, and a setup script."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        w = _word(rng)
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction="Run /app/tool.sh and write what it prints to /app/answer.txt",
            files={
                "/app/tool.sh": f"#!/bin/bash\necho {w}\n",
                "/etc/env-setup/settings.conf": "mode=strict\n",
                "/app/private.txt": "secret\n",
            },
            executable=frozenset({"/app/tool.sh"}),
            setup="echo made-by-setup > /app/made.txt\nchmod 600 /app/private.txt\npwd > /app/setup-cwd.txt\n",
            commands=("/app/tool.sh > /app/answer.txt",),
            check=f'[ "$(cat /app/answer.txt)" = "{w}" ] && [ -f /app/made.txt ]\n',
        )


@register
class EnvBadSetup(Family):
    name = "env-badsetup"
    domain = "coding"
    description = "A setup script that fails."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction="Nothing to do.",
            files={},
            setup="echo boom-marker-$((40 + 2))\nexit 3\n",
            commands=("true",),
            check="exit 0\n",
        )


ltenv.register_families()  # gym ids of the families above


# ------------------------------------------------------------------------------------------ setup hook


@pytest.mark.slow
def test_setup_hook_visible_to_the_agent_shell(backend, store):
    from ltenv.env import TerminalEnv

    task = load_instances("env-setup", [4])[0]
    env = TerminalEnv(task, backend=backend, image_store=store)
    try:
        obs, info = env.reset()
        assert info["workdir"] == "/app"
        obs, *_ = env.step(
            "stat -c '%n %a %U' /app/tool.sh /app/private.txt /etc/env-setup/settings.conf /app/made.txt; "
            "cat /app/made.txt /app/setup-cwd.txt; stat -c '%a' /tmp /etc; ls /tmp | grep -c ltenv-setup"
        )
        lines = obs.splitlines()
        assert "/app/tool.sh 755 root" in lines
        assert "/app/private.txt 600 root" in lines  # the setup script ran after the files were copied
        assert "/etc/env-setup/settings.conf 644 root" in lines
        assert "made-by-setup" in lines and "/" in lines  # the script runs in /
        assert "1777" in lines and "755" in lines  # existing directories keep their modes
        assert lines[-1].strip() == "0"  # the setup script is gone
        for cmd in load_instances("env-setup", [4])[0].oracle_commands:
            env.step(cmd)
        _obs, reward, terminated, _trunc, info = env.step(ltenv.SUBMIT)
        assert reward == 1.0 and terminated, info
    finally:
        env.close()


@pytest.mark.slow
def test_failing_setup_is_a_clear_error(backend, store):
    from ltenv.env import TerminalEnv
    from ltenv.errors import SandboxError
    from ltenv.validate import validate_task

    task = load_instances("env-badsetup", [0])[0]
    env = TerminalEnv(task, backend=backend, image_store=store)
    with pytest.raises(SandboxError) as e:
        env.reset()
    msg = str(e.value)
    assert "proc-env-badsetup-s00000" in msg and "setup/setup.sh exited 3" in msg and "boom-marker-42" in msg
    assert env.sandbox is None
    env.close()

    res = validate_task(task, backend=backend, runs=1, store=store)
    assert not res.valid
    assert "setup/setup.sh exited 3" in res.error and "boom-marker-42" in res.error


@pytest.mark.bwrap
def test_validate_runs_the_setup(store, bwrap_ok):
    from ltenv.validate import validate_suite

    tasks = load_instances(["env-setup", "env-multi"], "0-1")
    results = validate_suite(tasks, backend="bwrap", store=store, jobs=2)
    assert [r.valid for r in results] == [True] * 4, [r.error for r in results]


# ------------------------------------------------------------------------------------------ gymnasium


def test_families_are_registered_lazily():
    assert "LiteCoder/proc-env-echo-v0" in gym.registry
    spec = gym.spec("LiteCoder/proc-env-echo-v0")
    assert spec.entry_point == "ltenv.procgen.env:ProcgenEnv" and spec.kwargs == {"family": "env-echo"}
    # the bundled families are registered by `import ltenv` itself
    from ltenv.procgen.materialize import all_families

    bundled = [f for f in all_families().values() if type(f).__module__.startswith("ltenv.procgen.families")]
    for fam in bundled:
        assert fam.gym_id in gym.registry, fam.name
    # families defined later get their ids from another call
    ids = ltenv.register_families()
    assert set(ids) == {f.gym_id for f in all_families().values()}


@pytest.mark.bwrap
def test_gym_make_reset_seed(store, bwrap_ok):
    env = gym.make("LiteCoder/proc-env-echo-v0", backend="bwrap", image_store=store, info_timings=False)
    try:
        obs7, info = env.reset(seed=7)
        assert info["task"] == "proc-env-echo-s00007" and info["seed"] == 7 and info["family"] == "env-echo"
        word = EnvEcho().instance(7).instruction.split()[3]
        assert word in obs7
        assert env.unwrapped.backend == "bwrap" and env.unwrapped.task.name == "proc-env-echo-s00007"
        env.step(f"echo {word} > /app/answer.txt")
        _obs, reward, terminated, _trunc, _ = env.step(ltenv.SUBMIT)
        assert reward == 1.0 and terminated

        again, info = env.reset(seed=7)
        assert again == obs7 and info["task"] == "proc-env-echo-s00007"
        _obs, reward, *_ = env.step(ltenv.SUBMIT)
        assert reward == 0.0  # a fresh sandbox: nothing done

        _obs, info = env.reset()  # a seed from the env's RNG (seeded by reset(seed=7))
        drawn = info["seed"]
        assert info["task"] == f"proc-env-echo-s{drawn:05d}"
        env.reset(seed=7)
        _obs, info = env.reset()
        assert info["seed"] == drawn
    finally:
        env.close()


@pytest.mark.bwrap
def test_gym_make_kwargs_pass_through(store, bwrap_ok):
    env = gym.make("LiteCoder/proc-env-multi-v0", image_store=store, action_mode="keys", keys_wait=0.3)
    try:
        obs, info = env.reset(seed=2)
        assert info["seed"] == 2 and set(obs) == {"screen", "output"}
        token = EnvMulti().instance(2).metadata["answer"]
        obs, *_ = env.step(ltenv.keys("cat /app/data/token.txt", "Enter", wait=0.5))
        assert token in obs["screen"]
    finally:
        env.close()


def test_reset_with_a_bad_seed_raises():
    from ltenv.procgen.base import ProcgenError

    env = gym.make("LiteCoder/proc-env-echo-v0")
    with pytest.raises(ProcgenError, match="seed"):
        env.reset(seed=-5)
    env.close()


# ------------------------------------------------------------------------------------------ stepwise oracle


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize("scaffold", ["terminus", "bash", "plain", "bare"])
def test_stepwise_oracle_one_command_per_turn(scaffold, store, bwrap_ok):
    from ltenv.agents.loop import run_episode
    from ltenv.agents.policies import OraclePolicy

    task = load_instances("env-multi", [5])[0]
    token = EnvMulti().instance(5).metadata["answer"]
    traj = run_episode(task, OraclePolicy(), scaffold=scaffold, image_store=store)
    assert traj.reward == 1.0 and traj.termination == "submitted", traj.error
    assert [s.action for s in traj.steps] == task.oracle_commands
    assert [s.turn for s in traj.steps] == [0, 1]
    assert token in traj.steps[0].observation
    assistant = [m for m in traj.messages if m["role"] == "assistant"]
    # one command per turn, then the completion (terminus: claimed with the last command, then confirmed)
    assert len(assistant) == 3
    users = [m["content"] for m in traj.messages if m["role"] == "user"]
    assert any(token in u for u in users[1:])  # the agent saw the first command's output
    # every scaffold but bare opens with its system prompt; bare opens with the instruction itself
    assert (traj.messages[0]["role"] == "system") == (scaffold != "bare")
    assert users[0].strip() == task.instruction.strip() or scaffold in ("terminus", "bash")


@pytest.mark.bwrap
@pytest.mark.slow
def test_rollout_with_the_oracle(store, bwrap_ok, tmp_path):
    from ltenv.agents.policies import OraclePolicy

    tasks = load_instances(["env-echo", "env-multi"], "0-1")
    result = ltenv.rollout(OraclePolicy(), tasks, out=tmp_path / "run", jobs=4, image_store=store)
    trajs = result.trajectories
    assert len(trajs) == 4
    assert all(t.reward == 1.0 for t in trajs), [(t.task, t.error) for t in trajs]
    multi = [t for t in trajs if t.task.startswith("proc-env-multi")]
    assert all(len(t.steps) == 2 and [s.turn for s in t.steps] == [0, 1] for t in multi)
