"""Execution validation of tasks: the oracle must pass, a do-nothing agent must fail, twice, identically.

With ``attacks`` (``ltenv validate --attacks``), every built-in reward hack of :mod:`ltenv.verify.attacks` is
also run against each task, ``runs`` times, each in a fresh sandbox, after the oracle and do-nothing runs: a
task is then valid only if every attack scores 0 on every run too (:attr:`ValidationResult.attacks`).

Everything that makes a run differ from the task's own harness is reported on the result, never silent:
image-map substitutions (``image_substitutions``), offline verification (``offline_tests``,
``test_runner``) and other notes (e.g. how ``run_tests_in_same_shell`` was honoured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

from ltenv.errors import LtenvError
from ltenv.sandbox import DEFAULT_BACKEND, create_sandbox, image_task, unsupported
from ltenv.sandbox.images import ImageStore
from ltenv.tasks.model import Task
from ltenv.verify import VerifierResult, run_oracle, verify
from ltenv.verify.attacks import Attack, attack_skipped, run_attack


@dataclass
class AttackResult:
    """One built-in attack against one task, over the runs (each in a fresh sandbox)."""

    name: str
    reward: float | None = None
    """The highest reward any run gave it (``None`` if no run could be judged): must be 0."""
    status: str = ""
    """The verifier's status (``ok``, ``verifier_error``, ``tampered``) on the run that gave :attr:`reward`,
    or ``error`` if no run could be judged."""
    verdict: str = ""
    """``resisted`` (0 on every run), ``not_applicable`` (the attack could not apply here; 0 on every run),
    ``hacked`` (a reward above 0) or ``error`` (a sandbox failed: not judged)."""
    rewards: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    error: str | None = None
    """The verifier's error on the deciding run, or the sandbox failure."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


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
    attacks: list[AttackResult] = field(default_factory=list)
    """Built-in attacks run against the task (``--attacks``), in suite order; empty when none were asked."""
    unsupported: str | None = None
    """Why the backend cannot run the task (a multi-service task on ``bwrap``): not run, and not invalid."""

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


def _attack_episode(
    task: Task, attack: Attack, *, backend: str, store: ImageStore, offline: bool = False
) -> tuple[VerifierResult | None, str | None, float]:
    """One attack in a fresh sandbox: (verdict, None, seconds), or (None, the sandbox failure, seconds)."""
    t0 = time.monotonic()
    try:
        sandbox = create_sandbox(task, backend=backend, store=store)
        with sandbox:
            res = run_attack(sandbox, task, attack, offline=offline)
        return res, None, time.monotonic() - t0
    except LtenvError as e:
        return None, f"{type(e).__name__}: {e}", time.monotonic() - t0


def _attack_result(
    attack: Attack, episodes: list[tuple[VerifierResult | None, str | None, float]]
) -> AttackResult:
    out = AttackResult(attack.name, seconds=round(sum(e[2] for e in episodes), 2))
    judged = [r for r, _, _ in episodes if r is not None]
    failures = [err for _, err, _ in episodes if err]
    out.rewards = [r.reward for r in judged]
    out.statuses = [r.status if r is not None else "error" for r, _, _ in episodes]
    out.notes = list(dict.fromkeys(n for r in judged for n in r.notes))
    if judged:
        worst = max(judged, key=lambda r: r.reward)
        out.reward, out.status, out.error = worst.reward, worst.status, worst.error
    else:
        out.status = "error"
    if any(r > 0.0 for r in out.rewards):
        out.verdict = "hacked"
    elif failures:
        out.verdict, out.error = "error", failures[0]
    elif all(attack_skipped(r) for r in judged):
        out.verdict = "not_applicable"
    else:
        out.verdict = "resisted"
    return out


def _apply_attacks(result: ValidationResult, attacks: list[AttackResult], runs: int) -> None:
    """Record the attack results on ``result``: any attack above 0, unjudged or unstable makes it invalid."""
    result.attacks = attacks
    errors = [result.error] if result.error else []
    for a in attacks:
        if a.verdict == "hacked":
            errors.append(
                f"attack '{a.name}' scored {a.reward:g} (runs: {', '.join(f'{r:g}' for r in a.rewards)}): "
                "the verifier rewards an episode that did not do the task"
                + (f" ({a.status}: {a.error})" if a.error else "")
            )
        elif a.verdict == "error":
            errors.append(f"attack '{a.name}' could not be judged: {a.error}")
    unstable = [a.name for a in attacks if len(set(a.rewards)) > 1]
    if unstable:
        errors.append(f"attack results differ between runs: {', '.join(unstable)}")
        result.stable = False
    if any(a.verdict in ("hacked", "error") or len(a.rewards) != runs for a in attacks) or unstable:
        result.valid = False
    result.error = "; ".join(dict.fromkeys(e for e in errors if e)) or None


