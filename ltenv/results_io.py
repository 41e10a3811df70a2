"""Run results in the layouts of Terminal-Bench and Harbor: written from an ltenv run, read back from theirs.

A number from ``ltenv eval`` can then stand beside one from either harness, and per-task outcomes can be
compared line by line.

- :func:`write_terminal_bench` writes ``OUT/<run-id>/``: ``run_metadata.json``, ``results.json``
  (``BenchmarkResults``), ``tb.lock`` and ``<task>/<trial>/`` per attempt with ``results.json`` (``TrialResults``),
  ``commands.txt``, ``sessions/agent.cast`` (when the run recorded casts) and ``agent-logs/episode-N/``.
- :func:`write_harbor` writes ``OUT/<job>/``: ``config.json``, ``result.json`` (``JobResult``) and
  ``<trial>/`` per attempt with ``config.json``, ``result.json`` (``TrialResult``), ``agent/`` (the
  conversation per turn, ``recording.cast``), ``verifier/reward.txt`` and ``exception.txt``.
- :func:`import_run` reads a Terminal-Bench run folder, a Harbor job folder or an ltenv run folder into
  :class:`~ltenv.trajectory.Trajectory` records; :func:`save_imported` writes them as an ltenv run folder.
- :func:`compare_runs` lines two runs up task by task.

Files the project has no data for are not written: the tmux panes (``panes/``), the raw terminal logs
(``sessions/agent.log``, ``tests.log``), the harnesses' own logs and Harbor's ``lock.json`` files, and the test
script's output (``verifier/test-stdout.txt``).

The layouts were checked against ``terminal-bench==0.2.18`` and ``harbor==0.25.0``: their pydantic models
parse every file written here, and their readers (``tb runs summarize``/``status``, Harbor's viewer) read the
folders; ``tests/fixtures/results/`` holds folders their models wrote, for the import direction.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ltenv.errors import LtenvError
from ltenv.trajectory import Step, Trajectory

TB_DIR = "terminal-bench"
HARBOR_DIR = "harbor"
LAYOUTS: tuple[str, ...] = ("tb", "harbor")
Layout = Literal["ltenv", "terminal-bench", "harbor"]

#: Terminal-Bench ``FailureMode`` values an ltenv failure mode maps to (by its :func:`classify_failure`).
#: Terminal-Bench itself never writes ``unknown`` (a harness crash there is ``unknown_agent_error``, with no
#: trial file): ltenv keeps a sandbox error apart under that enum value.
TB_FAILURE_MODES: dict[str, str] = {
    "agent_timeout": "agent_timeout",
    "test_timeout": "test_timeout",
    "verifier_error": "parse_error",  # TB: the test output could not be parsed into results
    "tampered": "parse_error",
    "context_overflow": "context_length_exceeded",
    "parse_error": "fatal_llm_parse_error",
    "policy_error": "unknown_agent_error",
    "sandbox_error": "unknown",
}

#: Harbor ``exception_info.exception_type`` names an ltenv failure mode maps to. All but ``OutputParseError``
#: and ``AgentError`` are Harbor's own exception classes (``harbor.trial.errors`` and its error policy
#: table); Harbor has no class for a run of malformed model replies or for a failing policy, so those two
#: keep ltenv's names (Harbor's error policy files unknown names as ``unclassified``).
HARBOR_EXCEPTIONS: dict[str, str] = {
    "agent_timeout": "AgentTimeoutError",
    "test_timeout": "VerifierTimeoutError",
    "verifier_error": "RewardFileNotFoundError",
    "tampered": "VerifierOutputParseError",
    "context_overflow": "ContextLengthExceededError",
    "parse_error": "OutputParseError",
    "policy_error": "AgentError",
    "sandbox_error": "EnvironmentStartTimeoutError",
}

#: ShortUUID's alphabet: the 7 characters after ``__`` in a Harbor trial name are drawn from it.
_SHORTUUID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class ResultsFormatError(LtenvError):
    """A results folder or file is not what its format says (names the file and the field)."""


# ---------------------------------------------------------------------------------------------- helpers


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ResultsFormatError(f"{path}: not JSON ({e})") from None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _tb_time(t: datetime | None) -> str | None:
    """Terminal-Bench's timestamps: ``datetime.now(UTC).isoformat()`` (``...+00:00``)."""
    return None if t is None else t.astimezone(UTC).isoformat()


def _harbor_time(t: datetime | None) -> str | None:
    """Harbor's timestamps: pydantic's JSON form of an aware UTC datetime (``...Z``)."""
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _phase_times(t: Trajectory) -> dict[str, datetime | None]:
    """Trial, agent and test start/end times from the record's start, end and phase durations."""
    timings = t.timings
    start, end = _parse_time(t.started_at), _parse_time(t.finished_at)
    agent_start = start + timedelta(seconds=timings.get("reset", 0.0)) if start else None
    test_start = end - timedelta(seconds=timings.get("verifier", 0.0)) if end else None
    return {
        "trial_started_at": start,
        "agent_started_at": agent_start,
        "agent_ended_at": test_start,
        "test_started_at": test_start,
        "test_ended_at": end,
        "trial_ended_at": end,
    }


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without its None values: Harbor writes its config files with ``exclude_defaults``."""
    return {k: v for k, v in d.items() if v is not None}


def _stable_uuid(*parts: Any) -> str:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _run_info(run_dir: Path) -> dict[str, Any]:
    f = run_dir / "run.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except ValueError:
        return {}


def _ordered(trajs: Iterable[Trajectory]) -> list[Trajectory]:
    by_key = {(t.task, t.attempt): t for t in trajs}
    return [by_key[k] for k in sorted(by_key)]


def _agent_turns(t: Trajectory) -> list[tuple[str, str]]:
    """(prompt, response) per model turn: the messages before each reply, and the reply."""
    turns, prompt = [], []
    for m in t.messages:
        if m.get("role") == "assistant":
            turns.append(
                (
                    "\n\n".join(f"[{p.get('role')}]\n{p.get('content', '')}" for p in prompt),
                    str(m.get("content")),
                )
            )
            prompt = []
        else:
            prompt.append(m)
    return turns


def _pass_at_k_values(counts: dict[str, tuple[int, int]], ks: Iterable[int]) -> dict[int, float | None]:
    """Terminal-Bench's pass@k: the unbiased estimator averaged over tasks with at least ``k`` attempts."""
    from ltenv.evaluation import pass_at_k

    out: dict[int, float | None] = {}
    for k in ks:
        vals = [pass_at_k(n, c, k) for n, c in counts.values() if n >= k]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def _tb_ks(min_attempts: int) -> list[int]:
    ks, k = set(), 2
    while k <= min_attempts:
        ks.add(k)
        k *= 2
    ks |= {x for x in (5, 10) if min_attempts >= x}
    return sorted(ks)


