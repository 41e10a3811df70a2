"""Execution validation of tasks: the oracle must pass, a do-nothing agent must fail, twice, identically.

Everything that makes a run differ from the task's own harness is reported on the result, never silent:
image-map substitutions (``image_substitutions``), offline verification (``offline_tests``,
``test_runner``) and other notes (e.g. how ``run_tests_in_same_shell`` was honoured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from ltenv.errors import LtenvError
from ltenv.sandbox import DEFAULT_BACKEND, create_sandbox, image_task
from ltenv.sandbox.images import ImageStore
from ltenv.tasks.model import Task
from ltenv.verify import VerifierResult, run_oracle, verify


@dataclass
class ValidationResult:
    """Verdict on one task. ``valid`` iff every oracle run scored 1.0 and every nop run 0.0."""

    name: str
    oracle: float | None
    nop: float | None
    stable: bool
    seconds: float
    valid: bool = False
    domain: str | None = None
    oracle_runs: list[float] = field(default_factory=list)
    nop_runs: list[float] = field(default_factory=list)
    error: str | None = None
    format: str = "harbor"
    image_substitutions: list[str] = field(default_factory=list)
    """Image-map substitutions the task's image was built with, e.g. ``"ghcr.io/x/py:1 -> ltenv/base:bookworm"``."""
    offline_tests: bool = False
    """The task's test script was replaced by the offline pytest runner (``--offline-tests``)."""
    test_runner: str | None = None
    """What verified the runs: ``tests/test.sh``, ``run-tests.sh`` or ``offline pytest``."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _episode(
    task: Task, *, oracle: bool, backend: str, store: ImageStore, offline: bool = False
) -> tuple[VerifierResult, str]:
    sandbox = create_sandbox(task, backend=backend, store=store)
    with sandbox:
        note = ""
        run = None
        try:
            if oracle:
                run = run_oracle(sandbox, task)
                if not run.ok:
                    why = "timed out" if run.timed_out else f"exited {run.exit_code}"
                    note = f"{task.solution_label} {why}: {run.text.strip()[-300:]}"
            return verify(sandbox, task, offline=offline), note
        finally:
            if run is not None:
                run.close()


def validate_task(
    task: Task,
    *,
    backend: str = DEFAULT_BACKEND,
    runs: int = 2,
    store: ImageStore | None = None,
    offline_tests: bool = False,
) -> ValidationResult:
    """Run the oracle and a do-nothing agent ``runs`` times each, each in a fresh sandbox.

    ``offline_tests``: verify with the offline pytest runner where the task's test script would download
    its tools (see :func:`ltenv.verify.verify`); reported in the result.
    """
    store = store or ImageStore()
    t0 = time.monotonic()
    oracle_runs: list[float] = []
    nop_runs: list[float] = []
    errors: list[str] = []
    runners: list[str] = []
    notes: list[str] = []
    substitutions: list[str] = []
    try:
        substitutions = [str(s) for s in store.substitutions_for(task)]
        if not task.has_solution:
            raise LtenvError(f"{task.solution_label} is missing: nothing to validate against")
        for _ in range(runs):
            res, note = _episode(task, oracle=True, backend=backend, store=store, offline=offline_tests)
            oracle_runs.append(res.reward)
            runners.append(res.runner)
            notes.extend(res.notes)
            if res.reward < 1.0:
                errors.append(note or res.error or _failed_tests(res))
            res, _ = _episode(task, oracle=False, backend=backend, store=store, offline=offline_tests)
            nop_runs.append(res.reward)
            runners.append(res.runner)
            notes.extend(res.notes)
            if res.reward > 0.0:
                errors.append(
                    f"a do-nothing agent scored {res.reward:g}: the verifier accepts the initial state"
                )
    except LtenvError as e:
        errors.append(str(e))
    stable = len(set(oracle_runs)) <= 1 and len(set(nop_runs)) <= 1
    if not stable:
        errors.append(f"results differ between runs: oracle {oracle_runs}, nop {nop_runs}")
    valid = (
        len(oracle_runs) == runs
        and len(nop_runs) == runs
        and all(r >= 1.0 for r in oracle_runs)
        and all(r <= 0.0 for r in nop_runs)
        and stable
    )
    return ValidationResult(
        name=task.name,
        domain=task.domain,
        oracle=oracle_runs[0] if oracle_runs else None,
        nop=nop_runs[0] if nop_runs else None,
        stable=stable,
        seconds=round(time.monotonic() - t0, 2),
        valid=valid,
        oracle_runs=oracle_runs,
        nop_runs=nop_runs,
        error="; ".join(dict.fromkeys(e for e in errors if e)) or None,
        format=task.format,
        image_substitutions=substitutions,
        offline_tests="offline pytest" in runners,
        test_runner=", ".join(dict.fromkeys(r for r in runners if r)) or None,
        notes=list(dict.fromkeys(notes)),
    )


def _failed_tests(res: VerifierResult) -> str:
    failed = [t.name for t in res.tests if t.outcome in ("failed", "error")]
    if failed:
        return f"oracle failed tests: {', '.join(failed[:5])}"
    return f"oracle scored {res.reward:g}: {res.output.strip()[-300:]}"


def validate_suite(
    tasks: Iterable[Task],
    *,
    backend: str = DEFAULT_BACKEND,
    jobs: int = 2,
    runs: int = 2,
    store: ImageStore | None = None,
    on_result: Callable[[ValidationResult], None] | None = None,
    on_build: Callable[[Task], None] | None = None,
    offline_tests: bool = False,
) -> list[ValidationResult]:
    """Validate many tasks: images are built first (one at a time), then episodes run ``jobs`` at a time."""
    store = store or ImageStore()
    tasks = list(tasks)
    build_errors: dict[str, str] = {}
    prepared: dict[str, str] = {}  # image task name -> error ("" when ready): a shared image is prepared once
    for task in tasks:  # bwrap: build and unpack layers; docker: build in the engine
        itask = image_task(task)
        if itask.name not in prepared or itask is task:
            if on_build:
                on_build(task)
            try:
                if backend == "bwrap":
                    store.prepare(itask)
                else:
                    store.engine_image(itask)
                prepared[itask.name] = ""
            except LtenvError as e:
                prepared[itask.name] = str(e)
        if prepared[itask.name]:
            build_errors[task.name] = prepared[itask.name]
    results: dict[str, ValidationResult] = {}
    by_name = {t.name: t for t in tasks}
    for name, err in build_errors.items():
        task = by_name[name]
        results[name] = ValidationResult(
            name,
            None,
            None,
            False,
            0.0,
            error=err,
            domain=task.domain,
            format=task.format,
            image_substitutions=[str(s) for s in store.substitutions_for(task)],
        )
        if on_result:
            on_result(results[name])
    todo = [t for t in tasks if t.name not in build_errors]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            pool.submit(
                validate_task, t, backend=backend, runs=runs, store=store, offline_tests=offline_tests
            ): t
            for t in todo
        }
        for fut in as_completed(futures):
            r = fut.result()
            r.domain = futures[fut].domain
            results[r.name] = r
            if on_result:
                on_result(r)
    return [results[t.name] for t in tasks]
