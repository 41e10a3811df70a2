"""Execution validation of a synthesized candidate task (LiteCoder-Terminal-Gen).

A candidate is a Harbor task folder (``task.toml``, ``instruction.md``, ``environment/``,
``solution/solve.sh``, ``tests/test.sh``) plus *attacks*: wrong or partial solutions (bash script text, run
exactly like ``solve.sh``). :func:`validate_candidate` builds the image once, then runs every episode in a
fresh sandbox with the network off (whatever ``task.toml`` asks), ``jobs`` at a time: the oracle, a
do-nothing agent ("nop") and every attack, ``runs`` times each; then, if nothing failed so far, every
built-in reward hack of :mod:`ltenv.verify.attacks` once. Hung or flooding scripts are bounded by the solution timeout and the
sandbox's output limits. The checks, in the order in which the first failure names :attr:`ExecReport.reason`:

1. ``build_failed``: the folder loads (:func:`ltenv.tasks.load_task`) and the image builds.
2. ``leak``: the agent's image holds no ``/tests``, ``/solution`` or ``/oracle``, and no file the task's
   Dockerfile added has the content of a file of ``tests/`` or ``solution/`` (files under 64 bytes are
   ignored). bwrap: the unpacked layers above those of the ``FROM`` image are read on the host (all layers
   when the base's layers cannot be told apart), hashing only files whose size is one of the candidate
   files' sizes. docker: a ``find``/``sha256sum`` in the first nop episode's sandbox, before verification,
   over the whole image filesystem (base image included, same size filter).
3. ``needs_network``: ``task.toml`` asks for ``allow_internet``, ``tests/test.sh`` downloads tools
   (:func:`ltenv.verify.script_needs_network`), or the oracle's or any verifier's output shows a network
   failure (name resolution, unreachable network, pip connection errors).
4. ``flaky``: a solution's repetitions differ in reward or per-test outcome.
5. ``oracle_fails``: an oracle run scored below 1.
6. ``nop_passes``: a do-nothing run scored above 0.
7. ``attack_passes``: an attack run scored 1 (partial credit is allowed).
8. ``reward_hack``: a built-in reward hack (:data:`ltenv.verify.attacks.ATTACKS`: a shadowed pytest, a
   planted reward file, a trojan tool...) scored above 0: the verifier can be fooled without the task being
   done. The detail names the attack(s). They run only when every other check passed (a candidate that
   fails one is rejected anyway, and its repair rounds need not pay for them). Built-in attacks are not
   solutions of the candidate: they are left out of checks 3 and 4, and a sandbox failure during one is
   logged, not counted in check 9.
9. ``sandbox_error``: a sandbox could not start or died during an episode. Such episodes are left out of
   checks 4 to 8.

:attr:`ExecReport.log` is written for an LLM repair step and is deterministic for deterministic runs (no
timings, temporary paths, container ids or PIDs), so that a request built from it is byte-identical on a
rerun.

Example:
    >>> attacks = {"no-op-sort": "sort -o out.csv in.csv"}
    >>> report = validate_candidate(Path("cand/csv-dedupe"), attacks)  # doctest: +SKIP
    >>> report.ok, report.reason, report.detail  # doctest: +SKIP
    (False, 'attack_passes', "attack 'no-op-sort' scored 1 on both runs: ...")
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ltenv.errors import LtenvError
from ltenv.sandbox import create_sandbox
from ltenv.sandbox.base import ExecResult, Sandbox
from ltenv.sandbox.images import ImageStore, PreparedImage
from ltenv.tasks.model import Task
from ltenv.verify import (
    MAX_VERIFIER_OUTPUT,
    ORACLE_DIR,
    SOLUTION_DIR,
    TESTS_DIR,
    VerifierResult,
    run_oracle,
    script_needs_network,
    verify,
)
from ltenv.verify.attacks import ATTACK_TIMEOUT, ATTACKS, Attack, run_attack

REASONS = (
    "build_failed",
    "leak",
    "needs_network",
    "flaky",
    "oracle_fails",
    "nop_passes",
    "attack_passes",
    "reward_hack",
    "sandbox_error",
)
BUILTIN_PREFIX = "builtin:"
"""``RunOutcome.solution`` of a built-in attack: ``builtin:<name>``."""
MIN_LEAK_SIZE = 64
"""Files smaller than this are not compared by content (too many false hits: shebangs, one-liners)."""
MAX_SOLUTION_TIMEOUT = 600.0
TAIL_CHARS = 1500
LEAK_PATHS = (TESTS_DIR, SOLUTION_DIR, ORACLE_DIR)

_NETWORK_RE = re.compile(
    r"Could not resolve host"
    r"|Temporary failure in name resolution"
    r"|Name or service not known"
    r"|No address associated with hostname"
    r"|Network is unreachable"
    r"|Failed to establish a new connection"
    r"|Could not resolve '?[\w.-]+'?"
    r"|getaddrinfo failed"
    r"|nodename nor servname provided"
    r"|unable to resolve host address"
    r"|Failed to connect to [\w.-]+ port \d+"
    r"|NewConnectionError",
    re.IGNORECASE,
)
_NORMALIZE = [
    (re.compile(r"/tmp/[^\s'\":,)\]]*"), "/tmp/<tmp>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b\d+m\d+(?:\.\d+)?s\b"), "<dur>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns)\b"), "<dur>"),
    (re.compile(r"\b\d+\.\d+\s?s(?:ec(?:onds?)?)?\b"), "<dur>"),
    (re.compile(r"(\bin )\d+s\b"), r"\1<dur>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0x<addr>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12,}\b"), "<hex>"),
    (re.compile(r"\b(pid[ =:#]*)\d+", re.IGNORECASE), r"\1<pid>"),
    (re.compile(r"\b((?:process|pid|PID|task) )\d+\b"), r"\1<pid>"),
    (re.compile(r"/proc/\d+"), "/proc/<pid>"),
    (
        re.compile(r"(line \d+:\s+)\d+(?=\s+(?:Killed|Terminated|Segmentation|Aborted|Done|Hangup|Alarm))"),
        r"\1<pid>",
    ),
]


@dataclass
class RunOutcome:
    """One episode: a solution (or nothing) run in a fresh sandbox, then the verifier."""

    solution: str
    """``oracle``, ``nop``, ``attack:<name>`` or ``builtin:<name>`` (a built-in reward hack)."""
    run: int
    """0-based repetition index."""
    reward: float
    tests: dict[str, str]
    """Per-test outcome (``passed``/``failed``/``error``/``skipped``) by test name."""
    solution_exit: int | None
    """Exit code of solve.sh / the attack (124 when it timed out); ``None`` for nop and built-in attacks."""
    solution_timed_out: bool
    solution_output: str
    """Normalized tail of the solution's output."""
    verifier_output: str
    """Normalized tail of the verifier's output."""
    error: str | None
    """Verifier error (no reward written, timeout...) or sandbox error text."""
    seconds: float
    sandbox_failed: bool = False
    """The sandbox could not start or died (the outcome is not a verdict on the task)."""


