"""Rollouts: parallel, resumable episode collection into trajectories.jsonl, locally and on Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ltenv.errors import SandboxError
from ltenv.rollouts import RolloutEvent, RunBusy, RunConfigMismatch, episode_line, episode_seed, rollout
from ltenv.trajectory import Trajectory, TrajectoryStore

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"

TASKS = ["write-greeting", "nop-passes", "oracle-fails"]
EXPECTED_ORACLE = {"write-greeting": 1.0, "nop-passes": 1.0, "oracle-fails": 0.0}
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def tasks():
    from ltenv.tasks import load_task

    return [load_task(FIXTURES / n) for n in TASKS]


class FakePolicy:
    """Stands in for a policy where the episode function is injected (no sandbox needed)."""

    name = "fake"
    model = "fake-model"
    temperature = 0.5


def fake_episode(task, policy, *, attempt, seed, cast_path=None, run="", **kw) -> Trajectory:
    return Trajectory(
        task=task.name, attempt=attempt, seed=seed, run=run, reward=1.0, passed=True, policy=policy.name
    )


class Counting:
    """Wraps an episode function and counts the episodes it actually runs."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, task, policy, **kw):
        with self._lock:
            self.calls.append((task.name, kw["attempt"]))
        return self.fn(task, policy, **kw)


def keys(path: Path) -> list[tuple[str, int]]:
    return [t.key for t in TrajectoryStore(path).read(strict=True)]


# ---------------------------------------------------------------------------------- real episodes
@pytest.mark.bwrap
def test_oracle_rollout_k_attempts_parallel(tmp_path, tasks, store, bwrap_ok):
    from ltenv.agents import make_policy

    events: list[RolloutEvent] = []
    res = rollout(
        make_policy("oracle"),
        tasks,
        k=2,
        jobs=3,
        out=tmp_path / "run",
        seed=7,
        cast=True,
        image_store=store,
        on_event=events.append,
    )
    assert res.ran == 6 and res.skipped == 0
    assert [t.key for t in res.trajectories] == [(n, a) for n in TASKS for a in range(2)]
    for t in res.trajectories:
        assert t.reward == EXPECTED_ORACLE[t.task], (t.task, t.termination, t.error)
        assert t.termination == "submitted"
        assert t.run == "run" and t.policy == "oracle" and t.scaffold == "terminus"
        assert t.seed == episode_seed(7, t.task, t.attempt)
        assert t.messages and t.steps
        cast = tmp_path / "run" / "casts" / f"{t.task}.{t.attempt}.cast"
        assert json.loads(cast.read_text().splitlines()[0])["version"] == 2
    assert sorted(keys(res.trajectories_file)) == sorted(t.key for t in res.trajectories)
    assert res.pass_rate == pytest.approx(4 / 6)
    run = json.loads(res.run_file.read_text())
    assert run["config"]["policy"] == "oracle" and run["config"]["seed"] == 7 and run["k"] == 2
    assert run["status"] == "finished" and run["finished_at"]
    assert {t["name"] for t in run["tasks"]} == set(TASKS)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.count("episode_finished") == 6 and kinds.count("episode_started") == 6
    assert max(e.stats.running for e in events) >= 2  # episodes really ran side by side
    assert events[-1].stats.passed == 4 and events[-1].stats.failed == 2


@pytest.mark.bwrap
def test_resume_runs_only_missing_pairs_and_k_can_grow(tmp_path, tasks, store, bwrap_ok):
    from ltenv.agents import make_policy, run_episode

    nop = make_policy("nop")
    first = Counting(run_episode)
    res = rollout(nop, tasks[:2], k=1, jobs=2, out=tmp_path, image_store=store, episode_fn=first)
    assert sorted(first.calls) == [("nop-passes", 0), ("write-greeting", 0)]
    assert {t.task: t.reward for t in res.trajectories} == {"write-greeting": 0.0, "nop-passes": 1.0}

    again = Counting(run_episode)
    res = rollout(nop, tasks, k=2, jobs=2, out=tmp_path, image_store=store, episode_fn=again)
    assert sorted(again.calls) == sorted(
        [("oracle-fails", 0), ("write-greeting", 1), ("nop-passes", 1), ("oracle-fails", 1)]
    )
    assert res.ran == 4 and res.skipped == 2 and len(res.trajectories) == 6
    all_keys = keys(tmp_path / "trajectories.jsonl")
    assert len(all_keys) == len(set(all_keys)) == 6

    none = Counting(run_episode)
    res = rollout(nop, tasks, k=2, jobs=2, out=tmp_path, image_store=store, episode_fn=none)
    assert none.calls == [] and res.ran == 0 and res.skipped == 6 and len(res.trajectories) == 6
    run = json.loads((tmp_path / "run.json").read_text())
    assert [h["ran"] for h in run["history"]] == [2, 4, 0]


