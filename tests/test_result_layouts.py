"""Task timeouts as Terminal-Bench and Harbor apply them, and run results in their layouts: written by
`ltenv eval`, imported from their folders, on the leaderboard, compared per task."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltenv.agents.policies import Completion, Policy
from ltenv.evaluation import classify_failure, evaluate, leaderboard
from ltenv.results_io import (
    ResultsFormatError,
    compare_runs,
    detect_layout,
    harbor_trial_name,
    import_run,
    tb_trial_name,
    write_harbor,
    write_layouts,
    write_terminal_bench,
)
from ltenv.rollouts import rollout
from ltenv.tasks import Timeouts, load_task
from ltenv.trajectory import Step, Trajectory

FIXTURES = Path(__file__).parent / "fixtures"
TB_RUN = FIXTURES / "results" / "tb-run" / "2025-09-01__12-00-00"
HARBOR_JOB = FIXTURES / "results" / "harbor-job" / "2025-09-02__09-30-00"

# The field names of Terminal-Bench 0.2.18's TrialResults / BenchmarkResults / RunMetadata and Harbor 0.25.0's
# TrialResult / JobResult / JobStats / AgentDatasetStats / ExceptionInfo (read from their pydantic models).
TB_TRIAL_FIELDS = {
    "id", "trial_name", "task_id", "instruction", "is_resolved", "failure_mode", "parser_results",
    "recording_path", "total_input_tokens", "total_output_tokens", "trial_started_at", "trial_ended_at",
    "agent_started_at", "agent_ended_at", "test_started_at", "test_ended_at",
}  # fmt: skip
TB_FAILURE_MODES = {
    "unset", "none", "unknown", "test_timeout", "agent_timeout", "unknown_agent_error", "parse_error",
    "fatal_llm_parse_error", "context_length_exceeded", "output_length_exceeded", "agent_installation_failed",
}  # fmt: skip
TB_BENCHMARK_FIELDS = {
    "id", "results", "pass_at_k", "n_resolved", "n_unresolved", "resolved_ids", "unresolved_ids", "accuracy",
}  # fmt: skip
TB_METADATA_FIELDS = {
    "run_id", "uuid", "dataset_path", "dataset_name", "dataset_version", "output_path", "agent_name",
    "no_rebuild", "cleanup", "log_level", "task_ids", "exclude_task_ids", "n_tasks", "n_concurrent_trials",
    "n_attempts", "dataset_size", "accuracy", "model_name", "start_time", "end_time", "commit_hash",
    "username", "s3_bucket", "agent_kwargs", "pass_at_k", "resumed_at",
}  # fmt: skip
HARBOR_TRIAL_FIELDS = {
    "id", "task_name", "trial_name", "trial_uri", "task_id", "source", "task_checksum", "config",
    "agent_info", "agent_result", "verifier_result", "verifier_environment_mode", "exception_info", "started_at",
    "finished_at", "environment_setup", "agent_setup", "agent_execution", "verifier", "step_results",
}  # fmt: skip
HARBOR_JOB_FIELDS = {"id", "started_at", "updated_at", "finished_at", "n_total_trials", "stats"}
HARBOR_STATS_FIELDS = {
    "n_completed_trials", "n_errored_trials", "n_running_trials", "n_pending_trials", "n_cancelled_trials",
    "n_retries", "evals", "n_input_tokens", "n_cache_tokens", "n_output_tokens", "cost_usd",
}  # fmt: skip
HARBOR_EVAL_FIELDS = {"n_trials", "n_errors", "metrics", "pass_at_k", "reward_stats", "exception_stats"}
HARBOR_EXCEPTION_FIELDS = {"exception_type", "exception_message", "exception_traceback", "occurred_at"}


# ---------------------------------------------------------------------------------------------- timeouts


class Scripted(Policy):
    """Replies with fixed commands (plain scaffold: the reply is the command); ``hang`` blocks instead."""

    name = "scripted"
    model = "none"

    def __init__(self, replies: list[str] | None = None, hang: threading.Event | None = None):
        self.replies = replies or []
        self.hang = hang

    def complete(self, messages, ctx) -> Completion:
        if self.hang is not None:
            self.hang.wait(60)  # a model server that never answers
            return Completion("echo late")
        return Completion(self.replies[min(ctx.turn, len(self.replies) - 1)])


def _task_copy(
    tmp_path: Path, name: str, *, agent: float, verifier: float, test_sh: str | None = None
) -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / "tasks" / "nop-passes", dst)
    toml = (dst / "task.toml").read_text()
    toml = toml.replace("[agent]\ntimeout_sec = 120", f"[agent]\ntimeout_sec = {agent}")
    toml = toml.replace("[verifier]\ntimeout_sec = 60", f"[verifier]\ntimeout_sec = {verifier}")
    (dst / "task.toml").write_text(toml)
    if test_sh is not None:
        (dst / "tests" / "test.sh").write_text(test_sh)
    return dst


def test_timeouts_scale_and_replace_task_values():
    tb = load_task(FIXTURES / "tb1" / "tb-sum-numbers")
    agent, tests = tb.config.agent.timeout_sec, tb.verifier_spec().timeout_sec
    assert (
        agent == tb.terminal_bench.max_agent_timeout_sec and tests == tb.terminal_bench.max_test_timeout_sec
    )
    assert Timeouts().agent_timeout(tb) == agent
    assert Timeouts(multiplier=2.0, agent_multiplier=1.5).agent_timeout(tb) == pytest.approx(agent * 3)
    assert Timeouts(multiplier=2.0).verifier_timeout(tb) == pytest.approx(tests * 2)
    assert Timeouts(multiplier=2.0, agent_sec=7).agent_timeout(tb) == 7  # a global value wins
    assert Timeouts(verifier_sec=9).verifier_timeout(tb) == 9
    with pytest.raises(ValueError):
        Timeouts(multiplier=0)


@pytest.mark.bwrap
@pytest.mark.docker
def test_hung_policy_ends_at_agent_timeout_and_is_verified(tmp_path, store, bwrap_ok):
    from ltenv.agents import run_episode

    task = load_task(_task_copy(tmp_path, "hung-policy", agent=1.5, verifier=60))
    release = threading.Event()
    t0 = time.monotonic()
    try:
        traj = run_episode(task, Scripted(hang=release), scaffold="plain", image_store=store)
    finally:
        release.set()
    assert traj.termination == "time_limit"
    assert "agent timeout" in (traj.error or "")
    assert traj.verifier_status == "ok" and traj.tests, "the tests still ran after the agent timed out"
    assert traj.passed  # nop-passes: the untouched sandbox passes its tests
    assert time.monotonic() - t0 < 30


@pytest.mark.bwrap
@pytest.mark.docker
def test_hung_command_ends_at_global_agent_timeout(tmp_path, store, bwrap_ok):
    from ltenv.agents import run_episode

    task = load_task(_task_copy(tmp_path, "hung-command", agent=600, verifier=60))
    t0 = time.monotonic()
    traj = run_episode(
        task,
        Scripted(["sleep 300"]),
        scaffold="plain",
        image_store=store,
        env_kwargs={"timeouts": {"agent_sec": 2.0}},
    )
    assert traj.termination == "time_limit"
    assert traj.steps and traj.steps[0].timed_out
    assert traj.verifier_status == "ok" and traj.tests
    assert traj.passed and classify_failure(traj) is None  # nop-passes: the tests pass untouched
    assert time.monotonic() - t0 < 30


@pytest.mark.bwrap
@pytest.mark.docker
def test_verifier_timeout_bounds_a_hanging_test(tmp_path, store, bwrap_ok):
    from ltenv.agents import run_episode

    hang = "#!/bin/bash\nsleep 300\n"
    task = load_task(_task_copy(tmp_path, "hung-test", agent=60, verifier=60, test_sh=hang))
    t0 = time.monotonic()
    traj = run_episode(
        task,
        Scripted(["true"]),
        scaffold="plain",
        max_turns=1,
        image_store=store,
        env_kwargs={"timeouts": {"verifier_sec": 1.5}},
    )
    assert time.monotonic() - t0 < 30
    assert traj.verifier_status == "verifier_error" and not traj.passed
    assert classify_failure(traj) == "test_timeout"


# ---------------------------------------------------------------------------------------------- layouts


def _episode(task, policy, *, attempt, seed, run="", **kw) -> Trajectory:
    """Episodes with every kind of outcome, as run_episode records them (no sandbox needed here)."""
    outcome = {
        ("write-greeting", 0): dict(reward=1.0, passed=True, termination="submitted"),
        ("write-greeting", 1): dict(reward=0.0, termination="submitted"),
        ("nop-passes", 0): dict(
            reward=1.0, passed=True, termination="time_limit", error="agent timeout: ..."
        ),
        ("nop-passes", 1): dict(verifier_status="verifier_error", verifier_error="task: timed out after 60s"),
        ("oracle-fails", 0): dict(termination="context_overflow", error="context full"),
        ("oracle-fails", 1): dict(
            termination="sandbox_error",
            error="the sandbox died",
            tests=[],
            verifier_status="verifier_error",
            verifier_error="verification failed: the sandbox is gone",
        ),
    }[(task.name, attempt)]
    return Trajectory(
        task=task.name,
        task_path=str(task.path),
        attempt=attempt,
        seed=seed,
        run=run,
        policy=policy.name,
        model=policy.model,
        scaffold="terminus",
        domain=task.domain,
        difficulty=task.difficulty,
        messages=[
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": f"Do {task.name}"},
            {"role": "assistant", "content": "ls"},
        ],
        steps=[
            Step(action="ls", observation="seed.txt\n", exit_code=0),
            Step(action="cat seed.txt", observation="x"),
        ],
        tests=outcome.pop(
            "tests",
            [{"name": "test_outputs.py::test_a", "outcome": "passed" if outcome.get("passed") else "failed"}],
        ),
        usage={"prompt_tokens": 100, "completion_tokens": 10},
        timings={"reset": 0.5, "policy": 1.0, "env": 0.2, "verifier": 0.3, "total": 2.0},
        started_at="2026-01-01T00:00:00.000+00:00",
        finished_at="2026-01-01T00:00:02.000+00:00",
        **outcome,
    )


class Named:
    name = "scripted"
    model = "tiny-model"


@pytest.fixture(scope="module")
def our_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ours"
    tasks = [load_task(FIXTURES / "tasks" / n) for n in ("write-greeting", "nop-passes", "oracle-fails")]
    rollout(Named(), tasks, out=out, k=2, jobs=2, episode_fn=_episode, cast=False)
    (out / "casts").mkdir()
    (out / "casts" / "write-greeting.0.cast").write_text(
        '{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "$ "]\n'
    )
    evaluate(out)
    return out


def test_terminal_bench_layout_fields(our_run):
    root = write_terminal_bench(our_run)
    assert root == our_run / "terminal-bench" / "ours"
    meta = json.loads((root / "run_metadata.json").read_text())
    assert set(meta) == TB_METADATA_FIELDS
    assert meta["agent_name"] == "scripted" and meta["model_name"] == "tiny-model"
    assert meta["n_attempts"] == 2 and meta["task_ids"] == ["nop-passes", "oracle-fails", "write-greeting"]
    assert meta["n_tasks"] is None and meta["resumed_at"] is None
    lock = json.loads((root / "tb.lock").read_text())  # what `tb runs status` reads
    assert lock["local_config"]["run_id"] == "ours" and lock["run_config"]["n_attempts"] == 2
    assert lock["dataset"]["local_path"] == str(FIXTURES / "tasks") and ":" in lock["agent"]["import_path"]
    bench = json.loads((root / "results.json").read_text())
    assert set(bench) == TB_BENCHMARK_FIELDS
    assert bench["n_resolved"] == 2 and bench["accuracy"] == pytest.approx(2 / 6)
    assert bench["pass_at_k"] == {"2": pytest.approx(2 / 3)}  # write-greeting 1/2, nop-passes 1/2 -> 1, 1, 0
    by_trial = {r["trial_name"]: r for r in bench["results"]}
    for r in bench["results"]:
        assert set(r) == TB_TRIAL_FIELDS and r["failure_mode"] in TB_FAILURE_MODES
        assert (r["parser_results"] is None) == (r["is_resolved"] is None)  # set together, as tb does
        assert r["trial_started_at"].endswith("+00:00")
        trial_dir = root / r["task_id"] / r["trial_name"]
        assert json.loads((trial_dir / "results.json").read_text()) == r
        assert (trial_dir / "commands.txt").read_text() == "ls\ncat seed.txt\n"
        assert (trial_dir / "agent-logs" / "episode-0" / "response.txt").read_text() == "ls"
        assert r["instruction"] == load_task(FIXTURES / "tasks" / r["task_id"]).instruction
    win = by_trial[tb_trial_name("write-greeting", 0, 2, "ours")]
    assert win["trial_name"] == "write-greeting.1-of-2.ours"
    assert win["is_resolved"] is True and win["failure_mode"] == "unset"
    assert win["parser_results"] == {"test_outputs.py::test_a": "passed"}
    # relative to the output folder (the run folder's parent), as tb writes it
    assert win["recording_path"] == "ours/write-greeting/write-greeting.1-of-2.ours/sessions/agent.cast"
    assert (root.parent / win["recording_path"]).read_text().startswith('{"version": 2')
    assert win["total_input_tokens"] == 100 and win["agent_started_at"] == "2026-01-01T00:00:00.500000+00:00"
    modes = {
        (r["task_id"], r["trial_name"].split(".")[1]): (r["failure_mode"], r["is_resolved"])
        for r in bench["results"]
    }
    assert modes[("nop-passes", "1-of-2")] == ("agent_timeout", True)  # timed out, tests still passed
    assert modes[("nop-passes", "2-of-2")] == ("test_timeout", None)
    assert modes[("oracle-fails", "1-of-2")] == ("context_length_exceeded", False)
    assert modes[("oracle-fails", "2-of-2")] == ("unknown", None)
    assert not (
        root / "write-greeting" / "write-greeting.2-of-2.ours" / "sessions"
    ).exists()  # no cast: no file
    assert not any(root.glob("*/*/panes"))  # no pane captures in this project's records


def test_harbor_layout_fields(our_run):
    job = write_harbor(our_run)
    assert job == our_run / "harbor" / "ours"
    result = json.loads((job / "result.json").read_text())
    assert set(result) == HARBOR_JOB_FIELDS and set(result["stats"]) == HARBOR_STATS_FIELDS
    assert result["n_total_trials"] == 6
    ((key, ev),) = result["stats"]["evals"].items()
    assert key == "scripted__tiny-model__adhoc" and set(ev) == HARBOR_EVAL_FIELDS
    assert ev["pass_at_k"] == {"2": pytest.approx(2 / 3)} and ev["metrics"] == [
        {"mean": pytest.approx(2 / 6)}
    ]
    assert ev["reward_stats"]["reward"].keys() == {"1.0", "0.0"}  # Harbor's float keys, as JSON writes them
    assert result["started_at"].endswith("Z")
    assert ev["exception_stats"].keys() == {
        "AgentTimeoutError",
        "VerifierTimeoutError",
        "ContextLengthExceededError",
        "EnvironmentStartTimeoutError",
    }
    assert result["stats"]["n_errored_trials"] == 4 and result["stats"]["n_input_tokens"] == 600
    config = json.loads((job / "config.json").read_text())
    assert config["job_name"] == "ours" and config["n_attempts"] == 2 and "orchestrator" not in config
    assert config["environment"] == {"import_path": "ltenv.sandbox.bwrap:BwrapSandbox"}  # no Harbor type
    trials = {p.name: json.loads((p / "result.json").read_text()) for p in job.iterdir() if p.is_dir()}
    assert len(trials) == 6
    for name, t in trials.items():
        assert set(t) == HARBOR_TRIAL_FIELDS and t["trial_name"] == name
        assert re.fullmatch(
            rf"{t['task_name'][:32]}__[2-9A-HJ-NP-Za-km-z]{{7}}", name
        )  # ShortUUID's alphabet
        assert json.loads((job / name / "config.json").read_text()) == t["config"]
        assert t["agent_info"]["name"] == "scripted" and t["agent_info"]["model_info"]["name"] == "tiny-model"
        if t["exception_info"] is not None:
            assert set(t["exception_info"]) == HARBOR_EXCEPTION_FIELDS
            assert (
                (job / name / "exception.txt").read_text().startswith(t["exception_info"]["exception_type"])
            )
        rewards = (t["verifier_result"] or {}).get("rewards")
        reward_file = job / name / "verifier" / "reward.txt"
        assert reward_file.is_file() == (rewards is not None)
        if rewards is not None:
            assert float(reward_file.read_text()) == rewards["reward"]
    win = trials[harbor_trial_name("write-greeting", "ours", 0)]
    assert win["verifier_result"] == {"rewards": {"reward": 1.0}} and win["exception_info"] is None
    assert (job / win["trial_name"] / "agent" / "recording.cast").is_file()
    assert (job / win["trial_name"] / "agent" / "episode-0" / "prompt.txt").read_text().startswith("[system]")
    timeout = trials[harbor_trial_name("nop-passes", "ours", 0)]
    assert timeout["exception_info"]["exception_type"] == "AgentTimeoutError"
    assert timeout["verifier_result"] == {"rewards": {"reward": 1.0}}  # verified after the timeout
    died = trials[harbor_trial_name("oracle-fails", "ours", 1)]
    assert died["verifier_result"] is None and died["verifier"] is None


def test_harbor_config_reproduces_ltenv_timeouts(our_run, tmp_path):
    """Harbor multiplies a task's timeout (or the override) by the phase's multiplier where set, else by
    timeout_multiplier; ltenv multiplies by both and takes a global value as is: the written config says so."""
    run = tmp_path / "timed"
    shutil.copytree(our_run, run, ignore=shutil.ignore_patterns("terminal-bench", "harbor"))
    info = json.loads((run / "run.json").read_text())
    info["config"]["env_kwargs"] = {
        "timeouts": {"multiplier": 2.0, "agent_multiplier": 1.5, "verifier_sec": 30.0}
    }
    (run / "run.json").write_text(json.dumps(info))
    config = json.loads((write_harbor(run) / "config.json").read_text())
    assert config["timeout_multiplier"] == 2.0
    assert config["agent_timeout_multiplier"] == 3.0  # task x 2 x 1.5
    assert config["verifier"]["override_timeout_sec"] == 30.0 and config["verifier_timeout_multiplier"] == 1.0
    lock = json.loads((write_terminal_bench(run) / "tb.lock").read_text())["run_config"]
    assert lock["global_timeout_multiplier"] == 2.0 and lock["global_test_timeout_sec"] == 30.0


def test_written_layouts_read_back(our_run):
    folders = write_layouts(our_run)
    ours = {(t.task, t.attempt): t for t in import_run(our_run).trajectories}
    for layout, folder in folders.items():
        assert detect_layout(folder) == {"tb": "terminal-bench", "harbor": "harbor"}[layout]
        back = import_run(folder)
        assert len(back.trajectories) == 6
        for t in back.trajectories:
            orig = ours[(t.task, t.attempt)]
            assert (t.passed and t.verified) == (orig.passed and orig.verified), (layout, t.task, t.attempt)
            assert classify_failure(t) == classify_failure(orig), (layout, t.task, t.attempt)
            assert t.usage == orig.usage and t.policy == "scripted"
        cmp = compare_runs(our_run, folder)
        assert not cmp.differing and len(cmp.common) == 3
    stale = folders["tb"] / "nop-passes" / tb_trial_name("nop-passes", 0, 1, "ours")  # an earlier -k 1 write
    stale.mkdir()
    write_terminal_bench(our_run)
    assert not stale.exists() and len(import_run(folders["tb"]).trajectories) == 6


@pytest.mark.bwrap
@pytest.mark.docker
def test_eval_writes_both_layouts_from_a_real_run(tmp_path, store, bwrap_ok):
    from ltenv.cli import app

    out = tmp_path / "oracle"
    args = [
        "eval",
        "write-greeting",
        "oracle-fails",
        "--tasks",
        str(FIXTURES / "tasks"),
        "--policy",
        "oracle",
    ]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--cast", "--global-test-timeout-sec", "30"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["config"]["env_kwargs"] == {
        "timeouts": {"verifier_sec": 30.0}
    }
    tb = out / "terminal-bench" / "oracle"
    trial = tb / "write-greeting" / "write-greeting.1-of-1.oracle"
    result = json.loads((trial / "results.json").read_text())
    assert result["is_resolved"] is True and result["failure_mode"] == "unset"
    assert set(result["parser_results"].values()) == {"passed"}
    cast = (tb.parent / result["recording_path"]).read_text().splitlines()
    assert json.loads(cast[0])["version"] == 2 and all(json.loads(line)[1] == "o" for line in cast[1:])
    assert "bash <<" in (trial / "commands.txt").read_text()  # the oracle's one command
    failed = json.loads((tb / "oracle-fails" / "oracle-fails.1-of-1.oracle" / "results.json").read_text())
    assert failed["is_resolved"] is False and failed["failure_mode"] == "unset"
    job = out / "harbor" / "oracle"
    rewards = {
        json.loads(p.read_text())["task_name"]: json.loads(p.read_text())["verifier_result"]["rewards"][
            "reward"
        ]
        for p in job.glob("*/result.json")
    }
    assert rewards == {"write-greeting": 1.0, "oracle-fails": 0.0}
    job_config = json.loads((job / "config.json").read_text())
    assert job_config["verifier"]["override_timeout_sec"] == 30.0 and "timeout_multiplier" not in job_config
    assert job_config["verifier_timeout_multiplier"] == 1.0  # Harbor would multiply the override otherwise
    for folder in (tb, job):
        assert not compare_runs(out, folder).differing


# ---------------------------------------------------------------------------------------------- import


def _tb_fixture() -> tuple[dict, list[dict]]:
    """The fixture run's results.json (made by Terminal-Bench's BenchmarkResults) and its trials."""
    bench = json.loads((TB_RUN / "results.json").read_text())
    return bench, bench["results"]


def _harbor_fixture() -> tuple[dict, list[dict]]:
    """The fixture job's result.json (made by Harbor's JobStats) and its trials' result.json files."""
    job = json.loads((HARBOR_JOB / "result.json").read_text())
    return job, [json.loads(f.read_text()) for f in sorted(HARBOR_JOB.glob("*/result.json"))]