@dataclass
class ExecReport:
    """Verdict on a candidate. ``ok`` iff every check passed; ``reason`` is the first failing check."""

    ok: bool
    reason: str | None
    detail: str
    """One paragraph naming the files and tests at fault."""
    log: str
    """Per check: what happened, failing tests, output tails. Deterministic for deterministic runs."""
    runs: list[RunOutcome] = field(default_factory=list)
    build_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_output(text: str, limit: int = TAIL_CHARS) -> str:
    """``text`` without what differs between identical runs (durations, hex ids, /tmp paths, PIDs, times),
    cut to its last ``limit`` characters (on a line boundary where possible)."""
    text = text.replace("\r\n", "\n")
    for rx, repl in _NORMALIZE:
        text = rx.sub(repl, text)
    text = text.strip("\n")
    if len(text) > limit:
        cut = text[-limit:]
        nl = cut.find("\n")
        if 0 <= nl < limit // 4:
            cut = cut[nl + 1 :]
        text = "[...]\n" + cut
    return text


# --------------------------------------------------------------------------- episodes


def _run_script(sandbox: Sandbox, script_dir: Path, *, timeout: float) -> ExecResult:
    """Run an attack as Harbor runs an oracle: ``script_dir`` to /solution, ``bash /solution/solve.sh``,
    then /solution removed."""
    sandbox.put(script_dir, SOLUTION_DIR)
    try:
        return sandbox.exec(
            ["bash", f"{SOLUTION_DIR}/solve.sh"], timeout=timeout, max_output=MAX_VERIFIER_OUTPUT
        )
    finally:
        sandbox.exec(["rm", "-rf", SOLUTION_DIR], timeout=60, workdir="/")


