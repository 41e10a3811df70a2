"""Where rollout episodes run: a local thread pool or a Ray cluster, behind one small interface.

An :class:`Executor` takes an :class:`EpisodeJob` and returns a :class:`concurrent.futures.Future` of its
:class:`EpisodeOutcome`. The driver (:func:`ltenv.rollouts.rollout`) keeps at most ``jobs`` futures in flight
and appends each outcome to the run's store as it arrives, so outputs, progress and resume are the same
whichever executor ran the episodes.

The episode itself always runs through :func:`run_job`: it never raises (an exception becomes a
trajectory with ``termination="sandbox_error"`` or ``"policy_error"`` and the error text) and it returns
the asciinema cast as text rather than leaving it on the machine that ran it (a Ray worker may be another
node); the driver writes it.

Example:
    >>> with make_executor("local", jobs=4) as ex:                  # doctest: +SKIP
    ...     fut = ex.submit(job, episode_fn=run_episode, policy=policy, options={})
    ...     fut.result().trajectory.reward
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltenv.errors import ImageError, LtenvError, SandboxError, ShellError
from ltenv.tasks.model import Task
from ltenv.trajectory import Trajectory, now_iso, versions

EpisodeFn = Callable[..., Trajectory]
"""The signature of :func:`ltenv.agents.run_episode`: ``(task, policy, *, attempt, seed, cast_path, ...)``."""

LOCAL = "local"


@dataclass(frozen=True)
class EpisodeJob:
    """One (task, attempt) to run."""

    task: Task
    attempt: int
    seed: int | None
    cast: bool = False


@dataclass
class EpisodeOutcome:
    trajectory: Trajectory
    cast: str | None = None
    """The asciinema cast's text (``cast=True`` jobs), written by the driver."""


def policy_identity(policy: Any) -> tuple[str, str | None]:
    """``(spec, model)`` of a policy: its ``spec`` if it has one, else ``<name>:<path or model>`` as
    :func:`ltenv.agents.make_policy` spells it (``openai:MODEL``, ``hf:PATH``, ``oracle``...)."""
    model = getattr(policy, "model", None)
    model = model if isinstance(model, str) else None
    spec = getattr(policy, "spec", None)
    if isinstance(spec, str) and spec:
        return spec, model
    name = getattr(policy, "name", None)
    if not isinstance(name, str) or not name:
        return f"{type(policy).__module__}:{type(policy).__qualname__}", model
    arg = getattr(policy, "path", None) or model
    return (f"{name}:{arg}" if arg else name), model


def classify_error(exc: BaseException) -> str:
    """The termination an exception stands for: the sandbox/image/shell side, or the policy side."""
    if isinstance(exc, SandboxError | ImageError | ShellError | OSError):
        return "sandbox_error"
    if isinstance(exc, LtenvError) and type(exc).__name__.lower().startswith(("sandbox", "image")):
        return "sandbox_error"
    return "policy_error"


def error_trajectory(
    job: EpisodeJob,
    policy: Any,
    exc: BaseException | str,
    *,
    termination: str | None = None,
    options: dict[str, Any] | None = None,
    started_at: str = "",
    seconds: float = 0.0,
) -> Trajectory:
    """The record of an episode that raised instead of returning a trajectory."""
    options = options or {}
    spec, model = policy_identity(policy)
    name = getattr(policy, "name", None)
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}".strip()
        tb = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in tb if f"{os.sep}ltenv{os.sep}" in f.filename] or tb  # where in ltenv it failed
        if ours:
            last = ours[-1]
            text += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
        termination = termination or classify_error(exc)
    else:
        text = exc
        termination = termination or "sandbox_error"
    task = job.task
    return Trajectory(
        run=options.get("run", ""),
        task=task.name,
        # [task] name of task.toml, when it differs from the folder name (the id).
        **({"task_display_name": task.display_name} if task.display_name != task.name else {}),
        task_path=str(task.path),
        task_checksum=_checksum(task),
        task_format=task.format,
        domain=task.domain,
        difficulty=task.difficulty,
        attempt=job.attempt,
        seed=job.seed,
        policy=name if isinstance(name, str) and name else spec,  # as run_episode records it
        model=model,
        scaffold=options.get("scaffold", ""),
        backend=options.get("backend", "bwrap"),
        termination=termination,
        error=text,
        timings={"total": round(seconds, 3)},
        started_at=started_at or now_iso(),
        finished_at=now_iso(),
        versions=versions(),
    )


