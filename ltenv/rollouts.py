"""Parallel, resumable episode collection: k attempts of each task, one JSONL record per finished episode.

Output folder (``out``)::

    run.json              the run's configuration and bookkeeping (see below)
    trajectories.jsonl    one :class:`~ltenv.trajectory.Trajectory` per line, appended as episodes finish
    casts/<task>.<attempt>.cast   asciinema recordings (``cast=True``)

Resume: a rerun with the same output folder skips every (task, attempt) already in
``trajectories.jsonl``. Records are appended one complete line at a time and fsynced, so a killed run loses
only the episodes in flight. The run's *identity* (policy, model, policy settings, scaffold, backend,
max_turns, max_parse_errors, seed, env_kwargs) must match ``run.json``, else :class:`RunConfigMismatch`
(``overwrite=True`` moves the old files to ``out/replaced-<time>/`` first). The task list and ``k`` may
differ: a rerun with ``k=4`` after ``k=1`` adds attempts 1..3, exactly the episodes a single ``k=4`` run
would have made (seeds depend only on (seed, task, attempt)).

Example:
    >>> from ltenv.agents import make_policy                                    # doctest: +SKIP
    >>> res = ltenv.rollout(make_policy("oracle"), tasks, k=2, out="runs/oracle")  # doctest: +SKIP
    >>> res.pass_rate, len(res.trajectories)                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ltenv.errors import LtenvError
from ltenv.executors import (
    EpisodeFn,
    EpisodeJob,
    EpisodeOutcome,
    Executor,
    error_trajectory,
    make_executor,
    policy_identity,
)
from ltenv.tasks.model import Task
from ltenv.trajectory import Trajectory, TrajectoryStore, now_iso, versions

RUN_FILE = "run.json"
TRAJECTORIES_FILE = "trajectories.jsonl"
CASTS_DIR = "casts"
ERROR_TERMINATIONS = frozenset({"sandbox_error", "policy_error"})
IDENTITY_FIELDS = (
    "policy",
    "model",
    "policy_config",
    "scaffold",
    "backend",
    "max_turns",
    "max_parse_errors",
    "seed",
    "env_kwargs",
)


class RunConfigMismatch(LtenvError):
    """The output folder holds a run made with another configuration."""


class RunBusy(LtenvError):
    """Another process is writing to the output folder."""


def episode_seed(seed: int | None, task: str, attempt: int) -> int | None:
    """The seed of one episode: a function of (run seed, task name, attempt) only; ``None`` stays ``None``."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}\0{task}\0{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# ------------------------------------------------------------------------------------------ results
@dataclass
class RolloutStats:
    """Counts of a rollout in progress (``recorded`` includes episodes found from an earlier run)."""

    total: int = 0
    skipped: int = 0
    done: int = 0
    running: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def recorded(self) -> int:
        return self.skipped + self.done

    @property
    def remaining(self) -> int:
        return self.total - self.recorded

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.recorded if self.recorded else None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left at this call's pace so far (``None`` before the first episode finishes)."""
        if not self.done:
            return None
        return self.remaining * self.elapsed / self.done

    def count(self, traj: Trajectory) -> None:
        if traj.termination in ERROR_TERMINATIONS:
            self.errors += 1
        elif traj.passed and traj.verified:  # a tampered episode is never a pass
            self.passed += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class RolloutEvent:
    """What :func:`rollout` reports to ``on_event``: ``start``, ``episode_started``, ``episode_finished``
    (with the ``trajectory``) and ``finish``. ``stats`` is a snapshot."""

    kind: Literal["start", "episode_started", "episode_finished", "finish"]
    stats: RolloutStats
    task: str | None = None
    attempt: int | None = None
    trajectory: Trajectory | None = None