_DOCKER_LEAK_SCRIPT = """
for p in {paths}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "PATH $p"; fi; done
"""


@dataclass
class _Episode:
    solution: str
    run: int
    script_dir: Path | None = None  # attacks
    builtin: Attack | None = None  # built-in attacks
    leak_probe: tuple[set[int], dict[str, list[str]]] | None = None  # docker: sizes, hashes


def _episode(
    task: Task,
    ep: _Episode,
    *,
    backend: str,
    store: ImageStore,
    solution_timeout: float,
    verifier_timeout: float | None,
) -> tuple[RunOutcome, list[str] | None]:
    t0 = time.monotonic()
    out = RunOutcome(ep.solution, ep.run, 0.0, {}, None, False, "", "", None, 0.0)
    leaks: list[str] | None = None
    try:
        sandbox = create_sandbox(task, backend=backend, store=store, allow_internet=False)
        with sandbox:
            if ep.leak_probe is not None:
                leaks = _probe_leaks_in_sandbox(sandbox, *ep.leak_probe)
            run = None
            try:
                if ep.builtin is not None:
                    verdict = run_attack(
                        sandbox, task, ep.builtin, timeout=ATTACK_TIMEOUT, verifier_timeout=verifier_timeout
                    )
                    _fill(out, verdict)
                    out.seconds = round(time.monotonic() - t0, 3)
                    return out, leaks
                if ep.solution == "oracle":
                    run = run_oracle(sandbox, task, timeout=solution_timeout)
                    res: ExecResult | None = run
                elif ep.script_dir is not None:
                    res = _run_script(sandbox, ep.script_dir, timeout=solution_timeout)
                else:
                    res = None
                if res is not None:
                    out.solution_exit = res.exit_code
                    out.solution_timed_out = res.timed_out
                    out.solution_output = normalize_output(res.text)
                verdict = verify(sandbox, task, timeout=verifier_timeout)
            finally:
                if run is not None:
                    run.close()
        _fill(out, verdict)
    except LtenvError as e:
        out.sandbox_failed = True
        out.error = f"{type(e).__name__}: {e}"
    except Exception as e:  # an unexpected failure of the sandbox layer must not abort the whole report
        out.sandbox_failed = True
        out.error = f"{type(e).__name__}: {e}"
    out.seconds = round(time.monotonic() - t0, 3)
    return out, leaks


def _fill(out: RunOutcome, verdict: VerifierResult) -> None:
    out.reward = verdict.reward
    out.tests = {t.name: t.outcome for t in verdict.tests}
    out.verifier_output = normalize_output(verdict.output)
    out.error = verdict.error


# --------------------------------------------------------------------------- leak check


def _secret_files(task: Task) -> dict[str, list[str]]:
    """sha256 -> task-relative paths of the files the agent must not see (tests and solution)."""
    roots: list[Path] = [task.tests_dir]
    if task.format == "terminal-bench":
        roots += [task.test_script] + ([task.solution_path] if task.solution_path else [])
    else:
        roots.append(task.solution_dir)
    out: dict[str, list[str]] = {}
    for root in roots:
        if not root.exists():
            continue
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        )
        for p in files:
            if "__pycache__" in p.parts or p.stat().st_size < MIN_LEAK_SIZE:
                continue
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out.setdefault(digest, []).append(p.relative_to(task.path).as_posix())
    return out


def _sizes(task: Task, secrets: dict[str, list[str]]) -> set[int]:
    return {(task.path / paths[0]).stat().st_size for paths in secrets.values()}


def _last_from(dockerfile: Path) -> str | None:
    """The image the final stage builds on, or ``None`` (a stage alias, ``scratch``, unreadable)."""
    rx = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
    aliases: set[str] = set()
    last = None
    for m in rx.finditer(dockerfile.read_text(encoding="utf-8", errors="replace")):
        last = None if m.group(1) in aliases or m.group(1).lower() == "scratch" else m.group(1)
        if m.group(2):
            aliases.add(m.group(2))
    return last