def _failure_mode(t: Trajectory) -> str | None:
    """The episode's failure mode as both harnesses record it: the agent's failure first (an agent timeout
    stays one when the tests then pass: the agent's time ran out, the tests still ran and decide the
    outcome), then the verifier's. Running out of turns is no failure of theirs (their agents just stop)."""
    from ltenv.evaluation import classify_failure

    if t.termination == "time_limit" and t.verifier_status != "tampered":
        return "agent_timeout"
    mode = classify_failure(t)
    return None if mode == "agent_timeout" else mode


def _tb_failure_mode(t: Trajectory) -> str:
    """Terminal-Bench's ``failure_mode``: the agent's, then ``test_timeout`` where the agent's is unset, and
    ``parse_error`` (no parsable test results) over either, in the order its harness sets them."""
    from ltenv.evaluation import classify_failure

    mode = _failure_mode(t)
    if mode in ("sandbox_error", "resource_limit"):  # the tests did not run
        return TB_FAILURE_MODES.get(mode, "unset")
    verifier = classify_failure(t.model_copy(update={"termination": "submitted"}))
    if verifier in ("verifier_error", "tampered"):
        return "parse_error"
    if mode is None or mode in ("test_timeout", "verifier_error", "tampered", "tests_failed", "shell_exited"):
        mode = verifier
    return TB_FAILURE_MODES.get(mode or "", "unset")


def _load_run(run_dir: Path) -> list[Trajectory]:
    from ltenv.data import load_trajectories
    from ltenv.evaluation import _dedupe

    trajs = _ordered(_dedupe(load_trajectories(run_dir)))
    for t in trajs:  # task names become folder names in the written layouts
        if not t.task or t.task in (".", "..") or "/" in t.task or "\0" in t.task or t.task.startswith("."):
            raise ResultsFormatError(f"{run_dir}: task name {t.task!r} cannot be a folder name")
    return trajs


# ---------------------------------------------------------------------------------------------- Terminal-Bench


def tb_trial_name(task: str, attempt: int, n_attempts: int, run_id: str) -> str:
    """Terminal-Bench's trial folder name: ``<task>.<attempt>-of-<n>.<run-id>`` (attempts from 1)."""
    return f"{task}.{attempt + 1}-of-{n_attempts}.{run_id}"


@functools.lru_cache(maxsize=1024)
def _task_instruction(path: str) -> str | None:
    from ltenv.tasks import load_task

    try:
        return load_task(Path(path)).instruction
    except Exception:  # moved or deleted since the run: the conversation still has it
        return None


def _instruction(t: Trajectory) -> str:
    """The task's instruction: from its folder where it still loads, else the first user message (which
    the scaffold may have framed)."""
    if t.task_path and (text := _task_instruction(t.task_path)) is not None:
        return text
    return next((str(m["content"]) for m in t.messages if m.get("role") == "user"), "")


def _tb_trial(t: Trajectory, trial_name: str, recording: str | None) -> dict[str, Any]:
    from ltenv.evaluation import episode_passed

    # Terminal-Bench sets parser_results and is_resolved together, once the test output parsed.
    tested = t.verified and t.termination not in ("sandbox_error", "resource_limit")
    times = _phase_times(t)
    return {
        "id": _stable_uuid(t.run, t.task, t.attempt, "tb"),
        "trial_name": trial_name,
        "task_id": t.task,
        "instruction": _instruction(t),
        "is_resolved": episode_passed(t) if tested else None,
        "failure_mode": _tb_failure_mode(t),
        "parser_results": (
            {str(x.get("name")): ("passed" if x.get("outcome") == "passed" else "failed") for x in t.tests}
            if t.tests and tested
            else None
        ),
        "recording_path": recording,
        "total_input_tokens": t.usage.get("prompt_tokens"),
        "total_output_tokens": t.usage.get("completion_tokens"),
        **{k: _tb_time(v) for k, v in times.items()},
    }