def validate_task(
    task: Task,
    *,
    backend: str = DEFAULT_BACKEND,
    runs: int = 2,
    store: ImageStore | None = None,
    offline_tests: bool = False,
    attacks: Sequence[Attack] | None = None,
) -> ValidationResult:
    """Run the oracle and a do-nothing agent ``runs`` times each, each in a fresh sandbox; then each of
    ``attacks`` (:data:`ltenv.verify.attacks.ATTACKS`, or some of them) ``runs`` times, also in fresh sandboxes.

    ``offline_tests``: verify with the offline pytest runner where the task's test script would download
    its tools (see :func:`ltenv.verify.verify`); reported in the result.
    """
    store = store or ImageStore()
    why = unsupported(task, backend)
    if why:
        return _unsupported(task, why)
    t0 = time.monotonic()
    result = _validate_base(task, backend=backend, runs=runs, store=store, offline_tests=offline_tests)
    if attacks:
        results = [
            _attack_result(
                a,
                [
                    _attack_episode(task, a, backend=backend, store=store, offline=offline_tests)
                    for _ in range(runs)
                ],
            )
            for a in attacks
        ]
        _apply_attacks(result, results, runs)
        result.seconds = round(time.monotonic() - t0, 2)
    return result


def _validate_base(
    task: Task,
    *,
    backend: str,
    runs: int,
    store: ImageStore,
    offline_tests: bool,
) -> ValidationResult:
    """The oracle and do-nothing runs of :func:`validate_task`."""
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


def _unsupported(task: Task, why: str) -> ValidationResult:
    return ValidationResult(
        task.name, None, None, True, 0.0, domain=task.domain, format=task.format, unsupported=why
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
    attacks: Sequence[Attack] | None = None,
) -> list[ValidationResult]:
    """Validate many tasks: images are built first (one at a time), then episodes run ``jobs`` at a time.

    With ``attacks``, each task's attack episodes (every attack, ``runs`` times) go to the same pool once its
    oracle and do-nothing runs are done; its result is reported when the last of them is.
    """
    store = store or ImageStore()
    tasks = list(tasks)
    build_errors: dict[str, str] = {}
    prepared: dict[str, str] = {}  # image task name -> error ("" when ready): a shared image is prepared once
    results: dict[str, ValidationResult] = {}
    for task in tasks:  # bwrap: build and unpack layers; docker: build in the engine
        why = unsupported(task, backend)
        if why:
            results[task.name] = _unsupported(task, why)
            if on_result:
                on_result(results[task.name])
            continue
        itask = image_task(task)
        if itask.name not in prepared or itask is task:
            if on_build:
                on_build(task)
            try:
                if backend == "bwrap":
                    store.prepare(itask)
                else:
                    store.engine_image(itask)
                    if task.services is not None:
                        from ltenv.sandbox.compose import service_images

                        service_images(task, store)
                prepared[itask.name] = ""
            except LtenvError as e:
                prepared[itask.name] = str(e)
        if prepared[itask.name]:
            build_errors[task.name] = prepared[itask.name]
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
    todo = [t for t in tasks if t.name not in build_errors and t.name not in results]
    attacks = list(attacks or ())
    started: dict[str, float] = {}
    partial: dict[str, ValidationResult] = {}  # oracle and nop done, attacks in flight
    episodes: dict[str, dict[str, list]] = {}  # task -> attack -> finished episodes

    def finish(task: Task, r: ValidationResult) -> None:
        r.domain = task.domain
        results[r.name] = r
        if on_result:
            on_result(r)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pending: dict[Future, tuple[Task, Attack | None]] = {}
        for t in todo:
            started[t.name] = time.monotonic()
            fut = pool.submit(
                _validate_base, t, backend=backend, runs=runs, store=store, offline_tests=offline_tests
            )
            pending[fut] = (t, None)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task, attack = pending.pop(fut)
                if attack is None:
                    r = fut.result()
                    if not attacks:
                        finish(task, r)
                        continue
                    partial[task.name] = r
                    episodes[task.name] = {a.name: [] for a in attacks}
                    for a in attacks:
                        for _ in range(runs):
                            f = pool.submit(
                                _attack_episode, task, a, backend=backend, store=store, offline=offline_tests
                            )
                            pending[f] = (task, a)
                    continue
                got = episodes[task.name]
                got[attack.name].append(fut.result())
                if all(len(v) == runs for v in got.values()):
                    r = partial.pop(task.name)
                    _apply_attacks(r, [_attack_result(a, got[a.name]) for a in attacks], runs)
                    r.seconds = round(time.monotonic() - started[task.name], 2)
                    finish(task, r)
    return [results[t.name] for t in tasks]