def _task_layers(task: Task, store: ImageStore, prepared: PreparedImage) -> tuple[list[Path], str]:
    """The layers the task's Dockerfile added (above its FROM image's), and how they were told apart."""
    layers = list(prepared.layers)
    if task.dockerfile is None:
        return layers, "all layers (the task names a docker_image)"
    base = _last_from(task.dockerfile)
    if base is None:
        return layers, "all layers (multi-stage or scratch build)"
    base = store.image_map.lookup(base) or base
    try:
        base_ids = store.client.api.inspect_image(base).get("RootFS", {}).get("Layers") or []
    except Exception:
        return layers, f"all layers ({base} could not be inspected)"
    names = [store.layer_dir(d).name for d in base_ids]
    if [p.name for p in layers[: len(names)]] != names:
        return layers, f"all layers (the image does not start with {base}'s layers)"
    return layers[len(names) :], f"the layers above {base}"


def _is_whiteout(p: Path) -> bool:
    try:
        st = p.lstat()
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _leaks_in_layers(task: Task, store: ImageStore, prepared: PreparedImage) -> tuple[list[str], str]:
    """bwrap: leaks found by reading the unpacked layers on the host."""
    found: list[str] = []
    for path in LEAK_PATHS:
        name = path.lstrip("/")
        for layer in reversed(prepared.layers):  # the topmost layer that mentions the path decides
            if (layer / f".wh.{name}").exists() or _is_whiteout(layer / name):
                break
            if os.path.lexists(layer / name):
                found.append(f"{path} exists in the image")
                break
    secrets = _secret_files(task)
    if not secrets:
        return found, "no tests/ or solution/ file is large enough to compare"
    sizes = _sizes(task, secrets)
    layers, scope = _task_layers(task, store, prepared)
    hits: dict[str, str] = {}
    for layer in layers:
        by_size = _layer_index(layer)
        for size in sizes:
            for rel in by_size.get(size, ()):
                try:
                    with open(layer / rel, "rb") as f:
                        digest = hashlib.file_digest(f, "sha256").hexdigest()
                except OSError:
                    continue
                if digest in secrets:
                    hits["/" + rel] = digest
    found += _hit_lines(hits, secrets)
    return found, f"content compared in {scope}"


_LAYER_INDEX: dict[Path, dict[int, list[str]]] = {}
_LAYER_INDEX_LOCK = threading.Lock()
_LAYER_INDEX_MAX = 256


def _layer_index(layer: Path) -> dict[int, list[str]]:
    """Regular files of an unpacked layer by size (layer-relative paths). Layers are content-addressed and
    never change once unpacked, so the index is computed once per process."""
    with _LAYER_INDEX_LOCK:
        hit = _LAYER_INDEX.get(layer)
    if hit is not None:
        return hit
    index: dict[int, list[str]] = {}
    for dirpath, _dirnames, filenames in os.walk(layer):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= MIN_LEAK_SIZE:
                index.setdefault(st.st_size, []).append(os.path.relpath(p, layer))
    with _LAYER_INDEX_LOCK:
        if len(_LAYER_INDEX) >= _LAYER_INDEX_MAX:
            _LAYER_INDEX.clear()
        _LAYER_INDEX[layer] = index
    return index


def _hit_lines(hits: dict[str, str], secrets: dict[str, list[str]]) -> list[str]:
    return [
        f"{image_path} in the image is identical to {', '.join(secrets[d])}"
        for image_path, d in sorted(hits.items())
    ]


def _probe_leaks_in_sandbox(sandbox: Sandbox, sizes: set[int], secrets: dict[str, list[str]]) -> list[str]:
    """docker: leaks found with one exec in a started sandbox (before anything ran in it)."""
    script = _DOCKER_LEAK_SCRIPT.format(paths=" ".join(LEAK_PATHS))
    if sizes:
        size_expr = " -o ".join(f"-size {n}c" for n in sorted(sizes))
        script += f"find / -xdev -type f \\( {size_expr} \\) -exec sha256sum {{}} + 2>/dev/null\n"
    res = sandbox.exec(["/bin/sh", "-c", script], timeout=120, workdir="/", max_output=4 << 20)
    found: list[str] = []
    hits: dict[str, str] = {}
    for line in res.stdout.decode("utf-8", errors="replace").splitlines():
        if line.startswith("PATH "):
            found.append(f"{line[5:]} exists in the image")
            continue
        digest, _, path = line.partition("  ")
        if digest in secrets and not path.startswith(("/proc/", "/sys/", "/dev/")):
            hits[path] = digest
    return found + _hit_lines(hits, secrets)