def write_terminal_bench(
    run_dir: str | Path, out: str | Path | None = None, *, run_id: str | None = None
) -> Path:
    """Write the ltenv run in ``run_dir`` as a Terminal-Bench run folder ``out/<run-id>/`` and return it.

    ``out`` defaults to ``run_dir/terminal-bench``; ``run_id`` to the run's name. Field names and folders
    are those of Terminal-Bench 1.x (``tb run``), so its tools and scripts read the folder as one of theirs.
    """
    run_dir = Path(run_dir)
    trajs = _load_run(run_dir)
    info = _run_info(run_dir)
    run_id = run_id or info.get("run") or run_dir.name
    root = Path(out if out is not None else run_dir / TB_DIR) / run_id
    root.mkdir(parents=True, exist_ok=True)
    per_task = Counter(t.task for t in trajs)
    n_attempts = max([int(info.get("k", 0)), *per_task.values(), 1])
    results = []
    for t in trajs:
        trial = tb_trial_name(t.task, t.attempt, n_attempts, run_id)
        tdir = root / t.task / trial
        tdir.mkdir(parents=True, exist_ok=True)
        recording = None
        cast = run_dir / "casts" / f"{t.task}.{t.attempt}.cast"
        if cast.is_file():
            (tdir / "sessions").mkdir(exist_ok=True)
            (tdir / "sessions" / "agent.cast").write_bytes(cast.read_bytes())
            recording = f"{run_id}/{t.task}/{trial}/sessions/agent.cast"  # from the output path, as tb
        if t.steps:
            (tdir / "commands.txt").write_text("".join(s.action.rstrip("\n") + "\n" for s in t.steps))
        for i, (prompt, response) in enumerate(_agent_turns(t)):
            ep = tdir / "agent-logs" / f"episode-{i}"
            ep.mkdir(parents=True, exist_ok=True)
            (ep / "prompt.txt").write_text(prompt, encoding="utf-8")
            (ep / "response.txt").write_text(response, encoding="utf-8")
        res = _tb_trial(t, trial, recording)
        _write_json(tdir / "results.json", res)
        results.append(res)
    # A run resumed with more attempts renames its trials (<i>-of-<n>): drop the folders of an earlier write.
    current = {r["trial_name"] for r in results}
    for old in root.glob(f"*/*.{glob.escape(run_id)}"):
        if old.is_dir() and old.name not in current and _attempt_of(old.name, old.parent.name) is not None:
            shutil.rmtree(old)
    counts = {
        task: (n, sum(bool(r["is_resolved"]) for r in results if r["task_id"] == task))
        for task, n in per_task.items()
    }
    pass_k = _pass_at_k_values(counts, _tb_ks(min(per_task.values(), default=0)))
    resolved = [r["task_id"] for r in results if r["is_resolved"]]
    accuracy = len(resolved) / len(results) if results else 0.0
    _write_json(
        root / "results.json",
        {
            "id": _stable_uuid(run_id, "tb-run"),
            "results": results,
            "pass_at_k": {str(k): v for k, v in pass_k.items()},
            "n_resolved": len(resolved),
            "n_unresolved": len(results) - len(resolved),
            "resolved_ids": resolved,
            "unresolved_ids": [r["task_id"] for r in results if not r["is_resolved"]],
            "accuracy": accuracy,
        },
    )
    config = info.get("config", {})
    task_paths = [Path(r["path"]) for r in info.get("tasks", []) if r.get("path")]
    dataset = os.path.commonpath([str(p.parent) for p in task_paths]) if task_paths else None
    agent_name = next((t.policy for t in trajs if t.policy), None) or config.get("policy") or "unknown"
    model = config.get("model") or next((t.model for t in trajs if t.model), None)
    agent_kwargs = {"scaffold": config.get("scaffold"), **(config.get("policy_config") or {})}
    started = info.get("created_at") or (trajs[0].started_at if trajs else None)
    _write_json(
        root / "run_metadata.json",
        {
            "run_id": run_id,
            "uuid": _stable_uuid(run_id, "tb-uuid"),
            "dataset_path": dataset,
            "dataset_name": None,
            "dataset_version": None,
            "output_path": str(root.parent.absolute()),
            "agent_name": agent_name,
            "no_rebuild": False,
            "cleanup": False,
            "log_level": 20,
            "task_ids": sorted(per_task),
            "exclude_task_ids": None,
            "n_tasks": None,  # tb run's --n-tasks: None when the tasks are named (task_ids)
            "n_concurrent_trials": int(info.get("jobs", 1) or 1),
            "n_attempts": n_attempts,
            "dataset_size": len(per_task),
            "accuracy": accuracy,
            "model_name": model,
            "start_time": _tb_time(_parse_time(started)),
            "end_time": _tb_time(
                _parse_time(info.get("finished_at") or (trajs[-1].finished_at if trajs else None))
            ),
            "commit_hash": "unknown",
            "username": "unknown",
            "s3_bucket": None,
            "agent_kwargs": agent_kwargs,
            "pass_at_k": {str(k): v for k, v in pass_k.items()},
            "resumed_at": None,
        },
    )
    if dataset is not None:  # tb.lock names a dataset by its folder (or registry name), never by neither
        timeouts = (config.get("env_kwargs") or {}).get("timeouts") or {}
        _write_json(
            root / "tb.lock",
            {
                "lockfile_version": "1.0",
                "created_at": _tb_time(_parse_time(started)),
                "invocation": {"command": "ltenv", "args": ["eval", "--from", str(run_dir.absolute())]},
                "harness": {
                    "package": "ltenv",
                    "version": next((t.versions.get("ltenv") for t in trajs if t.versions), None)
                    or "unknown",
                    "is_editable_installation": False,
                },
                "agent": {
                    "name": agent_name,
                    "import_path": "ltenv.agents.policies:make_policy",
                    "model_name": model,
                    "extra_kwargs": {"spec": config.get("policy"), **agent_kwargs},
                },
                "run_config": {
                    "log_level": "info",
                    "livestream": False,
                    "n_concurrent_trials": int(info.get("jobs", 1) or 1),
                    "n_attempts": n_attempts,
                    "no_rebuild": False,
                    "cleanup": False,
                    "global_timeout_multiplier": float(timeouts.get("multiplier", 1.0)),
                    "global_agent_timeout_sec": timeouts.get("agent_sec"),
                    "global_test_timeout_sec": timeouts.get("verifier_sec"),
                },
                "dataset": {
                    "name": None,
                    "version": None,
                    "local_path": dataset,
                    "task_ids": sorted(per_task),
                    "registry_url": None,
                    "local_registry_path": None,
                },
                "local_config": {
                    "output_path": str(root.parent.absolute()),
                    "run_id": run_id,
                    "upload_results": False,
                },
            },
        )
    return root


# ---------------------------------------------------------------------------------------------- Harbor


def harbor_trial_name(task: str, run: str, attempt: int) -> str:
    """A Harbor trial folder name, ``<task[:32] less trailing _ and ->__<7 ShortUUID characters>``, as
    Harbor's ``TrialConfig.generate_trial_name`` makes them, but stable for (run, task, attempt)."""
    n = int.from_bytes(hashlib.sha256(f"{run}\0{task}\0{attempt}".encode()).digest()[:8], "big")
    suffix = ""
    for _ in range(7):
        n, i = divmod(n, len(_SHORTUUID_ALPHABET))
        suffix += _SHORTUUID_ALPHABET[i]
    return f"{task[:32].rstrip('_-')}__{suffix}"


def _harbor_model_info(model: str | None) -> dict[str, Any] | None:
    """Harbor's ``ModelInfo``: LiteLLM's ``provider/model`` split in two (a bare name has no provider)."""
    if not model:
        return None
    provider, _, name = model.rpartition("/") if "/" in model else ("", "", model)
    return {"name": name, "provider": provider or None}