@dataclass
class RolloutResult:
    """What a rollout left in ``out``: the records of every requested (task, attempt)."""

    out: Path
    trajectories: list[Trajectory]
    """One per requested (task, attempt), in task order then attempt, including resumed ones."""
    ran: int
    """Episodes run by this call."""
    skipped: int
    """Requested episodes already recorded by an earlier run."""
    seconds: float
    config: dict[str, Any]

    @property
    def run_file(self) -> Path:
        return self.out / RUN_FILE

    @property
    def trajectories_file(self) -> Path:
        return self.out / TRAJECTORIES_FILE

    @property
    def passed(self) -> int:
        return sum(t.passed and t.verified for t in self.trajectories)

    @property
    def errors(self) -> int:
        return sum(t.termination in ERROR_TERMINATIONS for t in self.trajectories)

    @property
    def pass_rate(self) -> float:
        return self.passed / len(self.trajectories) if self.trajectories else 0.0


# ------------------------------------------------------------------------------------------ run dir
def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str, sort_keys=True))


SAMPLING_SETTINGS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "max_new_tokens",
    "repetition_penalty",
    "extra_body",
    "adapter",
)


def _policy_config(policy: Any) -> dict[str, Any]:
    """Settings that change what a policy says: ``policy.config`` where offered, else the sampling
    attributes it has (temperature, top_p, max_tokens...). Endpoints, retries and concurrency are not part
    of a run's identity: a resumed run may use another server or more workers."""
    cfg = getattr(policy, "config", None)
    if callable(cfg):
        cfg = cfg()
    if hasattr(cfg, "model_dump"):
        cfg = cfg.model_dump()
    elif hasattr(cfg, "__dataclass_fields__"):
        from dataclasses import asdict

        cfg = asdict(cfg)
    if not isinstance(cfg, dict):
        cfg = {k: getattr(policy, k) for k in SAMPLING_SETTINGS if getattr(policy, k, None) is not None}
    secret = ("api_key", "token", "secret", "password")
    return _jsonable({k: v for k, v in cfg.items() if not any(s in k.lower() for s in secret)})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class _RunDir:
    """The output folder: an exclusive lock for the run's duration, run.json, the store, casts."""

    def __init__(self, out: Path):
        self.out = out
        self.store = TrajectoryStore(out / TRAJECTORIES_FILE)
        self._lock_fd: int | None = None

    def lock(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunBusy(
                f"{self.out}: another rollout is writing to this folder (pid {holder or '?'}); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_run(self) -> dict[str, Any] | None:
        f = self.out / RUN_FILE
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except ValueError as e:
            raise RunConfigMismatch(
                f"{f}: unreadable ({e}); pass overwrite (--overwrite) to start afresh"
            ) from None

    def write_run(self, data: dict[str, Any]) -> None:
        _write_json(self.out / RUN_FILE, data)

    def set_aside(self) -> Path | None:
        """Move an earlier run's files to ``replaced-<UTC time>/`` (nothing is deleted)."""
        names = [n for n in (RUN_FILE, TRAJECTORIES_FILE, CASTS_DIR) if (self.out / n).exists()]
        if not names:
            return None
        dest = self.out / ("replaced-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
        dest.mkdir()
        for n in names:
            os.replace(self.out / n, dest / n)
        return dest

    def write_cast(self, task: str, attempt: int, text: str) -> None:
        d = self.out / CASTS_DIR
        d.mkdir(exist_ok=True)
        path = d / f"{task}.{attempt}.cast"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _mismatch(previous: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    old = previous.get("config", {})
    return [
        f"{k}: {json.dumps(old.get(k))} in run.json, {json.dumps(identity.get(k))} now"
        for k in IDENTITY_FIELDS
        if old.get(k) != identity.get(k)
    ]


# ------------------------------------------------------------------------------------------ rollout
def _resolve_tasks(tasks: Iterable[Task | str | Path]) -> list[Task]:
    from ltenv.tasks import load_task

    out: list[Task] = []
    seen: set[str] = set()
    for t in tasks:
        task = t if isinstance(t, Task) else load_task(Path(t))
        if task.name in seen:
            raise LtenvError(f"task name {task.name!r} appears twice in the selection ({task.path})")
        seen.add(task.name)
        out.append(task)
    return out


def rollout(
    policy: Any,
    tasks: Iterable[Task | str | Path],
    *,
    out: Path | str,
    k: int = 1,
    jobs: int = 4,
    scaffold: str = "terminus",
    backend: str = "bwrap",
    max_turns: int = 50,
    max_parse_errors: int = 3,
    seed: int | None = None,
    cast: bool = False,
    executor: str | Executor = "local",
    image_store: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    on_event: Callable[[RolloutEvent], None] | None = None,
    progress: bool = False,
    overwrite: bool = False,
    episode_fn: EpisodeFn | None = None,
) -> RolloutResult:
    """Run ``k`` attempts of each task with ``policy``, ``jobs`` episodes at a time; record every episode.

    Each finished episode is appended to ``out/trajectories.jsonl`` at once (an episode that raises is
    recorded too, with ``termination`` ``"sandbox_error"`` or ``"policy_error"`` and the error text).
    Pairs already recorded there are skipped (resume). Episodes are ordered attempt-major (every task's
    attempt 0 first), so an interrupted run has an even spread.

    Args:
        policy: a :class:`ltenv.agents.Policy` (``make_policy(spec)``); thread-safe and picklable.
        tasks: loaded tasks or task folders (names must be distinct).
        out: the run folder (created). Its name becomes each record's ``run``.
        k: attempts per task (attempt indices ``0..k-1``).
        jobs: episodes in flight at once.
        seed: run seed; episode seeds are :func:`episode_seed` (seed, task, attempt). ``None``: unseeded.
        cast: write asciinema recordings to ``out/casts/<task>.<attempt>.cast``.
        executor: ``"local"`` (threads), ``"ray"`` / ``"auto"`` / a Ray address, or an :class:`Executor`.
        image_store: a shared :class:`ltenv.sandbox.images.ImageStore` (default: a new one).
        env_kwargs: extra :class:`ltenv.env.TerminalEnv` keyword arguments.
        on_event: called on the driver thread with each :class:`RolloutEvent`.
        progress: show live progress on stderr (a rich status on a terminal, else a line per episode).
        overwrite: if ``out`` holds a run with another configuration, move it to ``out/replaced-*/``
            instead of raising :class:`RunConfigMismatch`.
        episode_fn: what runs one episode (default :func:`ltenv.agents.run_episode`).

    Returns:
        :class:`RolloutResult` with the records of every requested (task, attempt).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if episode_fn is None:
        from ltenv.agents import run_episode

        episode_fn = run_episode
    out = Path(out).absolute()
    selected = _resolve_tasks(tasks)
    spec, model = policy_identity(policy)
    identity = _jsonable(
        {
            "policy": spec,
            "model": model,
            "policy_config": _policy_config(policy),
            "scaffold": scaffold,
            "backend": backend,
            "max_turns": max_turns,
            "max_parse_errors": max_parse_errors,
            "seed": seed,
            "env_kwargs": env_kwargs or {},
        }
    )
    run_dir = _RunDir(out)
    run_dir.lock()
    display = RolloutProgress(enabled=progress)
    try:
        previous = run_dir.read_run()
        if previous is None and run_dir.store.path.exists() and run_dir.store.path.stat().st_size:
            previous = {"config": {}}  # records of unknown provenance: never mixed silently
        if previous is not None and _mismatch(previous, identity):
            if not overwrite:
                lines = "\n  ".join(_mismatch(previous, identity)) or "no run.json beside trajectories.jsonl"
                raise RunConfigMismatch(
                    f"{out} holds a run with another configuration:\n  {lines}\n"
                    "Use another output folder, or overwrite (--overwrite) to move the old run to "
                    f"{out}/replaced-<time>/ and start afresh."
                )
            run_dir.set_aside()
            previous = None
        dropped = run_dir.store.repair()
        order = [(t.name, a) for t in selected for a in range(k)]
        wanted = set(order)
        records = {t.key: t for t in run_dir.store.read() if t.key in wanted}  # resumed episodes
        todo = [(t, a) for a in range(k) for t in selected if (t.name, a) not in records]

        task_rows = {r["name"]: r for r in (previous or {}).get("tasks", [])}
        for t in selected:
            task_rows[t.name] = {"name": t.name, "path": str(t.path), "checksum": t.checksum()}
        started_at = now_iso()
        image_store = image_store if image_store is not None else _default_store()
        ex = make_executor(executor, jobs=jobs, image_store=image_store)
        stats = RolloutStats(total=len(order), skipped=len(records))
        status = "interrupted"
        run_info: dict[str, Any] = {}
        try:
            described = ex.describe()
            history = list((previous or {}).get("history", []))
            history.append(
                {
                    "started_at": started_at,
                    "pid": os.getpid(),
                    "requested": len(order),
                    "skipped": len(records),
                    "torn_bytes_dropped": dropped,
                    **described,
                }
            )
            run_info = {
                "run": out.name,
                "config": identity,
                "k": max(k, int((previous or {}).get("k", 0))),
                "tasks": list(task_rows.values()),
                "jobs": jobs,
                "cast": cast,
                "versions": {**versions(), **({"ray": described["ray"]} if "ray" in described else {})},
                "created_at": (previous or {}).get("created_at", started_at),
                "started_at": started_at,
                "finished_at": None,
                "status": "running",
                "history": history,
            }
            run_dir.write_run(run_info)
            for traj in records.values():
                stats.count(traj)

            def emit(kind: str, **kw: Any) -> None:
                event = RolloutEvent(kind, replace(stats), **kw)  # type: ignore[arg-type]
                display.update(event)
                if on_event is not None:
                    on_event(event)

            options = {
                "scaffold": scaffold,
                "backend": backend,
                "max_turns": max_turns,
                "max_parse_errors": max_parse_errors,
                "run": out.name,
                "env_kwargs": env_kwargs,
            }
            t0 = time.monotonic()
            display.start(stats)
            emit("start")
            for traj in _drive(ex, episode_fn, policy, todo, jobs, seed, cast, options, run_dir, stats, emit):
                records[traj.key] = traj
            status = "finished"
        finally:
            if ex is not executor:  # an Executor passed in belongs to the caller
                with contextlib.suppress(Exception):
                    ex.close()
            display.stop()
            if run_info:
                run_info["status"] = status
                run_info["finished_at"] = now_iso()
                run_info["history"][-1].update(
                    finished_at=run_info["finished_at"], ran=stats.done, status=status
                )
                with contextlib.suppress(OSError):
                    run_dir.write_run(run_info)
        emit("finish")
        return RolloutResult(
            out=out,
            trajectories=[records[key] for key in order if key in records],
            ran=stats.done,
            skipped=stats.skipped,
            seconds=time.monotonic() - t0,
            config=run_info,
        )
    finally:
        run_dir.unlock()


def _default_store() -> Any:
    from ltenv.sandbox.images import ImageStore

    return ImageStore()


def _drive(
    ex: Executor,
    episode_fn: EpisodeFn,
    policy: Any,
    todo: list[tuple[Task, int]],
    jobs: int,
    seed: int | None,
    cast: bool,
    options: dict[str, Any],
    run_dir: _RunDir,
    stats: RolloutStats,
    emit: Callable[..., None],
) -> Iterator[Trajectory]:
    """Keep ``jobs`` episodes in flight; record each as it finishes (on this thread only), yield it."""
    pending = list(reversed(todo))
    in_flight: dict[Future[EpisodeOutcome], EpisodeJob] = {}
    while pending or in_flight:
        while pending and len(in_flight) < max(1, jobs):
            task, attempt = pending.pop()
            job = EpisodeJob(task, attempt, episode_seed(seed, task.name, attempt), cast)
            in_flight[ex.submit(job, episode_fn=episode_fn, policy=policy, options=options)] = job
            stats.running = len(in_flight)
            emit("episode_started", task=task.name, attempt=attempt)
        finished, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
        for fut in finished:
            job = in_flight.pop(fut)
            try:
                outcome = fut.result()
            except Exception as e:  # the executor itself failed (a Ray worker died...): still recorded
                outcome = EpisodeOutcome(
                    error_trajectory(job, policy, e, termination="sandbox_error", options=options)
                )
            traj = outcome.trajectory
            # The record's key is the job's, whatever the episode function put there: resume depends on it.
            traj.task, traj.attempt, traj.run = job.task.name, job.attempt, options["run"]
            if traj.seed is None:
                traj.seed = job.seed
            if outcome.cast is not None:
                run_dir.write_cast(job.task.name, job.attempt, outcome.cast)
            run_dir.store.append(traj)
            stats.done += 1
            stats.running = len(in_flight)
            stats.count(traj)
            emit("episode_finished", task=traj.task, attempt=traj.attempt, trajectory=traj)
            yield traj


# ------------------------------------------------------------------------------------------ progress
def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def episode_line(stats: RolloutStats, traj: Trajectory) -> str:
    """One plain line per finished episode (the non-terminal progress format)."""
    if traj.termination in ERROR_TERMINATIONS:
        verdict = "ERROR"
    elif traj.verifier_status == "tampered":
        verdict = "TAMPERED"
    else:
        verdict = "PASS" if traj.passed and traj.verified else "FAIL"
    rate = f"{stats.pass_rate:.0%}" if stats.pass_rate is not None else "--"
    line = (
        f"[{stats.recorded}/{stats.total}] {traj.task}#{traj.attempt} {verdict} reward={traj.reward:g} "
        f"{traj.termination} turns={traj.turns} {traj.timings.get('total', 0.0):.1f}s | pass {rate} "
        f"running {stats.running} errors {stats.errors} eta {_fmt_seconds(stats.eta)}"
    )
    if traj.error:
        line += f" | {traj.error.splitlines()[0][:200]}"
    return line


class RolloutProgress:
    """Live progress on stderr: a rich status line on a terminal, else one plain line per episode."""

    def __init__(self, enabled: bool = True, console: Any = None):
        self.enabled = enabled
        self._console = console
        self._live: Any = None
        self._stats: RolloutStats | None = None

    def _render(self) -> Any:
        from rich.text import Text

        s = self._stats
        if s is None:
            return Text("")
        rate = f"{s.pass_rate:.1%}" if s.pass_rate is not None else "--"
        t = Text()
        t.append(f"{s.recorded}/{s.total} done", style="bold")
        if s.skipped:
            t.append(f" ({s.skipped} resumed)", style="dim")
        t.append(f"  running {s.running}", style="cyan")
        t.append(f"  passed {s.passed}", style="green")
        t.append(f"  failed {s.failed}", style="red")
        t.append(f"  errors {s.errors}", style="yellow" if s.errors else "dim")
        t.append(f"  pass rate {rate}  elapsed {_fmt_seconds(s.elapsed)}  eta {_fmt_seconds(s.eta)}")
        return t

    def start(self, stats: RolloutStats) -> None:
        if not self.enabled:
            return
        from rich.console import Console

        self._stats = stats
        if self._console is None:
            self._console = Console(stderr=True)
        if self._console.is_terminal:
            from rich.live import Live

            self._live = Live(
                get_renderable=self._render, console=self._console, refresh_per_second=4, transient=False
            )
            self._live.start()

    def update(self, event: RolloutEvent) -> None:
        if not self.enabled:
            return
        self._stats = event.stats
        if event.kind != "episode_finished" or event.trajectory is None:
            return
        traj = event.trajectory
        if self._live is not None:
            if traj.termination in ERROR_TERMINATIONS:  # errors stay visible above the status line
                from rich.markup import escape

                first = (traj.error or "").splitlines()[0][:300] if traj.error else traj.termination
                self._live.console.print(
                    f"[yellow]error[/] {escape(traj.task)}#{traj.attempt}: {escape(first)}", highlight=False
                )
        else:
            print(episode_line(event.stats, traj), file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