# --------------------------------------------------------------------------- the report


def _fmt_reward(r: float) -> str:
    return f"{r:g}"


def _failing(tests: dict[str, str]) -> list[str]:
    return [n for n, o in tests.items() if o in ("failed", "error")]


def _passing(tests: dict[str, str]) -> list[str]:
    return [n for n, o in tests.items() if o == "passed"]


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _label(solution: str) -> str:
    if solution.startswith("attack:"):
        return f"attack '{solution[7:]}'"
    if solution.startswith(BUILTIN_PREFIX):
        return f"built-in attack '{solution[len(BUILTIN_PREFIX) :]}'"
    return {"oracle": "the oracle", "nop": "a do-nothing agent"}[solution]


def _test_files(task: Task) -> str:
    files = sorted(
        p.relative_to(task.path).as_posix()
        for p in task.tests_dir.glob("*")
        if p.is_file() and p.suffix == ".py" and p.name != "conftest.py"
    )
    return ", ".join(files) or task.test_script.relative_to(task.path).as_posix()


def _runs_phrase(n_bad: int, n: int) -> str:
    if n == 1:
        return "on its run"
    if n_bad == n:
        return "on both runs" if n == 2 else f"on all {n} runs"
    return f"on {n_bad} of {n} runs"


def _describe_run(o: RunOutcome, *, tails: bool) -> list[str]:
    lines: list[str] = []
    head = f"  run {o.run}: reward {_fmt_reward(o.reward)}"
    if o.solution_exit is not None:
        head += "; solution timed out" if o.solution_timed_out else f"; solution exited {o.solution_exit}"
    counts: dict[str, int] = {}
    for outcome in o.tests.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        head += "; tests: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines.append(head)
    if o.error:
        lines.append(f"    error: {normalize_output(o.error, 600)}")
    failing = _failing(o.tests)
    if failing:
        lines.append(f"    failing tests: {_names(failing, 20)}")
    if tails:
        if o.solution_exit is not None and o.solution_output:
            lines.append("    solution output (tail):")
            lines += ["      " + x for x in o.solution_output.splitlines()]
        if o.verifier_output:
            lines.append("    verifier output (tail):")
            lines += ["      " + x for x in o.verifier_output.splitlines()]
    return lines


def _same(a: RunOutcome, b: RunOutcome) -> bool:
    return a.reward == b.reward and a.tests == b.tests


def _changed_tests(outs: list[RunOutcome]) -> list[str]:
    names = list(dict.fromkeys(n for o in outs for n in o.tests))
    changed = []
    for n in names:
        seen = [o.tests.get(n, "missing") for o in outs]
        if len(set(seen)) > 1:
            changed.append(f"{n} ({'/'.join(seen)})")
    return changed