@pytest.mark.bwrap
@pytest.mark.slow
def test_sigkill_mid_run_then_rerun(tmp_path, store, bwrap_ok):
    """A real SIGKILL of `ltenv rollout`: finished episodes stay, the rerun adds the rest, no duplicates."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "ltenv.cli",
        "rollout",
        *TASKS,
        "--tasks",
        str(FIXTURES),
        "--policy",
        "oracle",
        "-k",
        "5",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--seed",
        "3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _kill_and_resume(proc, cmd, env, out)
    finally:
        if proc.poll() is None:
            proc.kill()
        from ltenv.sandbox.bwrap import gc_stale

        gc_stale()  # the killed run's sandboxes


def _kill_and_resume(proc: subprocess.Popen, cmd: list[str], env: dict, out: Path) -> None:
    traj_file = out / "trajectories.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if traj_file.is_file() and traj_file.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    before = traj_file.read_bytes()
    before = before[: before.rfind(b"\n") + 1]  # complete lines (a record torn by the kill is not one)
    recorded = [t.key for t in TrajectoryStore(traj_file).read()]
    assert 3 <= len(recorded) < 15
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # it never got to finish

    done = subprocess.run([*cmd, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == len(recorded) and summary["ran"] == 15 - len(recorded)
    assert summary["episodes"] == 15 and summary["passed"] == 10 and summary["errors"] == 0
    after = traj_file.read_bytes()
    assert after.startswith(before)  # every finished episode kept, byte for byte
    final = keys(traj_file)
    assert len(final) == len(set(final)) == 15
    assert set(recorded) <= set(final)
    # Not a terminal: one plain line per finished episode.
    assert done.stderr.count(" PASS reward=1 ") + done.stderr.count(" FAIL reward=0 ") == 15 - len(recorded)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and [h.get("status") for h in run["history"]] == [None, "finished"]


@pytest.mark.docker
def test_image_build_failure_is_recorded(tmp_path, store, bwrap_ok):
    """A task whose image cannot build: every attempt is recorded as a sandbox_error with the build log."""
    from ltenv.agents import make_policy
    from ltenv.tasks import load_task

    broken = tmp_path / "tasks" / "broken-image"
    shutil.copytree(FIXTURES / "write-greeting", broken)
    dockerfile = broken / "environment" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN echo ltenv-broken-build && exit 3\n")
    good = load_task(FIXTURES / "nop-passes")
    res = rollout(
        make_policy("oracle"), [load_task(broken), good], k=2, jobs=2, out=tmp_path / "run", image_store=store
    )
    by_key = {t.key: t for t in res.trajectories}
    assert len(by_key) == 4
    for a in range(2):
        bad = by_key[("broken-image", a)]
        assert bad.termination == "sandbox_error" and not bad.passed
        assert "ltenv-broken-build" in (bad.error or "") or "exit" in (bad.error or "").lower(), bad.error
        assert bad.task_checksum and bad.policy == "oracle"
        assert by_key[("nop-passes", a)].passed
    assert res.errors == 2


# ---------------------------------------------------------------------------------- harness only
def test_raising_episodes_are_recorded_not_lost(tmp_path, tasks):
    def flaky(task, policy, **kw):
        if task.name == "write-greeting":
            raise SandboxError("bwrap: could not mount the overlay")
        if task.name == "nop-passes" and kw["attempt"] == 1:
            raise RuntimeError("endpoint down after 5 retries")
        return fake_episode(task, policy, **kw)

    res = rollout(FakePolicy(), tasks, k=2, jobs=4, out=tmp_path, episode_fn=flaky)
    by_key = {t.key: t for t in res.trajectories}
    assert len(by_key) == 6 and res.ran == 6
    for a in range(2):
        t = by_key[("write-greeting", a)]
        assert t.termination == "sandbox_error" and "could not mount the overlay" in t.error
        assert t.policy == "fake" and t.model == "fake-model" and t.task_checksum
    t = by_key[("nop-passes", 1)]
    assert t.termination == "policy_error" and "endpoint down" in t.error and "RuntimeError" in t.error
    assert by_key[("nop-passes", 0)].passed and res.errors == 3
    # Errors count as recorded: a rerun does not repeat them.
    again = Counting(flaky)
    assert rollout(FakePolicy(), tasks, k=2, out=tmp_path, episode_fn=again).ran == 0 and again.calls == []


def test_config_mismatch_needs_overwrite(tmp_path, tasks):
    rollout(FakePolicy(), tasks[:1], out=tmp_path, scaffold="bash", episode_fn=fake_episode)
    with pytest.raises(RunConfigMismatch, match=r"scaffold: \"bash\" in run.json, \"terminus\" now"):
        rollout(FakePolicy(), tasks[:1], out=tmp_path, episode_fn=fake_episode)
    other = FakePolicy()
    other.temperature = 1.0
    with pytest.raises(RunConfigMismatch, match="policy_config"):
        rollout(other, tasks[:1], out=tmp_path, scaffold="bash", episode_fn=fake_episode)
    # Another task list or k is fine (the run grows); another policy setting with overwrite starts afresh.
    assert rollout(FakePolicy(), tasks, out=tmp_path, scaffold="bash", episode_fn=fake_episode).ran == 2
    res = rollout(other, tasks[:1], out=tmp_path, scaffold="bash", episode_fn=fake_episode, overwrite=True)
    assert res.ran == 1 and keys(tmp_path / "trajectories.jsonl") == [("write-greeting", 0)]
    (old,) = tmp_path.glob("replaced-*")
    assert len(keys(old / "trajectories.jsonl")) == 3 and (old / "run.json").is_file()
    # Records without a run.json are of unknown provenance: never mixed in silently.
    stray = tmp_path / "stray"
    TrajectoryStore(stray / "trajectories.jsonl").append(Trajectory(task="write-greeting"))
    with pytest.raises(RunConfigMismatch):
        rollout(FakePolicy(), tasks[:1], out=stray, episode_fn=fake_episode)


def test_torn_last_line_is_repaired_before_appending(tmp_path, tasks):
    rollout(FakePolicy(), tasks[:2], out=tmp_path, episode_fn=fake_episode)
    f = tmp_path / "trajectories.jsonl"
    whole = f.read_bytes()
    torn = b'{"schema_version": 1, "task": "oracle-fa'
    with open(f, "ab") as fh:  # a writer killed mid-record
        fh.write(torn)
    res = rollout(FakePolicy(), tasks, out=tmp_path, episode_fn=fake_episode)
    assert res.ran == 1
    assert f.read_bytes().startswith(whole)
    assert sorted(keys(f)) == sorted((n, 0) for n in TASKS)  # strict read: every line parses
    assert json.loads((tmp_path / "run.json").read_text())["history"][-1]["torn_bytes_dropped"] == len(torn)


def test_one_writer_per_run_folder(tmp_path, tasks):
    started = threading.Event()
    release = threading.Event()

    def slow(task, policy, **kw):
        started.set()
        release.wait(10)
        return fake_episode(task, policy, **kw)

    t = threading.Thread(
        target=rollout, args=(FakePolicy(), tasks[:1]), kwargs={"out": tmp_path, "episode_fn": slow}
    )
    t.start()
    try:
        assert started.wait(10)
        with pytest.raises(RunBusy, match=str(os.getpid())):
            rollout(FakePolicy(), tasks[:1], out=tmp_path, episode_fn=fake_episode)
    finally:
        release.set()
        t.join()


def test_tampered_episodes_are_recorded_but_never_passes(tmp_path, tasks):
    """An episode whose verifier reported tampering keeps its status in the record and is no pass in the
    rollout's counts or progress lines, even if its record says reward 1."""

    def cheating(task, policy, **kw):
        traj = fake_episode(task, policy, **kw)
        if task.name == "write-greeting":
            traj.verifier_status, traj.verifier_error = "tampered", "reward.txt disagrees with the tests"
        return traj

    lines: list[str] = []
    res = rollout(
        FakePolicy(),
        tasks,
        out=tmp_path,
        episode_fn=cheating,
        on_event=lambda e: e.kind == "episode_finished" and lines.append(episode_line(e.stats, e.trajectory)),
    )
    assert res.passed == 2 and res.pass_rate == pytest.approx(2 / 3)
    recorded = {t.task: t.verifier_status for t in TrajectoryStore(res.trajectories_file).read(strict=True)}
    assert recorded == {"write-greeting": "tampered", "nop-passes": "ok", "oracle-fails": "ok"}
    cheat = next(line for line in lines if "write-greeting#0" in line)
    assert " TAMPERED reward=1 " in cheat and " PASS " not in cheat
    assert lines[-1].split("| pass ")[1].startswith("67%")