def _harbor_environment(backend: str) -> dict[str, str]:
    """Harbor's ``EnvironmentConfig`` for an ltenv backend, less its defaults: nothing for docker (Harbor's
    default type), and for a backend Harbor has no type for (bwrap), the sandbox class by ``import_path``,
    Harbor's way to name another package's class."""
    from ltenv.sandbox import BACKENDS

    return {"import_path": BACKENDS[backend]} if backend != "docker" and backend in BACKENDS else {}


def _harbor_trial(
    t: Trajectory, trial: str, job_dir: Path, job_id: str, agent: dict[str, Any], timing: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    mode = _failure_mode(t)
    times = {k: _harbor_time(v) for k, v in _phase_times(t).items()}
    exc_type = HARBOR_EXCEPTIONS.get(mode or "")
    exception = None
    if exc_type is not None:
        message = t.error or t.verifier_error or mode
        exception = {
            "exception_type": exc_type,
            "exception_message": message,
            # Harbor's is the Python traceback; ltenv records none, so only its last line
            "exception_traceback": f"{exc_type}: {message}\n",
            "occurred_at": (times["agent_ended_at"] if mode == "agent_timeout" else times["trial_ended_at"])
            or times["trial_started_at"],
        }
    tested = t.termination not in ("sandbox_error", "resource_limit") or bool(t.tests)
    # Harbor records no rewards where the verifier gave none it stands behind (its exception says why).
    rewards = {"reward": float(t.reward)} if tested and t.verified else None
    # As Harbor writes a trial's config.json: the TrialConfig without its default values.
    trial_config = {
        "task": {"path": t.task_path or t.task},
        "trial_name": trial,
        "trials_dir": str(job_dir.absolute()),
        **timing["multipliers"],
        "agent": agent,
        **({"environment": env} if (env := _harbor_environment(t.backend)) else {}),
        **({"verifier": timing["verifier"]} if timing["verifier"] else {}),
        "job_id": job_id,
    }
    result = {
        "id": _stable_uuid(t.run, t.task, t.attempt, "harbor"),
        "task_name": t.task,
        "trial_name": trial,
        "trial_uri": (job_dir / trial).absolute().as_uri(),
        "task_id": {"path": t.task_path or t.task},
        "source": None,
        "task_checksum": t.task_checksum,
        "config": trial_config,
        "agent_info": {
            "name": agent["name"],
            "version": t.versions.get("ltenv", "unknown"),
            "model_info": _harbor_model_info(t.model),
        },
        "agent_result": {
            "n_input_tokens": t.usage.get("prompt_tokens"),
            "n_cache_tokens": t.usage.get("cached_tokens"),
            "n_output_tokens": t.usage.get("completion_tokens"),
            "cost_usd": None,
            "model_usage": None,
            "rollout_details": None,
            "metadata": {
                "termination": t.termination,
                "turns": t.turns,
                "scaffold": t.scaffold,
                "attempt": t.attempt,  # ltenv's attempt number, which Harbor does not record
            },
        },
        "verifier_result": {"rewards": rewards} if rewards is not None else None,
        "verifier_environment_mode": "shared",  # ltenv's tests run in the agent's sandbox
        "exception_info": exception,
        "started_at": times["trial_started_at"],
        "finished_at": times["trial_ended_at"],
        "environment_setup": {
            "started_at": times["trial_started_at"],
            "finished_at": times["agent_started_at"],
        },
        "agent_setup": None,
        "agent_execution": {"started_at": times["agent_started_at"], "finished_at": times["agent_ended_at"]},
        "verifier": (
            {"started_at": times["test_started_at"], "finished_at": times["test_ended_at"]}
            if tested
            else None
        ),
        "step_results": None,
    }
    return trial_config, result


def _harbor_multiplier(timeouts: dict[str, Any], which: Literal["agent", "verifier"]) -> float | None:
    """Harbor's ``agent_/verifier_timeout_multiplier`` for ltenv's timeout settings.

    Harbor multiplies the task's timeout (or the phase's ``override_timeout_sec``) by the phase's multiplier
    where set, else by ``timeout_multiplier``; ltenv multiplies by both, and takes a global value as it is.
    """
    if timeouts.get(f"{which}_sec") is not None:
        return 1.0
    value = float(timeouts.get("multiplier", 1.0)) * float(timeouts.get(f"{which}_multiplier", 1.0))
    return None if value == float(timeouts.get("multiplier", 1.0)) else value


def _harbor_pass_at_k(trials: list[dict[str, Any]]) -> dict[str, float]:
    """Harbor's ``pass_at_k`` of one eval: only where every trial's one reward is 0 or 1 (no reward: 0),
    for k = 2, 4, 8... and 5, 10, 15... up to the fewest trials of a task."""
    from ltenv.evaluation import pass_at_k

    per_task: dict[str, list[int]] = defaultdict(list)
    for r in trials:
        rewards = (r["verifier_result"] or {}).get("rewards")
        if rewards is None:
            per_task[r["task_name"]].append(0)
            continue
        if len(rewards) != 1 or next(iter(rewards.values())) not in (0, 1):
            return {}
        per_task[r["task_name"]].append(int(next(iter(rewards.values()))))
    if not per_task:
        return {}
    fewest = min(len(v) for v in per_task.values())
    ks = {2**i for i in range(1, fewest.bit_length()) if 2**i <= fewest} | set(range(5, fewest + 1, 5))
    return {
        str(k): sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
        for k in sorted(ks)
    }


def write_harbor(run_dir: str | Path, out: str | Path | None = None, *, job_name: str | None = None) -> Path:
    """Write the ltenv run in ``run_dir`` as a Harbor job folder ``out/<job>/`` and return it.

    ``out`` defaults to ``run_dir/harbor``; ``job_name`` to the run's name. Field names and folders are those
    of Harbor's ``harbor run`` (``JobConfig``, ``JobResult``, ``TrialConfig``, ``TrialResult``), so
    ``harbor view`` and its scripts read it.
    """
    run_dir = Path(run_dir)
    trajs = _load_run(run_dir)
    info = _run_info(run_dir)
    job_name = job_name or info.get("run") or run_dir.name
    job_dir = Path(out if out is not None else run_dir / HARBOR_DIR) / job_name
    job_dir.mkdir(parents=True, exist_ok=True)
    config = info.get("config", {})
    agent_name = next((t.policy for t in trajs if t.policy), None) or config.get("policy") or "unknown"
    model = config.get("model") or next((t.model for t in trajs if t.model), None)
    # The run's timeout settings (ltenv.tasks.Timeouts fields) in Harbor's terms.
    timeouts = (config.get("env_kwargs") or {}).get("timeouts") or {}
    timing = {
        "multipliers": _compact(
            {
                "timeout_multiplier": None
                if timeouts.get("multiplier", 1.0) == 1.0
                else timeouts["multiplier"],
                "agent_timeout_multiplier": _harbor_multiplier(timeouts, "agent"),
                "verifier_timeout_multiplier": _harbor_multiplier(timeouts, "verifier"),
            }
        ),
        "verifier": _compact({"override_timeout_sec": timeouts.get("verifier_sec")}),
    }
    agent = _compact(
        {
            "name": agent_name,
            "model_name": model,
            "override_timeout_sec": timeouts.get("agent_sec"),
            "kwargs": {"scaffold": config.get("scaffold"), **(config.get("policy_config") or {})},
        }
    )
    job_id = _stable_uuid(job_name, "harbor-job")
    evals: dict[str, dict[str, Any]] = {}
    trial_results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    n_errors, tokens_in, tokens_out, tokens_cache = 0, None, None, None
    for t in trajs:
        trial = harbor_trial_name(t.task, job_name, t.attempt)
        tdir = job_dir / trial
        trial_config, result = _harbor_trial(t, trial, job_dir, job_id, agent, timing)
        for i, (prompt, response) in enumerate(_agent_turns(t)):
            ep = tdir / "agent" / f"episode-{i}"
            ep.mkdir(parents=True, exist_ok=True)
            (ep / "prompt.txt").write_text(prompt, encoding="utf-8")
            (ep / "response.txt").write_text(response, encoding="utf-8")
        cast = run_dir / "casts" / f"{t.task}.{t.attempt}.cast"
        if cast.is_file():
            (tdir / "agent").mkdir(parents=True, exist_ok=True)
            (tdir / "agent" / "recording.cast").write_bytes(cast.read_bytes())
        # JobStats.increment: one eval per agent, model name and dataset ("adhoc": tasks given by path)
        model_info = result["agent_info"]["model_info"]
        key = f"{agent_name}__{model_info['name']}__adhoc" if model_info else f"{agent_name}__adhoc"
        ev = evals.setdefault(
            key, {"n_trials": 0, "n_errors": 0, "reward_stats": {}, "exception_stats": defaultdict(list)}
        )
        trial_results[key].append(result)
        if result["verifier_result"] is not None:
            (tdir / "verifier").mkdir(parents=True, exist_ok=True)
            value = result["verifier_result"]["rewards"]["reward"]
            (tdir / "verifier" / "reward.txt").write_text(f"{value:g}\n")
            ev["n_trials"] += 1
            ev["reward_stats"].setdefault("reward", defaultdict(list))[str(value)].append(trial)
        if result["exception_info"] is not None:
            n_errors += 1
            ev["n_errors"] += 1
            exc = result["exception_info"]
            ev["exception_stats"][exc["exception_type"]].append(trial)
            (tdir / "exception.txt").write_text(exc["exception_traceback"])
        usage = result["agent_result"]
        if usage["n_input_tokens"] is not None:
            tokens_in = (tokens_in or 0) + usage["n_input_tokens"]
        if usage["n_output_tokens"] is not None:
            tokens_out = (tokens_out or 0) + usage["n_output_tokens"]
        if usage["n_cache_tokens"] is not None:
            tokens_cache = (tokens_cache or 0) + usage["n_cache_tokens"]
        _write_json(tdir / "config.json", trial_config)
        _write_json(tdir / "result.json", result)
    for key, ev in evals.items():
        results = trial_results[key]
        rewards = [(r["verifier_result"] or {}).get("rewards", {}).get("reward", 0) for r in results]
        ev["metrics"] = [{"mean": sum(rewards) / len(rewards)}]  # Harbor's Mean: no reward counts 0
        ev["pass_at_k"] = _harbor_pass_at_k(results)
        ev["reward_stats"] = {k: dict(v) for k, v in ev["reward_stats"].items()}
        ev["exception_stats"] = dict(ev["exception_stats"])
    n_attempts = max([int(info.get("k", 0)), *Counter(t.task for t in trajs).values(), 1])
    environment = _harbor_environment(next((t.backend for t in trajs), "docker"))
    _write_json(
        job_dir / "config.json",
        {
            "job_name": job_name,
            "jobs_dir": str(job_dir.parent.absolute()),
            **({"n_attempts": n_attempts} if n_attempts != 1 else {}),
            **timing["multipliers"],
            **({"n_concurrent_trials": jobs} if (jobs := int(info.get("jobs", 1) or 1)) != 4 else {}),
            **({"environment": environment} if environment else {}),
            **({"verifier": timing["verifier"]} if timing["verifier"] else {}),
            "agents": [agent],
            "tasks": [{"path": r["path"]} for r in info.get("tasks", []) if r.get("path")],
        },
    )
    started = min((t.started_at for t in trajs if t.started_at), default=None)
    finished = max((t.finished_at for t in trajs if t.finished_at), default=None)
    _write_json(
        job_dir / "result.json",
        {
            "id": job_id,
            "started_at": _harbor_time(_parse_time(info.get("created_at") or started)),
            "updated_at": _harbor_time(_parse_time(info.get("finished_at") or finished)),
            "finished_at": _harbor_time(_parse_time(info.get("finished_at") or finished)),
            "n_total_trials": len(trajs),
            "stats": {
                "n_completed_trials": len(trajs),
                "n_errored_trials": n_errors,
                "n_running_trials": 0,
                "n_pending_trials": 0,
                "n_cancelled_trials": 0,
                "n_retries": 0,
                "evals": evals,
                "n_input_tokens": tokens_in,
                "n_cache_tokens": tokens_cache,
                "n_output_tokens": tokens_out,
                "cost_usd": None,
            },
        },
    )
    return job_dir


def write_layouts(run_dir: str | Path, layouts: Sequence[str] = LAYOUTS) -> dict[str, Path]:
    """Write the run's Terminal-Bench (``tb``) and Harbor (``harbor``) layouts beside its ``results.json``:
    ``run_dir/terminal-bench/<run-id>/`` and ``run_dir/harbor/<job>/``. Returns layout -> folder."""
    out: dict[str, Path] = {}
    for layout in layouts:
        if layout == "tb":
            out[layout] = write_terminal_bench(run_dir)
        elif layout == "harbor":
            out[layout] = write_harbor(run_dir)
        else:
            raise ValueError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    return out


# ---------------------------------------------------------------------------------------------- import


def detect_layout(path: str | Path) -> Layout | None:
    """Which kind of results folder ``path`` is: ``ltenv`` (``trajectories.jsonl``), ``terminal-bench``
    (``run_metadata.json`` or trial ``results.json`` files) or ``harbor`` (trial ``result.json`` files)."""
    p = Path(path)
    if p.is_file():
        return "ltenv" if p.suffix == ".jsonl" else None
    if (p / "trajectories.jsonl").is_file():
        return "ltenv"
    # Trial folders are named <task>/<task>.<i>-of-<n>.<run-id> (Terminal-Bench), <task>__<id> (Harbor).
    if (p / "run_metadata.json").is_file() or any(
        f.parent.name.startswith(f.parent.parent.name + ".") for f in p.glob("*/*/results.json")
    ):
        return "terminal-bench"
    if any("__" in f.parent.name for f in p.glob("*/result.json")):
        return "harbor"
    return None


@dataclass
class ImportedRun:
    """A run read from another harness's folder, as ltenv records."""

    name: str
    layout: Layout
    path: Path
    trajectories: list[Trajectory]
    info: dict[str, Any] = field(default_factory=dict)
    """What the folder says about the run (agent, model, dates), as written there."""


def _tb_termination(mode: str) -> tuple[str, str | None]:
    """(termination, verifier error) of a Terminal-Bench failure mode."""
    return {
        "agent_timeout": ("time_limit", None),
        "test_timeout": ("submitted", "tests timed out (Terminal-Bench test_timeout)"),
        "parse_error": ("submitted", "test results could not be parsed (Terminal-Bench parse_error)"),
        "context_length_exceeded": ("context_overflow", None),
        "output_length_exceeded": ("context_overflow", None),
        "fatal_llm_parse_error": ("parse_error", None),
        "unknown_agent_error": ("policy_error", None),
        "agent_installation_failed": ("sandbox_error", None),
        "unknown": ("sandbox_error", None),
    }.get(mode, ("submitted", None))


def _attempt_of(trial_name: str, task: str) -> int | None:
    rest = trial_name[len(task) + 1 :] if trial_name.startswith(task + ".") else ""
    head = rest.split("-of-", 1)[0]
    return int(head) - 1 if head.isdigit() else None


def _import_tb(root: Path, name: str) -> ImportedRun:
    meta = _read_json(root / "run_metadata.json") if (root / "run_metadata.json").is_file() else {}
    if (root / "results.json").is_file():
        data = _read_json(root / "results.json")
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise ResultsFormatError(f"{root / 'results.json'}: field 'results' (a list of trials) missing")
        trials = [(root / "results.json", r) for r in data["results"]]
    else:
        trials = [
            (f, _read_json(f))
            for f in sorted(root.glob("*/*/results.json"))
            if f.parent.name.startswith(f.parent.parent.name + ".")
        ]
    agent, model = str(meta.get("agent_name") or "unknown"), meta.get("model_name")
    seen: Counter[str] = Counter()
    out = []
    for src, r in trials:
        if not isinstance(r, dict):
            raise ResultsFormatError(f"{src}: a trial result is not an object")
        for key in ("task_id", "trial_name"):
            if not isinstance(r.get(key), str):
                raise ResultsFormatError(f"{src}: trial field '{key}' missing or not a string")
        task = r["task_id"]
        attempt = _attempt_of(r["trial_name"], task)
        if attempt is None:
            attempt = seen[task]
        seen[task] += 1
        mode = str(r.get("failure_mode") or "unset")
        termination, verr = _tb_termination(mode)
        resolved = r.get("is_resolved")
        if resolved is None and verr is None and termination == "submitted":
            verr = f"not resolved or unresolved (Terminal-Bench failure_mode {mode})"
        tests = [{"name": k, "outcome": v} for k, v in (r.get("parser_results") or {}).items()]
        steps = []
        commands = root / task / r["trial_name"] / "commands.txt"
        if commands.is_file():
            steps = [Step(action=line, observation="") for line in commands.read_text().splitlines() if line]
        usage = {
            k: int(v)
            for k, v in (
                ("prompt_tokens", r.get("total_input_tokens")),
                ("completion_tokens", r.get("total_output_tokens")),
            )
            if isinstance(v, int)
        }
        out.append(
            Trajectory(
                run=name,
                task=task,
                task_format="terminal-bench",
                attempt=attempt,
                policy=agent,
                model=model,
                scaffold=agent,
                reward=1.0 if resolved else 0.0,
                passed=bool(resolved),
                termination=termination,
                tests=tests,
                verifier_error=verr,
                verifier_status="verifier_error" if verr else "ok",
                steps=steps,
                usage=usage,
                started_at=str(r.get("trial_started_at") or ""),
                finished_at=str(r.get("trial_ended_at") or ""),
                # ``task_description`` in early Terminal-Bench releases
                messages=[{"role": "user", "content": str(text)}]
                if (text := r.get("instruction") or r.get("task_description"))
                else [],
                imported_from="terminal-bench",
                trial_name=r["trial_name"],
                failure_mode=mode,
            )
        )
    return ImportedRun(name, "terminal-bench", root, _ordered(out), {"agent": agent, "model": model, **meta})


#: Harbor's exception types its error policy files as a failed sandbox (not the agent's doing).
_HARBOR_SANDBOX_ERRORS = frozenset(
    {
        "EnvironmentStartTimeoutError",
        "SandboxBuildFailedError",
        "AgentSetupTimeoutError",
        "HealthcheckError",
        "SandboxLikelyOutOfMemoryError",
        "MemoryLimitExceededError",
        "SSHAccessError",
        "RuntimeRequestError",
        "AddTestsDirError",
        "DownloadVerifierDirError",
    }
)


def _harbor_termination(exc_type: str | None) -> tuple[str, str | None]:
    if exc_type is None:
        return "submitted", None
    if exc_type == "AgentTimeoutError":
        return "time_limit", None
    if exc_type == "VerifierTimeoutError":
        return "submitted", "verifier timed out (Harbor VerifierTimeoutError)"
    if exc_type.startswith(("Reward", "Verifier")):
        return "submitted", f"no valid reward (Harbor {exc_type})"
    if exc_type.startswith(("ContextLength", "ContextWindow", "OutputLength", "OutputToken")):
        return "context_overflow", None
    if exc_type == HARBOR_EXCEPTIONS["parse_error"]:
        return "parse_error", None
    if exc_type in _HARBOR_SANDBOX_ERRORS or "Environment" in exc_type or "Docker" in exc_type:
        return "sandbox_error", None
    return "policy_error", None


def _import_harbor(root: Path, name: str) -> ImportedRun:
    trials = []
    for f in sorted(root.glob("*/result.json")):
        r = _read_json(f)
        if not isinstance(r, dict):
            raise ResultsFormatError(f"{f}: not a JSON object")
        if "trial_name" not in r:
            continue  # not a trial folder
        for key in ("task_name", "trial_name"):
            if not isinstance(r.get(key), str):
                raise ResultsFormatError(f"{f}: field '{key}' missing or not a string")
        trials.append((f, r))

    # Harbor numbers no attempts: they follow the start times (a job written by ltenv keeps its own).
    def recorded_attempt(r: dict[str, Any]) -> int | None:
        value = ((r.get("agent_result") or {}).get("metadata") or {}).get("attempt")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    trials.sort(
        key=lambda fr: (
            fr[1]["task_name"],
            recorded_attempt(fr[1]) if recorded_attempt(fr[1]) is not None else -1,
            str(fr[1].get("started_at") or ""),
            fr[1]["trial_name"],
        )
    )
    seen: Counter[str] = Counter()
    out = []
    agents, models = set(), set()
    for f, r in trials:
        task = r["task_name"]
        attempt = seen[task]
        seen[task] += 1
        agent_info = r.get("agent_info") or {}
        agent = str(agent_info.get("name") or "unknown")
        model_info = agent_info.get("model_info") or {}
        model = model_info.get("name")
        if model and model_info.get("provider"):  # as given to harbor run -m: LiteLLM's provider/model
            model = f"{model_info['provider']}/{model}"
        agents.add(agent)
        if model:
            models.add(model)
        # A multi-step trial records its failures and token counts on its steps (step_results), as Harbor's
        # TrialResult reads them: the trial's exception first, then the steps' in order.
        steps = [x for x in r.get("step_results") or [] if isinstance(x, dict)]
        exc = next(
            (
                e
                for e in [r.get("exception_info"), *(x.get("exception_info") for x in steps)]
                if isinstance(e, dict)
            ),
            None,
        )
        exc_type = exc.get("exception_type") if exc else None
        termination, verr = _harbor_termination(exc_type)
        verifier_result = r.get("verifier_result") or {}
        rewards = verifier_result.get("rewards")
        if rewards is None and isinstance(verifier_result.get("reward"), int | float):
            rewards = {"reward": verifier_result["reward"]}  # early Harbor: one reward, no dict
        if rewards is not None and not isinstance(rewards, dict):
            raise ResultsFormatError(f"{f}: field 'verifier_result.rewards' is not an object")
        reward = None
        if rewards:
            value = rewards.get("reward", next(iter(rewards.values())))
            if not isinstance(value, int | float):
                raise ResultsFormatError(f"{f}: field 'verifier_result.rewards.reward' is not a number")
            reward = float(value)
        elif verr is None and termination in ("submitted", "time_limit"):
            verr = "no reward recorded (Harbor verifier_result is null)"
        contexts = [r["agent_result"]] if isinstance(r.get("agent_result"), dict) else []
        contexts = contexts or [x["agent_result"] for x in steps if isinstance(x.get("agent_result"), dict)]
        usage = {}
        for key, field_name in (
            ("prompt_tokens", "n_input_tokens"),
            ("completion_tokens", "n_output_tokens"),
        ):
            counts = [c[field_name] for c in contexts if isinstance(c.get(field_name), int)]
            if counts:
                usage[key] = sum(counts)
        out.append(
            Trajectory(
                run=name,
                task=task,
                task_checksum=str(r.get("task_checksum") or ""),
                attempt=attempt,
                policy=agent,
                model=model,
                scaffold=agent,
                reward=reward or 0.0,
                passed=reward is not None and reward >= 1.0,
                termination=termination,
                verifier_error=verr,
                verifier_status="verifier_error" if verr else "ok",
                error=f"{exc_type}: {exc.get('exception_message', '')}" if exc_type else None,
                usage=usage,
                started_at=str(r.get("started_at") or ""),
                finished_at=str(r.get("finished_at") or ""),
                imported_from="harbor",
                trial_name=r["trial_name"],
            )
        )
    job = _read_json(root / "result.json") if (root / "result.json").is_file() else {}
    info = {"agent": ", ".join(sorted(agents)), "model": ", ".join(sorted(models)) or None, "job": job}
    return ImportedRun(name, "harbor", root, _ordered(out), info)


def import_run(path: str | Path, *, name: str | None = None) -> ImportedRun:
    """Read a Terminal-Bench run folder (``runs/<run-id>``), a Harbor job folder (``jobs/<job>``) or an ltenv
    run folder as ltenv :class:`Trajectory` records named ``name`` (default: the folder's name).

    Terminal-Bench ``is_resolved`` becomes ``passed`` (reward 1 or 0), Harbor ``rewards["reward"]`` the
    reward (a pass at 1); failure modes and exception types map onto ltenv terminations (an agent timeout
    onto ``time_limit``; a test timeout or a missing reward onto a ``verifier_error``).
    """
    p = Path(path)
    layout = detect_layout(p)
    name = name or p.name
    if layout is None:
        raise ResultsFormatError(
            f"{p}: not a results folder: no trajectories.jsonl (ltenv), run_metadata.json or "
            "<task>/<trial>/results.json (Terminal-Bench), or <trial>/result.json (Harbor)"
        )
    if layout == "terminal-bench":
        return _import_tb(p, name)
    if layout == "harbor":
        return _import_harbor(p, name)
    trajs = _load_run(p)
    for t in trajs:
        t.run = name
    return ImportedRun(name, "ltenv", p, trajs, _run_info(p) if p.is_dir() else {})


def save_imported(run: ImportedRun, out: str | Path) -> Path:
    """Write an imported run as an ltenv run folder (``trajectories.jsonl``, ``run.json``, ``results.json``)
    that ``ltenv eval --from``, ``ltenv leaderboard`` and ``ltenv compare`` read like any other run."""
    from ltenv.evaluation import evaluate
    from ltenv.trajectory import TrajectoryStore, now_iso

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    store = d / "trajectories.jsonl"
    if store.exists():
        raise ResultsFormatError(f"{store}: already exists; import into an empty folder")
    ts = TrajectoryStore(store)
    for t in run.trajectories:
        t.run = d.name
        ts.append(t)
    _write_json(
        d / "run.json",
        {
            "run": d.name,
            "imported_from": {"layout": run.layout, "path": str(run.path.absolute()), "at": now_iso()},
            "config": {"policy": run.info.get("agent"), "model": run.info.get("model")},
            "tasks": [{"name": n} for n in sorted({t.task for t in run.trajectories})],
            "status": "imported",
        },
    )
    evaluate(d)
    return d


# ---------------------------------------------------------------------------------------------- compare


@dataclass
class TaskDiff:
    """One task's outcome in two runs (``None``: the task is not in that run)."""

    task: str
    a: tuple[int, int] | None
    """(passed, attempts) in run A."""
    b: tuple[int, int] | None

    @property
    def rate_a(self) -> float | None:
        return None if self.a is None else self.a[0] / self.a[1]

    @property
    def rate_b(self) -> float | None:
        return None if self.b is None else self.b[0] / self.b[1]

    @property
    def delta(self) -> float | None:
        """pass@1 of B minus pass@1 of A, where the task is in both."""
        if self.rate_a is None or self.rate_b is None:
            return None
        return self.rate_b - self.rate_a


@dataclass
class RunComparison:
    """Two runs lined up task by task (:func:`compare_runs`)."""

    a: str
    b: str
    rows: list[TaskDiff]

    @property
    def common(self) -> list[TaskDiff]:
        return [r for r in self.rows if r.delta is not None]

    @property
    def differing(self) -> list[TaskDiff]:
        """Tasks in both runs whose pass@1 differs."""
        return [r for r in self.common if r.delta]

    def pass_at_1(self, side: Literal["a", "b"], *, common_only: bool = True) -> float:
        """Mean pass@1 of one side over the tasks both runs have (or all of that side's tasks)."""
        rows = self.common if common_only else self.rows
        rates = [r.rate_a if side == "a" else r.rate_b for r in rows]
        vals = [x for x in rates if x is not None]
        return sum(vals) / len(vals) if vals else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "common_tasks": len(self.common),
            "pass_at_1": {"a": self.pass_at_1("a"), "b": self.pass_at_1("b")},
            "tasks": [
                {
                    "task": r.task,
                    "a": list(r.a) if r.a else None,
                    "b": list(r.b) if r.b else None,
                    "delta": r.delta,
                }
                for r in self.rows
            ],
        }

    def text(self, *, all_tasks: bool = False) -> str:
        """A plain-text table of the tasks whose outcome differs (``all_tasks``: every task) and a summary."""

        def cell(x: tuple[int, int] | None) -> str:
            return "-" if x is None else f"{x[0]}/{x[1]}"

        shown = [r for r in self.rows if all_tasks or r.delta != 0]
        width = max([len("task"), *(len(r.task) for r in shown)])
        wa, wb = max(len(self.a), 5), max(len(self.b), 5)
        lines = [f"{'task':<{width}}  {self.a:>{wa}}  {self.b:>{wb}}  delta"]
        for r in shown:
            delta = "only A" if r.b is None else "only B" if r.a is None else f"{r.delta:+.2f}"
            lines.append(f"{r.task:<{width}}  {cell(r.a):>{wa}}  {cell(r.b):>{wb}}  {delta}")
        only_a = sum(r.b is None for r in self.rows)
        only_b = sum(r.a is None for r in self.rows)
        lines.append(
            f"{len(self.common)} task(s) in both: pass@1 {self.a} {100 * self.pass_at_1('a'):.1f}%, "
            f"{self.b} {100 * self.pass_at_1('b'):.1f}%; {len(self.differing)} differ; "
            f"{only_a} only in {self.a}, {only_b} only in {self.b}"
        )
        return "\n".join(lines) + "\n"


def compare_runs(a: str | Path | ImportedRun, b: str | Path | ImportedRun) -> RunComparison:
    """Line two runs up task by task: each an ltenv run folder, a Terminal-Bench run folder or a Harbor job
    folder (or an :class:`ImportedRun`). Episodes count as passes as in :func:`ltenv.evaluation.evaluate`."""
    from ltenv.evaluation import episode_passed

    runs = [r if isinstance(r, ImportedRun) else import_run(r) for r in (a, b)]
    if runs[0].name == runs[1].name:
        runs[0].name, runs[1].name = f"{runs[0].name}(A)", f"{runs[1].name}(B)"
    counts: list[dict[str, tuple[int, int]]] = []
    for r in runs:
        per: dict[str, list[bool]] = defaultdict(list)
        for t in r.trajectories:
            per[t.task].append(episode_passed(t))
        counts.append({task: (sum(v), len(v)) for task, v in per.items()})
    tasks = sorted(set(counts[0]) | set(counts[1]))
    rows = [TaskDiff(task, counts[0].get(task), counts[1].get(task)) for task in tasks]
    return RunComparison(runs[0].name, runs[1].name, rows)