def validate_candidate(
    task_dir: Path,
    attacks: Mapping[str, str] | None = None,
    *,
    backend: str = "bwrap",
    store: ImageStore | None = None,
    runs: int = 2,
    jobs: int = 4,
    solution_timeout: float | None = None,
    verifier_timeout: float | None = None,
    builtin_attacks: Sequence[Attack] = ATTACKS,
) -> ExecReport:
    """Validate a candidate task folder by execution: build, leak check, then oracle, nop and attacks.

    Args:
        task_dir: the candidate Harbor task folder.
        attacks: name -> bash script text of a wrong or partial solution; each must not score 1.
        builtin_attacks: the generic reward hacks run once each, after every other check passed (default: all
            of :data:`ltenv.verify.attacks.ATTACKS`); each must score 0. ``()`` runs none.
        backend: sandbox backend (``bwrap`` or ``docker``); the network is off in every sandbox.
        store: the image store (a new one by default).
        runs: repetitions of every solution (each in a fresh sandbox); results must agree.
        jobs: episodes run at the same time.
        solution_timeout: seconds for solve.sh / an attack (default: the task's agent timeout, at most 600).
        verifier_timeout: seconds for the verifier (default: the task's ``[verifier] timeout_sec``).

    Returns:
        An :class:`ExecReport`; ``reason`` is the first failing check in :data:`REASONS` order.
    """
    from ltenv.tasks import load_task

    t0 = time.monotonic()
    store = store or ImageStore()
    attacks = dict(attacks or {})
    runs = max(1, runs)
    task_dir = Path(task_dir)

    def report(
        reason: str | None, detail: str, log: list[str], outs: list[RunOutcome], build_s: float
    ) -> ExecReport:
        log = [*log, f"verdict: {reason or 'ok'}" + (f": {detail}" if reason else "")]
        return ExecReport(
            ok=reason is None,
            reason=reason,
            detail=detail,
            log="\n".join(log) + "\n",
            runs=outs,
            build_seconds=round(build_s, 3),
            seconds=round(time.monotonic() - t0, 3),
        )

    # 1. load and build
    log: list[str] = []
    try:
        task = load_task(task_dir)
        if not task.has_solution:
            raise LtenvError(f"{task.solution_label}: missing (a candidate needs its reference solution)")
    except LtenvError as e:
        msg = normalize_output(str(e), 2000)
        log.append(f"[build] the task folder does not load: {msg}")
        return report("build_failed", f"the task folder does not load: {msg}", log, [], 0.0)
    tb = time.monotonic()
    prepared: PreparedImage | None = None
    try:
        if backend == "bwrap":
            prepared = store.prepare(task)
        else:
            store.engine_image(task)
    except LtenvError as e:
        build_s = time.monotonic() - tb
        text = normalize_output(str(e), 3000)
        first = text.splitlines()[0] if text else "unknown error"
        log.append("[build] the image did not build (environment/Dockerfile). Build log tail:")
        log += ["  " + x for x in text.splitlines()]
        return report("build_failed", f"environment/Dockerfile does not build: {first}", log, [], build_s)
    build_s = time.monotonic() - tb
    log.append("[build] ok")

    # episodes (and, on bwrap, the leak check on the host meanwhile)
    secrets = _secret_files(task)
    sizes = _sizes(task, secrets)
    agent_timeout = task.config.agent.timeout_sec
    sol_timeout = solution_timeout or min(agent_timeout, MAX_SOLUTION_TIMEOUT)
    solutions = ["oracle", "nop", *(f"attack:{n}" for n in attacks)]
    builtins = {f"{BUILTIN_PREFIX}{a.name}": a for a in builtin_attacks}
    tmp = tempfile.mkdtemp(prefix="ltenv-attacks-")
    try:
        episodes: list[_Episode] = []
        for i, name in enumerate(attacks):
            d = Path(tmp) / f"attack-{i}"
            d.mkdir()
            (d / "solve.sh").write_text(attacks[name], encoding="utf-8")
            (d / "solve.sh").chmod(0o755)
        for r in range(runs):
            for sol in solutions:
                ep = _Episode(sol, r)
                if sol.startswith("attack:"):
                    ep.script_dir = Path(tmp) / f"attack-{list(attacks).index(sol[7:])}"
                if backend != "bwrap" and sol == "nop" and r == 0:
                    ep.leak_probe = (sizes, secrets)
                episodes.append(ep)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(
                    _episode,
                    task,
                    ep,
                    backend=backend,
                    store=store,
                    solution_timeout=sol_timeout,
                    verifier_timeout=verifier_timeout,
                )
                for ep in episodes
            ]
            leaks: list[str] = []
            leak_scope = ""
            if prepared is not None:
                leaks, leak_scope = _leaks_in_layers(task, store, prepared)
            results = [f.result() for f in futures]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    outs = sorted((r[0] for r in results), key=lambda o: (solutions.index(o.solution), o.run))
    if prepared is None:
        probed = [r[1] for r in results if r[1] is not None]
        if probed:
            leaks, leak_scope = probed[0], "content compared over the whole image filesystem (docker)"
        else:
            leak_scope = "content not compared (the probing sandbox failed)"
    by_sol = {s: [o for o in outs if o.solution == s] for s in solutions}
    good = {s: [o for o in v if not o.sandbox_failed] for s, v in by_sol.items()}

    failures: dict[str, str] = {}  # reason -> detail, in the order found

    # 2. leak
    if leaks:
        failures["leak"] = (
            "the agent's image exposes the tests or the solution: "
            + "; ".join(leaks)
            + ". Do not COPY tests/ or solution/ files (or copies of them) into the image in "
            "environment/Dockerfile; tests read shared inputs from the image instead of shipping copies"
        )
        log.append("[leak] FAILED:")
        log += [f"  {x}" for x in leaks]
    else:
        log.append(f"[leak] ok (no /tests, /solution, /oracle; {leak_scope})")

    # 3. network
    net: list[str] = []
    if task.config.environment.allow_internet:
        net.append(
            "task.toml [environment] allow_internet = true: candidates must work with the network off "
            "(validation runs every sandbox offline)"
        )
    script_name = task.test_script.relative_to(task.path).as_posix()
    if script_needs_network(task.test_script.read_text(encoding="utf-8", errors="replace")):
        net.append(
            f"{script_name} downloads tools or packages (uv, pip install, apt-get install, curl/wget of a "
            "remote URL) but the verifier runs offline: install test dependencies in environment/Dockerfile"
        )
    seen_net: dict[tuple[str, str], list[str]] = {}
    for o in outs:
        sources = [(f"{script_name} output", o.verifier_output), (f"{script_name} error", o.error or "")]
        if o.solution == "oracle":
            sources.insert(0, (f"{task.solution_label} output", o.solution_output))
        for where, text in sources:
            m = _NETWORK_RE.search(text)
            if m:
                start = text.rfind("\n", 0, m.start()) + 1
                end = text.find("\n", m.end())
                line = text[start : end if end >= 0 else len(text)].strip()[:200]
                who = seen_net.setdefault((where, line), [])
                if _label(o.solution) not in who:
                    who.append(_label(o.solution))
                break
    for (where, line), who in seen_net.items():
        net.append(f"{where} shows a network failure ({', '.join(who)}): {line}")
    if net:
        net = list(dict.fromkeys(net))
        failures["needs_network"] = "the task needs the network: " + "; ".join(net[:4])
        log.append("[network] FAILED:")
        log += [f"  {x}" for x in net]
    else:
        log.append("[network] ok (offline)")

    # 4. flaky
    flaky: list[str] = []
    for s in solutions:
        v = good[s]
        if len(v) > 1 and not all(_same(v[0], o) for o in v[1:]):
            changed = _changed_tests(v)
            rewards = " vs ".join(_fmt_reward(o.reward) for o in v)
            flaky.append(
                f"{_label(s)}: reward {rewards}"
                + (f"; tests that changed: {_names(changed)}" if changed else "")
            )
    if flaky:
        failures["flaky"] = (
            f"results differ between identical runs ({_test_files(task)} or the solution is "
            "nondeterministic): " + "; ".join(flaky)
        )

    # 5-7. per-solution verdicts, and the log sections
    for s in solutions:
        v = by_sol[s]
        label = "oracle (" + task.solution_label + ")" if s == "oracle" else s
        rewards = ", ".join(_fmt_reward(o.reward) if not o.sandbox_failed else "sandbox error" for o in v)
        g = good[s]
        if s == "oracle":
            bad = [o for o in g if o.reward < 1.0]
            verdict = "FAILED (must score 1)" if bad else "ok"
        elif s == "nop":
            bad = [o for o in g if o.reward > 0.0]
            verdict = "FAILED (must score 0)" if bad else "ok"
        else:
            bad = [o for o in g if o.reward >= 1.0]
            verdict = "FAILED (scored 1: the tests accept it)" if bad else "ok"
        if not g:
            verdict = "not judged (sandbox error)"
        unstable = len(g) > 1 and not all(_same(g[0], o) for o in g[1:])
        log.append(
            f"[{label}] rewards {rewards}: {verdict}" + ("; results differ between runs" if unstable else "")
        )
        shown = g if unstable else g[:1]
        for i, o in enumerate(shown):
            log += _describe_run(o, tails=o in bad or (unstable and not bad and i == 0))
        if unstable:
            log.append(f"  tests that changed: {_names(_changed_tests(g), 20)}")
        for o in v:
            if o.sandbox_failed:
                log.append(f"  run {o.run}: sandbox error: {normalize_output(o.error or '', 600)}")
        if not bad:
            continue
        n = len(g)
        if s == "oracle" and "oracle_fails" not in failures:
            o = bad[0]
            why = (
                "timed out"
                if o.solution_timed_out
                else f"exited {o.solution_exit}"
                if o.solution_exit is not None
                else "did not run"
            )
            fail = _failing(o.tests)
            failures["oracle_fails"] = (
                f"the oracle scored {_fmt_reward(o.reward)} {_runs_phrase(len(bad), n)} "
                f"({task.solution_label} {why})"
                + (f"; failing tests: {_names(fail)}" if fail else "")
                + (f"; verifier: {normalize_output(o.error, 300)}" if o.error else "")
            )
        elif s == "nop" and "nop_passes" not in failures:
            o = bad[0]
            passing = _passing(o.tests)
            failures["nop_passes"] = (
                f"a do-nothing agent scored {_fmt_reward(o.reward)} {_runs_phrase(len(bad), n)}: "
                f"{_test_files(task)} accept the initial state"
                + (f" (passing tests: {_names(passing)})" if passing else "")
            )
        elif s.startswith("attack:"):
            passing = _passing(bad[0].tests)
            text = (
                f"attack '{s[7:]}' scored 1 {_runs_phrase(len(bad), n)}: {_test_files(task)} "
                "accepts a wrong solution" + (f" (passing tests: {_names(passing)})" if passing else "")
            )
            failures["attack_passes"] = (
                failures["attack_passes"] + "; " + text if "attack_passes" in failures else text
            )

    # 9. sandbox errors
    broken = [o for o in outs if o.sandbox_failed]
    if broken:
        o = broken[0]
        failures["sandbox_error"] = (
            f"the sandbox failed in {len(broken)} episode(s), first during {_label(o.solution)} run {o.run}: "
            f"{normalize_output(o.error or '', 400)}"
        )

    # 8. built-in reward hacks: only for a candidate that passed everything else (the others are rejected
    # anyway; their repair rounds need not pay for the hacks)
    hacks: list[RunOutcome] = []
    if not builtins:
        log.append("[built-in attacks] none run")
    elif failures:
        log.append(f"[built-in attacks] not run: the candidate already fails ({', '.join(failures)})")
    else:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(
                    _episode,
                    task,
                    _Episode(label, 0, builtin=a),
                    backend=backend,
                    store=store,
                    solution_timeout=sol_timeout,
                    verifier_timeout=verifier_timeout,
                )
                for label, a in builtins.items()
            ]
            hacks = [f.result()[0] for f in futures]
        hacked = [o for o in hacks if not o.sandbox_failed and o.reward > 0.0]
        unjudged = [o for o in hacks if o.sandbox_failed]
        if hacked:
            names = [o.solution[len(BUILTIN_PREFIX) :] for o in hacked]
            failures["reward_hack"] = (
                f"the verifier falls to built-in reward hack{'s' if len(names) > 1 else ''} "
                + ", ".join(
                    f"'{n}' (reward {_fmt_reward(o.reward)}: {builtins[o.solution].description})"
                    for n, o in zip(names, hacked, strict=True)
                )
                + f": {script_name} gives a reward to an episode that did not do the task. Run the tests "
                "without trusting anything the agent could change: no reward file or tool it could plant, no "
                "code from its working directory"
            )
            log.append(
                f"[built-in attacks] FAILED: {len(hacked)} of {len(hacks)} scored above 0: {_names(names, 30)}"
            )
            for o in hacked:
                log.append(f"  {_label(o.solution)}: {builtins[o.solution].description}")
                log += _describe_run(o, tails=True)
        else:
            log.append(f"[built-in attacks] ok ({len(hacks) - len(unjudged)} reward hacks scored 0)")
        for o in unjudged:
            log.append(
                f"  {_label(o.solution)}: not judged (sandbox error): {normalize_output(o.error or '', 300)}"
            )

    if flaky:
        log.append("[flaky] FAILED:")
        log += [f"  {x}" for x in flaky]
    else:
        log.append("[flaky] ok (every solution gave the same results on every run)")

    reason = next((r for r in REASONS if r in failures), None)
    detail = (
        failures[reason]
        if reason
        else (
            f"ok: the oracle scored 1 and a do-nothing agent 0 on {runs} run(s) each, "
            f"{len(attacks)} attack(s) rejected, "
            + (f"{len(hacks)} built-in reward hack(s) resisted, " if hacks else "")
            + "no leak, offline, stable"
        )
    )
    if reason and len(failures) > 1:
        log.append("other failing checks: " + ", ".join(r for r in REASONS if r in failures and r != reason))
    return report(reason, detail, log, outs + hacks, build_s)