def test_episode_seeds_depend_on_seed_task_attempt_only():
    assert episode_seed(None, "a", 0) is None
    assert episode_seed(1, "a", 0) == episode_seed(1, "a", 0)
    seeds = {episode_seed(s, n, a) for s in (1, 2) for n in ("a", "b") for a in range(3)}
    assert len(seeds) == 12 and all(0 <= x < 2**31 for x in seeds)


def test_jobs_bound_concurrency(tmp_path, tasks):
    lock = threading.Lock()
    now = peak = 0

    def tracked(task, policy, **kw):
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.2)
        with lock:
            now -= 1
        return fake_episode(task, policy, **kw)

    res = rollout(FakePolicy(), tasks, k=4, jobs=3, out=tmp_path, episode_fn=tracked)
    assert res.ran == 12 and peak == 3


def test_import_ltenv_stays_light_and_rollout_is_exported():
    code = (
        "import sys, ltenv; heavy = [m for m in ('ray', 'openai', 'torch', 'ltenv.agents') if m in sys.modules];"
        "assert not heavy, heavy; f = ltenv.rollout; import ltenv.rollouts as m;"
        "assert callable(f) and m.rollout is f and ltenv.rollout is f;"
        "assert 'ray' not in sys.modules and 'openai' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------------- Ray
@pytest.mark.bwrap
@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path, tasks, store, bwrap_ok):
    import ray
    from ray import cloudpickle

    from ltenv.agents import OraclePolicy
    from ltenv.executors import RayExecutor

    class CountingOracle(OraclePolicy):
        """The oracle, noting in a file each time a worker unpickles it."""

        def __init__(self, log: Path):
            self.log = str(log)

        def __setstate__(self, state: dict) -> None:
            self.__dict__.update(state)
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")

    assert not ray.is_initialized()
    unpickles = tmp_path / "unpickles.log"
    policy = CountingOracle(unpickles)
    local = rollout(policy, tasks, k=2, jobs=2, out=tmp_path / "local", seed=11, image_store=store)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    ex = RayExecutor("local", image_store=store, init_kwargs={"num_cpus": 2})
    try:
        remote = rollout(policy, tasks, k=2, jobs=2, out=tmp_path / "ray", seed=11, cast=True, executor=ex)
    finally:
        ex.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert not ray.is_initialized()  # the executor shut down the cluster it started
    pids = unpickles.read_text().split()
    assert 1 <= len(pids) == len(set(pids)) <= 2  # once per worker process, not once per episode

    def essentials(t: Trajectory) -> tuple:
        return (
            t.key,
            t.seed,
            t.reward,
            t.passed,
            t.termination,
            t.policy,
            t.scaffold,
            t.task_checksum,
            [m["content"] for m in t.messages],
            [s.action for s in t.steps],
        )

    assert [essentials(t) for t in remote.trajectories] == [essentials(t) for t in local.trajectories]
    assert remote.config["history"][-1]["executor"] == "ray"
    assert len(list((tmp_path / "ray" / "casts").glob("*.cast"))) == 6  # casts travel back to the driver