def _checksum(task: Task) -> str:
    try:
        return task.checksum()
    except OSError:
        return ""


def run_job(episode_fn: EpisodeFn, policy: Any, job: EpisodeJob, options: dict[str, Any]) -> EpisodeOutcome:
    """Run one episode; never raises (except KeyboardInterrupt/SystemExit)."""
    started = now_iso()
    t0 = time.monotonic()
    cast_dir = tempfile.mkdtemp(prefix="ltenv-cast-") if job.cast else None
    cast_path = Path(cast_dir) / "episode.cast" if cast_dir else None
    try:
        try:
            traj = episode_fn(
                job.task, policy, attempt=job.attempt, seed=job.seed, cast_path=cast_path, **options
            )
            if not isinstance(traj, Trajectory):
                raise TypeError(f"the episode function returned {type(traj).__name__}, not a Trajectory")
        except Exception as e:
            traj = error_trajectory(
                job, policy, e, options=options, started_at=started, seconds=time.monotonic() - t0
            )
        cast = None
        if cast_path is not None and cast_path.is_file():
            cast = cast_path.read_text(encoding="utf-8", errors="replace")
        return EpisodeOutcome(traj, cast)
    finally:
        if cast_dir:
            for f in Path(cast_dir).iterdir():
                f.unlink(missing_ok=True)
            os.rmdir(cast_dir)