def _per_task(pairs) -> dict[str, tuple[int, int]]:
    """(passes, attempts) per task from (task, passed) pairs."""
    out: dict[str, tuple[int, int]] = {}
    for task, ok in pairs:
        c, n = out.get(task, (0, 0))
        out[task] = (c + bool(ok), n + 1)
    return out


def test_import_terminal_bench_run():
    bench, trials = _tb_fixture()
    run = import_run(TB_RUN)
    assert run.layout == "terminal-bench" and run.name == TB_RUN.name
    assert len(run.trajectories) == len(trials)
    by = {t.trial_name: t for t in run.trajectories}
    meta = json.loads((TB_RUN / "run_metadata.json").read_text())
    for r in trials:
        t = by[r["trial_name"]]
        assert t.task == r["task_id"] and t.attempt == int(r["trial_name"].split(".")[1].split("-of-")[0]) - 1
        assert t.passed == bool(r["is_resolved"]) and t.failure_mode == r["failure_mode"]
        assert t.tests == [{"name": k, "outcome": v} for k, v in (r["parser_results"] or {}).items()]
        assert t.usage == {
            "prompt_tokens": r["total_input_tokens"],
            "completion_tokens": r["total_output_tokens"],
        }
        assert t.model == meta["model_name"] and t.policy == meta["agent_name"]
        mode = classify_failure(t)
        expected = {
            "agent_timeout": None if r["is_resolved"] else "agent_timeout",
            "test_timeout": "test_timeout",
            "parse_error": "verifier_error",
            "unknown_agent_error": "policy_error",
            "context_length_exceeded": "context_overflow",
            "fatal_llm_parse_error": "parse_error",
        }.get(r["failure_mode"], None if r["is_resolved"] else "tests_failed")
        assert mode == expected, r["trial_name"]
        if r["is_resolved"] is None:  # no test results: never a pass, never counted as one
            assert not t.verified
    assert [s.action for s in run.trajectories[0].steps] == ["ls -la", "cat README.md"]
    # The numbers Terminal-Bench computed for this run are ltenv's numbers for the imported run.
    counts = _per_task((r["task_id"], r["is_resolved"]) for r in trials)
    report = evaluate(run.trajectories, k=2, write=False)
    assert report.overall.passed == bench["n_resolved"] == sum(c for c, _ in counts.values())
    assert report.overall.episodes == len(trials)
    assert report.pass_at_1 == pytest.approx(bench["accuracy"])  # equal attempts per task: the same
    assert report.pass_at_k[2] == pytest.approx(bench["pass_at_k"]["2"])
    assert report.pass_at_k[2] == pytest.approx(
        sum(1.0 if n - c < 2 else 1 - (n - c) * (n - c - 1) / (n * (n - 1)) for c, n in counts.values())
        / len(counts)
    )