@pytest.mark.bwrap
def test_cli_builds_the_policy_and_records_policy_errors(tmp_path, store, bwrap_ok, monkeypatch):
    """`ltenv rollout` with an OpenAI endpoint that refuses connections: recorded as policy errors, with
    the sampling settings in run.json and the key nowhere on disk."""
    from typer.testing import CliRunner

    from ltenv.cli import app

    monkeypatch.setenv("LTENV_TEST_KEY", "sk-secret-test-key")

    def args(temperature: str) -> list[str]:
        return [
            "rollout", "write-greeting", "--tasks", str(FIXTURES), "--policy", "openai:test-model",
            "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "LTENV_TEST_KEY",
            "--temperature", temperature, "--policy-arg", "max_retries=0", "--policy-arg", "timeout=5",
            "-k", "2", "--out", str(tmp_path), "--json",
        ]  # fmt: skip

    res = CliRunner().invoke(app, args("0.2"))
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["errors"] == 2
    trajs = list(TrajectoryStore(tmp_path / "trajectories.jsonl").read(strict=True))
    assert {t.termination for t in trajs} == {"policy_error"} and all(t.error for t in trajs)
    assert {t.model for t in trajs} == {"test-model"}
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["policy"] == "openai:test-model"
    assert run["config"]["policy_config"]["temperature"] == 0.2
    assert "sk-secret-test-key" not in (tmp_path / "run.json").read_text()
    assert "sk-secret-test-key" not in (tmp_path / "trajectories.jsonl").read_text()
    # Same command, other temperature: refused (`ltenv` prints it and exits 2), naming the field.
    res = CliRunner().invoke(app, args("0.9"))
    assert isinstance(res.exception, RunConfigMismatch) and "policy_config" in str(res.exception)