class Executor(ABC):
    """Runs :class:`EpisodeJob` s and hands back futures of their outcomes."""

    name: str = "executor"

    @abstractmethod
    def submit(
        self, job: EpisodeJob, *, episode_fn: EpisodeFn, policy: Any, options: dict[str, Any]
    ) -> Future[EpisodeOutcome]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers. Episodes still running are abandoned (their results are not waited for)."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """A pool of ``jobs`` daemon threads in this process sharing one image store.

    Daemon threads (not :class:`~concurrent.futures.ThreadPoolExecutor`, which joins its threads at
    interpreter exit): an interrupted rollout exits at once instead of waiting for episodes in flight.
    """

    name = LOCAL

    def __init__(self, jobs: int, image_store: Any = None):
        self.jobs = max(1, jobs)
        self.image_store = image_store
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[], EpisodeOutcome]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"ltenv-rollout-{i}", daemon=True)
            for i in range(self.jobs)
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

    def submit(
        self, job: EpisodeJob, *, episode_fn: EpisodeFn, policy: Any, options: dict[str, Any]
    ) -> Future[EpisodeOutcome]:
        fut: Future[EpisodeOutcome] = Future()
        opts = {**options, "image_store": self.image_store}
        self._queue.put((fut, lambda: run_job(episode_fn, policy, job, opts)))
        return fut

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "threads": self.jobs}


# ----------------------------------------------------------------------------------------------- Ray
_worker_stores: dict[tuple, Any] = {}
_worker_lock = threading.Lock()


def _worker_store(spec: tuple[str | None, tuple[tuple[str, str], ...], bool, bool]) -> Any:
    """One image store per worker process (it caches digests and holds a Docker client)."""
    from ltenv.sandbox.images import ImageStore

    with _worker_lock:
        store = _worker_stores.get(spec)
        if store is None:
            root, mapping, force_build, host_config = spec
            # Host build settings are the worker node's own (detected there), unless switched off.
            store = ImageStore(
                Path(root) if root else None,
                image_map=dict(mapping) or None,
                force_build=force_build,
                host_build_config=None if host_config else False,
            )
            _worker_stores[spec] = store
        return store


_worker_policies: dict[str, Any] = {}


def _worker_policy(boxed: list[Any]) -> Any:
    """The policy behind an object ref, unpickled once per worker process (an ``hf`` policy loads its
    model once, not once per episode). The ref comes in a list so that Ray does not resolve it itself."""
    import ray

    ref = boxed[0]
    key = ref.hex()
    with _worker_lock:
        policy = _worker_policies.get(key)
    if policy is None:
        policy = ray.get(ref)
        with _worker_lock:
            if len(_worker_policies) >= 4:  # policies of earlier rollouts on a long-lived cluster
                _worker_policies.pop(next(iter(_worker_policies)))
            policy = _worker_policies.setdefault(key, policy)
    return policy


def _ray_episode(
    episode_fn: EpisodeFn,
    boxed_policy: list[Any],
    job: EpisodeJob,
    options: dict[str, Any],
    store_spec: tuple,
) -> EpisodeOutcome:
    """Body of the Ray task: runs on a worker node, which drives its own sandboxes."""
    policy = _worker_policy(boxed_policy)
    return run_job(episode_fn, policy, job, {**options, "image_store": _worker_store(store_spec)})


def project_root() -> Path:
    """The folder holding the ``ltenv`` package (put on the Ray workers' ``PYTHONPATH``)."""
    return Path(__file__).resolve().parent.parent


class RayExecutor(Executor):
    """Episodes as Ray tasks; each worker node drives its own sandboxes, trajectories come back here.

    ``address``: ``"ray"`` connects to ``$RAY_ADDRESS`` if set, else starts a local cluster; ``"auto"``
    connects to the cluster running on this machine (``ray start --head``); anything else is a cluster
    address (``ray://host:10001``, ``host:6379``). If Ray is already initialized in this process, that
    connection is used as is (and left open on close).

    When this executor starts or joins a cluster it adds the folder holding ``ltenv`` to the workers'
    ``PYTHONPATH`` (enough for a cluster on this machine; other nodes need ltenv and its dependencies
    installed, and the task folders at the same paths, as for any Ray job). The policy is put in the
    object store once and shipped pickled to the workers. Each episode asks for ``num_cpus`` CPUs.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = "ray",
        *,
        image_store: Any = None,
        num_cpus: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
        init_kwargs: dict[str, Any] | None = None,
    ):
        import ray

        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            env = dict(runtime_env or {})
            env_vars = dict(env.get("env_vars", {}))
            path = os.pathsep.join(p for p in (str(project_root()), os.environ.get("PYTHONPATH")) if p)
            env_vars.setdefault("PYTHONPATH", path)
            for var in ("LTENV_CACHE_DIR", "LTENV_REGISTRY", "XDG_CACHE_HOME"):
                if os.environ.get(var):
                    env_vars.setdefault(var, os.environ[var])
            env["env_vars"] = env_vars
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            kwargs.update(init_kwargs or {})
            target = None if address in (None, "", "ray", "local") else address
            ray.init(address=target, runtime_env=env, **kwargs)
            self._owns = True
        from ltenv.sandbox.images import cache_dir

        store = image_store
        # The default cache is the worker's own default (its $HOME may differ from ours).
        root = str(store.root) if store is not None and store.root != cache_dir() else None
        mapping = tuple(sorted(store.image_map.mapping.items())) if store is not None else ()
        self._store_spec = (
            root,
            mapping,
            bool(store is not None and store.force_build),
            bool(store is None or store.host_build_config_enabled),
        )
        self._remote = ray.remote(_ray_episode).options(num_cpus=num_cpus, max_retries=0)
        self._policies: dict[int, Any] = {}
        self._in_flight: set[Any] = set()

    def submit(
        self, job: EpisodeJob, *, episode_fn: EpisodeFn, policy: Any, options: dict[str, Any]
    ) -> Future[EpisodeOutcome]:
        ref = self._policies.get(id(policy))
        if ref is None:
            ref = self._policies[id(policy)] = (self._ray.put(policy), policy)
        obj = self._remote.remote(episode_fn, [ref[0]], job, options, self._store_spec)
        self._in_flight.add(obj)
        fut = obj.future()
        fut.add_done_callback(lambda _f, obj=obj: self._in_flight.discard(obj))
        return fut

    def close(self) -> None:
        for obj in list(self._in_flight):
            try:
                self._ray.cancel(obj, force=True)
            except Exception:  # finished meanwhile, or the cluster is gone
                pass
        self._in_flight.clear()
        self._policies.clear()
        if self._owns:
            self._ray.shutdown()
            self._owns = False

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"executor": self.name, "ray": self._ray.__version__}
        try:
            d["cluster_cpus"] = self._ray.cluster_resources().get("CPU")
        except Exception:
            pass
        return d


def make_executor(kind: str | Executor, *, jobs: int, image_store: Any = None) -> Executor:
    """``"local"`` -> :class:`LocalExecutor`; ``"ray"``, ``"auto"`` or a cluster address -> :class:`RayExecutor`."""
    if isinstance(kind, Executor):
        return kind
    if kind in ("", LOCAL, "threads"):
        return LocalExecutor(jobs, image_store)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise LtenvError(
            "the Ray executor needs Ray: pip install 'litecoder-terminal[ray]' (or use the local executor)"
        ) from None
    return RayExecutor(kind, image_store=image_store)