def test_import_harbor_job():
    job, trials = _harbor_fixture()
    run = import_run(HARBOR_JOB)
    assert run.layout == "harbor" and len(run.trajectories) == len(trials) == job["n_total_trials"]
    by = {t.trial_name: t for t in run.trajectories}
    for r in trials:
        t = by[r["trial_name"]]
        rewards = (r["verifier_result"] or {}).get("rewards")
        steps = r["step_results"] or []  # a multi-step trial: exceptions and token counts per step
        excs = [e for e in [r["exception_info"], *(x["exception_info"] for x in steps)] if e]
        exc = excs[0]["exception_type"] if excs else None
        contexts = [r["agent_result"]] if r["agent_result"] else [x["agent_result"] for x in steps]
        assert t.task == r["task_name"] and t.reward == (rewards["reward"] if rewards else 0.0)
        assert t.passed == bool(rewards and rewards["reward"] >= 1)
        assert (
            t.model == f"{r['agent_info']['model_info']['provider']}/{r['agent_info']['model_info']['name']}"
        )
        assert t.policy == r["agent_info"]["name"]
        assert t.usage == {
            "prompt_tokens": sum(c["n_input_tokens"] for c in contexts),
            "completion_tokens": sum(c["n_output_tokens"] for c in contexts),
        }
        if exc == "AgentTimeoutError":
            assert t.termination == "time_limit" and exc in t.error
        if rewards is None:
            assert not t.verified and classify_failure(t) in ("verifier_error", "test_timeout")
        if exc == "ContextLengthExceededError":
            assert classify_failure(t) == "context_overflow"
    # attempts follow the start times, task by task
    for task in {r["task_name"] for r in trials}:
        starts = sorted((r["started_at"], r["trial_name"]) for r in trials if r["task_name"] == task)
        assert [by[name].attempt for _, name in starts] == list(range(len(starts)))
    # The numbers Harbor computed for this job (its Mean metric: no reward counts 0; its pass@k) are ltenv's.
    ((_key, ev),) = job["stats"]["evals"].items()
    report = evaluate(run.trajectories, k=2, write=False)
    assert sum(t.reward for t in run.trajectories) / len(trials) == pytest.approx(ev["metrics"][0]["mean"])
    assert report.pass_at_k[2] == pytest.approx(ev["pass_at_k"]["2"])
    assert report.overall.passed == len(ev["reward_stats"]["reward"].get("1.0", []))


def test_import_errors_name_file_and_field(tmp_path):
    with pytest.raises(ResultsFormatError, match="not a results folder"):
        import_run(tmp_path)
    job = tmp_path / "job" / "t__abc1234"
    job.mkdir(parents=True)
    (job / "result.json").write_text(json.dumps({"trial_name": "t__abc1234", "task_name": 3}))
    with pytest.raises(ResultsFormatError, match=r"t__abc1234/result.json: field 'task_name'"):
        import_run(tmp_path / "job")
    run = tmp_path / "crafted"
    run.mkdir()
    (run / "trajectories.jsonl").write_text(Trajectory(task="../../escape").model_dump_json() + "\n")
    with pytest.raises(ResultsFormatError, match="cannot be a folder name"):
        write_layouts(run)
    assert not (tmp_path / "escape").exists()


def test_leaderboard_shows_imported_runs_beside_ours(our_run, tmp_path):
    board = leaderboard([our_run, TB_RUN, HARBOR_JOB], out=tmp_path / "lb")
    sources = {e.name: e.source for e in board.entries}
    assert sources == {"ours": "ltenv", TB_RUN.name: "terminal-bench", HARBOR_JOB.name: "harbor"}
    page = (tmp_path / "lb" / "index.html").read_text()
    assert f'data-run="{TB_RUN.name}" data-source="terminal-bench"' in page
    assert "(imported: harbor)" in page
    assert 'data-task="count-dataset-tokens"' in page and 'data-task="build-cython-ext"' in page
    assert f"| {TB_RUN.name} | terminus | anthropic/claude-sonnet-4-20250514 |" in board.markdown()


def test_cli_import_compare_and_eval_layouts(our_run, tmp_path):
    from ltenv.cli import app

    _job, trials = _harbor_fixture()
    harbor = _per_task(
        (r["task_name"], ((r["verifier_result"] or {}).get("rewards") or {}).get("reward")) for r in trials
    )
    _, tb_trials = _tb_fixture()
    tb = _per_task((r["task_id"], r["is_resolved"]) for r in tb_trials)
    runner = CliRunner()
    res = runner.invoke(app, ["import", "run", str(HARBOR_JOB), "--out", str(tmp_path / "harbor-run")])
    assert res.exit_code == 0, res.output
    passed = sum(c for c, _ in harbor.values())
    assert f"{len(trials)} trial(s) of {len(harbor)} task(s), {passed} passed" in res.output
    assert json.loads((tmp_path / "harbor-run" / "results.json").read_text())["n_tasks"] == len(harbor)
    res = runner.invoke(app, ["compare", str(TB_RUN), str(tmp_path / "harbor-run"), "--all"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["task", TB_RUN.name, "harbor-run", "delta"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    expected = {}
    for task in sorted(set(tb) | set(harbor)):
        a, b = tb.get(task), harbor.get(task)
        cell = lambda x: "-" if x is None else f"{x[0]}/{x[1]}"  # noqa: E731
        delta = (
            ["only", "A"]
            if b is None
            else ["only", "B"]
            if a is None
            else [f"{b[0] / b[1] - a[0] / a[1]:+.2f}"]
        )
        expected[task] = [cell(a), cell(b), *delta]
    assert rows == expected
    common = sorted(set(tb) & set(harbor))
    rate_a = sum(tb[t][0] / tb[t][1] for t in common) / len(common)
    rate_b = sum(harbor[t][0] / harbor[t][1] for t in common) / len(common)
    assert lines[-1].startswith(
        f"{len(common)} task(s) in both: pass@1 {TB_RUN.name} {100 * rate_a:.1f}%, harbor-run {100 * rate_b:.1f}%"
    )
    res = runner.invoke(app, ["compare", str(TB_RUN), str(HARBOR_JOB), "--json"])
    data = json.loads(res.output)
    assert data["common_tasks"] == len(common)
    assert data["pass_at_1"] == {"a": pytest.approx(rate_a), "b": pytest.approx(rate_b)}
    res = runner.invoke(app, ["eval", "--from", str(our_run), "--layout", "tb"])
    assert res.exit_code == 0, res.output
    assert (our_run / "terminal-bench" / "ours" / "results.json").is_file()
    res = runner.invoke(app, ["eval", "--from", str(our_run), "--layout", "zip"])
    assert res.exit_code == 2 and "--layout zip" in " ".join(res.output.split())
    res = runner.invoke(app, ["leaderboard", str(tmp_path), "--out", str(tmp_path / "lb")])
    assert res.exit_code == 2 and "not a run folder" in " ".join(res.output.split())
