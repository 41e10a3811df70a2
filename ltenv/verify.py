"""Verification: run the task's tests in the episode's sandbox and turn their outcome into a reward.

The verifier sees the sandbox exactly as the agent left it (files, running processes, loopback services).
Tests are copied in only now, to ``/tests``.

* Harbor / Terminal-Bench 2.0: ``tests/test.sh`` runs; the reward comes from ``/logs/verifier/reward.txt``
  (a float in [0, 1]) or ``/logs/verifier/reward.json``; per-test results come from JUnit XML or CTRF JSON
  when the test runner wrote them to ``/logs/verifier/``.
* Terminal-Bench 1.x: ``run-tests.sh`` and ``tests/`` are copied to ``$TEST_DIR`` (``/tests``) and
  ``bash /tests/run-tests.sh`` runs in the container's working directory; its output is parsed as
  Terminal-Bench's pytest parser does (:func:`parse_pytest_summary`): reward 1.0 iff at least one test
  was reported and every one passed (PASSED, XFAIL and SKIPPED count as passed).
* Offline mode (``verify(..., offline=True)``): test scripts that download their tools (uv, pytest) cannot
  run without a network. Instead the task's test files run under the image's own ``python3 -m pytest -rA``
  and are parsed the same way; test dependencies the script would install must already be in the image.
  The result says so (``VerifierResult.runner`` and ``notes``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import secrets
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ltenv.fdwait import wait_fds
from ltenv.output import HeadTailBuffer, strip_ansi
from ltenv.sandbox.base import ExecResult, PtyProcess, Sandbox
from ltenv.tasks.model import Task, TerminalCommand

TESTS_DIR = "/tests"
SOLUTION_DIR = "/solution"
ORACLE_DIR = "/oracle"
VERIFIER_LOGS = "/logs/verifier"
MAX_VERIFIER_OUTPUT = 64 * 1024
MAX_TEST_OUTPUT = 4 << 20
"""Test output kept for parsing (head and tail): the pytest summary comes last."""


@dataclass
class TestResult:
    name: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""
    duration_s: float | None = None


@dataclass
class VerifierResult:
    """The verdict on an episode."""

    reward: float
    passed: bool
    tests: list[TestResult] = field(default_factory=list)
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    output: str = ""
    error: str | None = None
    """Why no valid reward was read (missing or malformed reward file, sandbox failure)."""
    runner: str = ""
    """What ran: ``tests/test.sh``, ``run-tests.sh``, or ``offline pytest`` (offline mode)."""
    notes: list[str] = field(default_factory=list)
    """How this verification differed from the task's own harness (offline mode, same-shell tests...)."""
    tampered: bool = False
    """The verifier saw evidence that its outcome was interfered with (e.g. a reward file that disagrees with
    the test runner's own report). The reward is then 0 and :attr:`error` says what was seen."""

    @property
    def status(self) -> str:
        """``ok`` (a reward the verifier stands behind), ``verifier_error`` (no valid reward could be read:
        :attr:`error` says why) or ``tampered``. Only ``ok`` episodes are training data."""
        if self.tampered:
            return "tampered"
        return "verifier_error" if self.error else "ok"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status
        return d


def parse_reward(text: str, source: str) -> float:
    """A reward value in [0, 1] from the contents of reward.txt or reward.json."""
    text = text.strip()
    if source.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, int | float):
            value = float(data)
        elif isinstance(data, dict):
            if "reward" in data:
                value = float(data["reward"])
            else:
                nums = [float(v) for v in data.values() if isinstance(v, int | float)]
                if not nums:
                    raise ValueError("no numeric value")
                value = sum(nums) / len(nums)
        else:
            raise ValueError(f"unexpected JSON type {type(data).__name__}")
    else:
        value = float(text.split()[0]) if text else math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"reward {value!r} is not in [0, 1]")
    return value


def parse_junit(xml_text: str) -> list[TestResult]:
    root = ET.fromstring(xml_text)
    out = []
    for case in root.iter("testcase"):
        name = "::".join(x for x in (case.get("classname", ""), case.get("name", "")) if x)
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (el.get("message") or el.text or "")[:2000]
                break
        t = case.get("time")
        out.append(TestResult(name, outcome, message, float(t) if t else None))
    return out


def parse_ctrf(json_text: str) -> list[TestResult]:
    data = json.loads(json_text)
    out = []
    for t in data.get("results", {}).get("tests", []):
        status = t.get("status", "other")
        outcome = {"passed": "passed", "failed": "failed", "skipped": "skipped"}.get(status, "error")
        dur = t.get("duration")
        out.append(
            TestResult(
                t.get("name", "?"), outcome, (t.get("message") or "")[:2000], dur / 1000 if dur else None
            )
        )
    return out


# --------------------------------------------------------------------------- Terminal-Bench pytest parser

_SUMMARY_RE = re.compile(r"=+\s*short test summary info\s*=+", re.IGNORECASE)
_PYTEST_STATUSES = ("PASSED", "FAILED", "SKIPPED", "XFAIL", "XPASS", "ERROR", "UNKNOWN")
# Terminal-Bench's verdict per pytest status: PASSED, XFAIL and SKIPPED pass; FAILED, XPASS and ERROR fail.
_OUTCOME = {
    "PASSED": ("passed", ""),
    "SKIPPED": ("skipped", ""),
    "XFAIL": ("passed", "XFAIL (an expected failure counts as passed, as in Terminal-Bench)"),
    "XPASS": ("failed", "XPASS (an unexpected pass counts as failed, as in Terminal-Bench)"),
    "FAILED": ("failed", ""),
    "ERROR": ("error", ""),
}


@dataclass
class PytestSummary:
    """Results read from the ``short test summary info`` section of ``pytest -rA`` output."""

    found: bool
    """Whether the section was there at all (Terminal-Bench: a parse error otherwise)."""
    tests: list[TestResult] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """At least one test, and every one passed (``passed`` or ``skipped``)."""
        return bool(self.tests) and all(t.outcome in ("passed", "skipped") for t in self.tests)


def parse_pytest_summary(output: str) -> PytestSummary:
    """Parse ``pytest -rA`` output as Terminal-Bench's pytest parser does.

    Everything after the first ``short test summary info`` banner is read line by line: a line whose first
    word is a pytest status (``PASSED``, ``FAILED``, ``SKIPPED``, ``XFAIL``, ``XPASS``, ``ERROR``) reports a
    test; the test name is what follows the first ``::`` of the node id, and for ``FAILED`` lines the
    trailing `` - message`` is the message. A name seen twice keeps its last status. Other lines are ignored.
    Unlike Terminal-Bench (which treats an empty summary as all-passed), :attr:`PytestSummary.resolved`
    needs at least one test. Terminal escape sequences are stripped first (TB reads a tmux pane capture,
    which has none).
    """
    parts = _SUMMARY_RE.split(strip_ansi(output), maxsplit=1)
    if len(parts) < 2:
        return PytestSummary(found=False)
    results: dict[str, TestResult] = {}
    for line in parts[1].splitlines():
        words = line.split(maxsplit=1)
        if len(words) < 2:
            continue
        status = words[0].strip().strip(":")
        if status not in _PYTEST_STATUSES or status == "UNKNOWN":
            continue
        rest, message = words[1].strip(), ""
        if status == "FAILED" and " - " in rest:
            rest, _, message = rest.rpartition(" - ")
        name = rest.split("::", 1)[-1].strip()
        if status == "SKIPPED":
            name = re.sub(r"^\[\d+\]\s*", "", name)
        if not name:
            continue
        outcome, note = _OUTCOME[status]
        results.pop(name, None)  # a re-reported name moves to the end with its last status
        results[name] = TestResult(name, outcome, (message or note)[:2000])
    return PytestSummary(found=True, tests=list(results.values()))


# --------------------------------------------------------------------------- test dependencies (offline mode)


@dataclass(frozen=True)
class TestDependency:
    """A Python package a test script installs (``uv add X``, ``pip install X``, ``uvx -w X``...)."""

    name: str
    requirement: str
    """As written, e.g. ``pytest==8.4.1``."""
    command: str
    """The script line that installs it."""


# Reporting plugins: offline mode does not pass their options, so the tests do not need them.
REPORTING_PLUGINS = frozenset(
    {"pytest-json-ctrf", "pytest-json-report", "pytest-html", "pytest-cov", "pytest-sugar"}
)
_REQ_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(\[[^\]]*\])?\s*(?:[=<>!~;@ ].*)?$")
_VALUE_OPTS = {
    "-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f",
    "--find-links", "-p", "--python", "-t", "--target", "--prefix", "--root", "--index", "--default-index",
    "--optional", "--group", "--extra", "--package", "--project", "--directory", "--from", "-e", "--editable",
}  # fmt: skip


def _commands(script: str) -> list[tuple[str, list[str]]]:
    """Simple commands of a shell script as token lists (continuations joined, split at ; && || |)."""
    text = re.sub(r"\\\n", " ", script)
    out = []
    for line in text.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            continue
        cmd: list[str] = []
        for tok in [*tokens, ";"]:
            if tok and set(tok) <= set(";&|"):
                if cmd:
                    out.append((line.strip(), cmd))
                cmd = []
            else:
                cmd.append(tok)
    return out


def script_test_dependencies(script: str, tests_dir: Any = None) -> list[TestDependency]:
    """Python packages a test script installs: ``uv add``, ``uv pip install``, ``pip[3] install``,
    ``python -m pip install``, ``uvx`` / ``uv run`` / ``uv tool run`` ``--with`` / ``-w``.

    ``-r FILE`` requirements files are read when ``FILE`` is in ``tests_dir`` (a host path). Paths, URLs
    and VCS requirements are not Python package names and are skipped.
    """
    deps: dict[str, TestDependency] = {}

    def add(req: str, line: str) -> None:
        if "/" in req or req.startswith((".", "git+")) or req.endswith((".whl", ".tar.gz", ".zip")):
            return
        m = _REQ_NAME_RE.match(req.strip())
        if m and m.group(1).lower() not in deps:
            deps[m.group(1).lower()] = TestDependency(m.group(1), req, line)

    def add_file(path: str, line: str) -> None:
        if tests_dir is None:
            return
        from pathlib import Path

        name = path.replace("${TEST_DIR}", TESTS_DIR).replace("$TEST_DIR", TESTS_DIR)
        name = name.removeprefix(TESTS_DIR + "/")
        f = Path(tests_dir) / name
        if f.is_file():
            for req in f.read_text(encoding="utf-8", errors="replace").splitlines():
                req = req.split("#", 1)[0].strip()
                if req and not req.startswith("-"):
                    add(req, line)

    for line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        install_args: list[str] | None = None
        for i in range(len(base) - 1):
            pair = (base[i], base[i + 1])
            if pair in (("pip", "install"), ("pip3", "install"), ("uv", "add")):
                install_args = tokens[i + 2 :]
                break
        if install_args is not None:
            skip = False
            for j, tok in enumerate(install_args):
                if skip:
                    skip = False
                    continue
                if tok in ("-r", "--requirement"):
                    if j + 1 < len(install_args):
                        add_file(install_args[j + 1], line)
                    skip = True
                elif tok in _VALUE_OPTS:
                    skip = True
                elif not tok.startswith("-"):
                    add(tok, line)
        if "uvx" in base or ("uv" in base and ("run" in base or "tool" in base)):
            for j, tok in enumerate(tokens):
                if tok in ("-w", "--with") and j + 1 < len(tokens):
                    for req in tokens[j + 1].split(","):
                        add(req, line)
                elif tok.startswith("--with="):
                    for req in tok.split("=", 1)[1].split(","):
                        add(req, line)
            # `uvx pytest ...` / `uv tool run pytest`: the tool itself is a dependency.
            if "uvx" in base:
                k = base.index("uvx") + 1
                while k < len(tokens) and tokens[k].startswith("-"):
                    k += (
                        1
                        if "=" in tokens[k] or tokens[k] not in ("-w", "--with", "-p", "--python", "--from")
                        else 2
                    )
                if k < len(tokens):
                    add(tokens[k], line)
    return list(deps.values())


_CHECK_DEPS = """
import importlib.metadata as md, importlib.util, json, sys
missing = []
for name in json.loads(sys.argv[1]):
    try:
        md.distribution(name)
        continue
    except Exception:
        pass
    try:
        if importlib.util.find_spec(name.replace("-", "_").lower()) is not None:
            continue
    except Exception:
        pass
    missing.append(name)
print(json.dumps(missing))
"""


def _missing_dependencies(
    sandbox: Sandbox, names: list[str], *, env: dict[str, str], workdir: str | None
) -> tuple[list[str] | None, str]:
    """Which of ``names`` the image's ``python3`` cannot find; ``(None, why)`` if python3 itself is missing."""
    res = sandbox.exec(
        ["python3", "-c", _CHECK_DEPS, json.dumps(names)], timeout=60, env=env, workdir=workdir
    )
    if not res.ok:
        return None, res.text.strip()[-300:]
    try:
        return list(json.loads(res.stdout.decode().strip().splitlines()[-1])), ""
    except (ValueError, IndexError):
        return None, res.text.strip()[-300:]


def offline_test_files(task: Task) -> list[str]:
    """The test files (paths in the sandbox) the task's test script hands to pytest.

    Read from the script's pytest command (``$TEST_DIR`` / ``${TEST_DIR}`` become ``/tests``; relative paths
    are looked up in ``tests/``); if it names none, every top-level ``tests/test_*.py`` / ``*_test.py``.
    """
    script = task.test_script.read_text(encoding="utf-8", errors="replace")
    found: list[str] = []
    for _line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        if not any(b in ("pytest", "py.test") for b in base):
            continue
        start = next(i for i, b in enumerate(base) if b in ("pytest", "py.test"))
        for tok in tokens[start + 1 :]:
            path = tok.replace("${TEST_DIR}", TESTS_DIR).replace("$TEST_DIR", TESTS_DIR)
            file = path.split("::", 1)[0]
            if not file.endswith(".py"):
                continue
            rel = file.removeprefix(TESTS_DIR + "/") if file.startswith(TESTS_DIR + "/") else file
            if rel.startswith("/") or not (task.tests_dir / rel).is_file():
                continue
            sandbox_path = f"{TESTS_DIR}/{rel}" + (path[len(file) :] if "::" in path else "")
            if sandbox_path not in found:
                found.append(sandbox_path)
    if not found and task.tests_dir.is_dir():
        for p in sorted(task.tests_dir.iterdir()):
            if p.is_file() and p.suffix == ".py" and (p.name.startswith("test_") or p.stem.endswith("_test")):
                found.append(f"{TESTS_DIR}/{p.name}")
    return found


_LOCAL_URL_RE = re.compile(r"^https?://(?:localhost|127\.|0\.0\.0\.0|\[::1\])")


def script_needs_network(script: str) -> bool:
    """Whether a test script fetches tools or packages before testing: it runs ``uv`` / ``uvx``,
    ``pip install``, ``apt(-get) install``, or ``curl`` / ``wget`` on a non-local URL."""
    for _line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        if "uv" in base or "uvx" in base:
            return True
        if {("pip", "install"), ("pip3", "install")} & set(itertools.pairwise(base)):
            return True
        if {"apt", "apt-get"} & set(base) and "install" in base:
            return True
        if ("curl" in base or "wget" in base) and any(
            t.startswith(("http://", "https://")) and not _LOCAL_URL_RE.match(t) for t in tokens
        ):
            return True
    return False


# --------------------------------------------------------------------------- the verifier


def verify(
    sandbox: Sandbox,
    task: Task,
    *,
    timeout: float | None = None,
    offline: bool = False,
    shell_cwd: str | None = None,
) -> VerifierResult:
    """Copy the tests in, run them and return the reward and per-test detail.

    Args:
        timeout: overrides the task's verifier timeout (``[verifier] timeout_sec`` / ``max_test_timeout_sec``).
        offline: where the test script (TB 1.x ``run-tests.sh``, Harbor ``tests/test.sh``) downloads its tools
            (:func:`script_needs_network`), run the task's test files with the image's
            ``python3 -m pytest -rA`` instead. Test dependencies the script installs must be in the image.
            A script that needs nothing from the network still runs as is.
        shell_cwd: the agent shell's working directory, for Terminal-Bench tasks with
            ``run_tests_in_same_shell`` (found in the sandbox when not given).
    """
    if task.format == "terminal-bench":
        return _verify_terminal_bench(sandbox, task, timeout=timeout, offline=offline, shell_cwd=shell_cwd)
    if offline and script_needs_network(task.test_script.read_text(encoding="utf-8", errors="replace")):
        return _verify_harbor_offline(sandbox, task, timeout=timeout)
    return _verify_harbor(sandbox, task, timeout=timeout)


def _prepare_tests(sandbox: Sandbox, task: Task, extra_dirs: str = "") -> str | None:
    prep = sandbox.exec(
        [
            "/bin/sh",
            "-c",
            f"rm -rf {TESTS_DIR} {VERIFIER_LOGS} && mkdir -p {TESTS_DIR} {VERIFIER_LOGS} {extra_dirs}",
        ],
        timeout=60,
        workdir="/",
    )
    if not prep.ok:
        return f"preparing the verifier failed: {prep.text.strip()[-300:]}"
    if task.tests_dir.is_dir():
        sandbox.put(task.tests_dir, TESTS_DIR)
    return None


def _verify_harbor(sandbox: Sandbox, task: Task, *, timeout: float | None) -> VerifierResult:
    timeout = timeout or task.config.verifier.timeout_sec
    err = _prepare_tests(sandbox, task)
    if err:
        return VerifierResult(0.0, False, error=err, runner="tests/test.sh")
    res = sandbox.exec(
        ["bash", f"{TESTS_DIR}/test.sh"],
        timeout=timeout,
        env=dict(task.config.verifier.env),
        max_output=MAX_VERIFIER_OUTPUT,
    )
    result = VerifierResult(
        reward=0.0,
        passed=False,
        exit_code=res.exit_code,
        timed_out=res.timed_out,
        duration_s=res.duration_s,
        output=res.text,
        runner="tests/test.sh",
    )
    if res.timed_out:
        result.error = f"verifier timed out after {timeout:g}s ([verifier] timeout_sec)"
    for name, parser in (("junit.xml", parse_junit), ("ctrf.json", parse_ctrf)):
        raw = sandbox.get(f"{VERIFIER_LOGS}/{name}")
        if raw:
            try:
                result.tests = parser(raw.decode("utf-8", errors="replace"))
                break
            except (ET.ParseError, ValueError, KeyError, TypeError, AttributeError):
                pass
    reward_error = None
    for name in ("reward.txt", "reward.json"):
        raw = sandbox.get(f"{VERIFIER_LOGS}/{name}")
        if raw is None:
            continue
        try:
            result.reward = parse_reward(raw.decode("utf-8", errors="replace"), name)
            result.passed = result.reward >= 1.0 - 1e-9
            reward_error = None
            break
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            reward_error = f"{VERIFIER_LOGS}/{name} is malformed: {e}"
    else:
        if reward_error is None:
            reward_error = f"the verifier wrote no {VERIFIER_LOGS}/reward.txt or reward.json"
    if reward_error and not result.error:
        result.error = reward_error
    return result


def _run_offline_pytest(
    sandbox: Sandbox,
    task: Task,
    *,
    env: dict[str, str],
    workdir: str | None,
    timeout: float,
    result: VerifierResult,
) -> ExecResult | None:
    """Check the script's test dependencies, then run ``python3 -m pytest -rA`` on the task's test files.

    Fills ``result.error`` / ``result.notes``; returns ``None`` when the tests could not be run.
    """
    script_name = task.test_script.relative_to(task.path).as_posix()
    script = task.test_script.read_text(encoding="utf-8", errors="replace")
    files = offline_test_files(task)
    result.runner = "offline pytest"
    result.notes.append(
        f"offline mode: {script_name} was not run; ran python3 -m pytest -rA {' '.join(files) or '(nothing)'} "
        "with the image's own Python"
    )
    if not files:
        result.error = (
            f"offline verification: no test files found ({script_name} names none, tests/ has none)"
        )
        return None
    deps = script_test_dependencies(script, task.tests_dir)
    ignored = [d.name for d in deps if d.name.lower() in REPORTING_PLUGINS]
    if ignored:
        result.notes.append(f"offline mode: reporting plugins not needed: {', '.join(ignored)}")
    pinned = [d.requirement for d in deps if d.requirement != d.name]
    if pinned:
        result.notes.append(
            f"offline mode: versions are not enforced ({', '.join(pinned)}); the image's packages are used"
        )
    wanted = ["pytest"] + [d.name for d in deps if d.name.lower() not in REPORTING_PLUGINS | {"pytest"}]
    missing, why = _missing_dependencies(sandbox, wanted, env=env, workdir=workdir)
    if missing is None:
        result.error = f"offline verification needs python3 in the image, and it failed: {why}"
        return None
    if missing:
        by_name = {d.name: d for d in deps}
        detail = "; ".join(
            f"{n} (installed by {script_name}: `{by_name[n].command}`)"
            if n in by_name
            else f"{n} (to run the tests)"
            for n in missing
        )
        result.error = (
            f"offline verification: test dependenc{'y' if len(missing) == 1 else 'ies'} not installed in the "
            f"image: {detail}. Bake {'it' if len(missing) == 1 else 'them'} into an image and map the task's "
            "base image to it with --image-map (offline mode cannot download packages)"
        )
        return None
    return sandbox.exec(
        ["python3", "-m", "pytest", "-rA", "-p", "no:cacheprovider", *files],
        timeout=timeout,
        env=env,
        workdir=workdir,
        max_output=MAX_TEST_OUTPUT,
    )


def _verify_harbor_offline(sandbox: Sandbox, task: Task, *, timeout: float | None) -> VerifierResult:
    """Harbor task whose tests/test.sh downloads its tools: run pytest directly, write the reward from it.

    The reward follows what such a test.sh writes: 1 if pytest exits 0 (with at least one test), else 0.
    """
    timeout = timeout or task.config.verifier.timeout_sec
    result = VerifierResult(0.0, False, runner="offline pytest")
    err = _prepare_tests(sandbox, task)
    if err:
        result.error = err
        return result
    res = _run_offline_pytest(
        sandbox, task, env=dict(task.config.verifier.env), workdir=None, timeout=timeout, result=result
    )
    if res is None:
        return result
    summary = parse_pytest_summary(res.text)
    result.tests = summary.tests
    result.exit_code, result.timed_out, result.duration_s = res.exit_code, res.timed_out, res.duration_s
    result.output = _tail(res.text)
    result.reward = 1.0 if res.ok and summary.tests else 0.0
    result.passed = result.reward == 1.0
    sandbox.put_bytes(f"{result.reward:g}\n".encode(), f"{VERIFIER_LOGS}/reward.txt")
    if res.timed_out:
        result.error = f"verifier timed out after {timeout:g}s ([verifier] timeout_sec)"
    elif not summary.found:
        result.error = "offline pytest printed no 'short test summary info' section (the tests did not run)"
    return result


def _verify_terminal_bench(
    sandbox: Sandbox, task: Task, *, timeout: float | None, offline: bool, shell_cwd: str | None
) -> VerifierResult:
    tb = task.terminal_bench
    assert tb is not None
    timeout = timeout or tb.max_test_timeout_sec
    env = {**task.container_env, "TEST_DIR": TESTS_DIR}
    result = VerifierResult(0.0, False, runner="run-tests.sh")
    workdir = task.container_workdir or sandbox.spec.workdir
    if tb.run_tests_in_same_shell:
        cwd = shell_cwd or agent_shell_cwd(sandbox)
        if cwd:
            workdir = cwd
            result.notes.append(
                f"run_tests_in_same_shell: tests ran in the same sandbox, in the agent shell's working "
                f"directory {cwd} (a separate process: the shell's variables and functions are "
                "not visible to them)"
            )
        else:
            result.notes.append(
                f"run_tests_in_same_shell: no agent shell is running; tests ran in the container's working "
                f"directory {workdir}"
            )
    # TB mounts /logs and /agent-logs into every container; tests may write there.
    err = _prepare_tests(sandbox, task, extra_dirs="/logs /agent-logs")
    if err:
        result.error = err
        return result
    if offline and script_needs_network(task.test_script.read_text(encoding="utf-8", errors="replace")):
        res = _run_offline_pytest(sandbox, task, env=env, workdir=workdir, timeout=timeout, result=result)
        if res is None:
            return result
    else:
        sandbox.put(task.test_script, f"{TESTS_DIR}/run-tests.sh", mode=0o755)
        res = sandbox.exec(
            ["bash", f"{TESTS_DIR}/run-tests.sh"],
            timeout=timeout,
            env=env,
            workdir=workdir,
            max_output=MAX_TEST_OUTPUT,
        )
    summary = parse_pytest_summary(res.text)
    result.tests = summary.tests
    result.exit_code, result.timed_out, result.duration_s = res.exit_code, res.timed_out, res.duration_s
    result.output = _tail(res.text)
    result.passed = summary.resolved and not res.timed_out
    result.reward = 1.0 if result.passed else 0.0
    if res.timed_out:
        result.error = f"tests timed out after {timeout:g}s (task.yaml max_test_timeout_sec)"
    elif not summary.found:
        hint = ""
        if result.runner == "run-tests.sh" and script_needs_network(
            task.test_script.read_text(encoding="utf-8", errors="replace")
        ):
            hint = " (run-tests.sh downloads its tools: without a network, use offline mode, --offline-tests)"
        result.error = f"no 'short test summary info' section in the test output: the tests did not run{hint}"
    elif not summary.tests:
        result.error = "the pytest summary reports no tests"
    return result


def _tail(text: str) -> str:
    return text if len(text) <= MAX_VERIFIER_OUTPUT else "[...]\n" + text[-MAX_VERIFIER_OUTPUT:]


_SHELL_CWD_SCRIPT = r"""
best=
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  s=$(cat "$d/stat" 2>/dev/null) || continue
  comm=${s#*(}; comm=${comm%)*}
  case "$comm" in bash|sh|dash|zsh|ksh|fish|ash) ;; *) continue ;; esac
  set -- ${s##*) }
  [ "$3" = "$pid" ] && [ "$5" != 0 ] || continue
  if [ -z "$best" ] || [ "$pid" -lt "$best" ]; then best=$pid; fi
done
[ -n "$best" ] && readlink "/proc/$best/cwd"
"""


def agent_shell_cwd(sandbox: Sandbox) -> str | None:
    """Working directory of the agent's shell: the oldest shell in the sandbox that has a controlling terminal
    and leads its process group (as an interactive shell with job control does).

    ``None`` when no shell runs on a terminal (e.g. a do-nothing agent, or an oracle run without one).
    """
    res = sandbox.exec(["/bin/sh", "-c", _SHELL_CWD_SCRIPT], timeout=30, workdir="/")
    cwd = res.stdout.decode(errors="replace").strip() if res.ok else ""
    return cwd if cwd.startswith("/") else None


# --------------------------------------------------------------------------- the oracle


@dataclass
class OracleRun(ExecResult):
    """Outcome of :func:`run_oracle`. A keystroke oracle (``solution.yaml``) leaves its shell running, as an
    agent's would be during the tests (background jobs it started survive): call :meth:`close` after
    verifying."""

    pty: PtyProcess | None = None

    def close(self) -> None:
        if self.pty is not None:
            self.pty.kill()
            self.pty = None


def run_oracle(sandbox: Sandbox, task: Task, *, timeout: float | None = None) -> OracleRun:
    """Run the reference solution in the sandbox.

    * Harbor ``solution/solve.sh``: copied to /solution, run with bash, removed again.
    * Terminal-Bench ``solution.sh``: copied to /oracle/solution.sh and run with bash in the container's
      working directory and environment, as TB's oracle agent does; removed again.
    * Terminal-Bench ``solution.yaml``: its keystrokes are typed into an interactive bash on a terminal
      (see :func:`run_keystrokes`).
    """
    from ltenv.errors import TaskLoadError

    if not task.has_solution:
        raise TaskLoadError(task.path, task.solution_label, None, "missing: the task has no oracle")
    timeout = timeout or task.config.agent.timeout_sec
    tb = task.terminal_bench
    if tb is not None and tb.solution == "solution.yaml":
        return run_keystrokes(
            sandbox,
            tb.solution_commands,
            timeout=timeout,
            env=task.container_env,
            workdir=task.container_workdir,
        )
    if tb is not None:
        sandbox.put(task.path / "solution.sh", f"{ORACLE_DIR}/solution.sh", mode=0o755)
        argv, cleanup = ["bash", f"{ORACLE_DIR}/solution.sh"], ORACLE_DIR
        env, workdir = task.container_env, task.container_workdir
    else:
        sandbox.put(task.solution_dir, SOLUTION_DIR)
        argv, cleanup = ["bash", f"{SOLUTION_DIR}/solve.sh"], SOLUTION_DIR
        env, workdir = {}, None
    try:
        res = sandbox.exec(
            argv, timeout=timeout, env=env or None, workdir=workdir, max_output=MAX_VERIFIER_OUTPUT
        )
    finally:
        sandbox.exec(["rm", "-rf", cleanup], timeout=60, workdir="/")
    return OracleRun(**{f: getattr(res, f) for f in ExecResult.__dataclass_fields__})


_ENTER_KEYS = frozenset({"Enter", "C-m", "KPEnter", "C-j", "^M", "^J"})


def _executes(key: str) -> bool:
    return key in _ENTER_KEYS or key.endswith(("\n", "\r"))


def _without_execution(keys: list[str]) -> list[str]:
    """``keys`` minus the trailing Enter keys / newlines that would execute the line."""
    keys = list(keys)
    while keys and _executes(keys[-1]):
        if keys[-1] in _ENTER_KEYS:
            keys.pop()
        else:
            stripped = keys[-1].rstrip("\r\n")
            if stripped:
                keys[-1] = stripped
            else:
                keys.pop()
    return keys


def run_keystrokes(
    sandbox: Sandbox,
    commands: Sequence[TerminalCommand],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    rows: int = 40,
    cols: int = 160,
) -> OracleRun:
    """Type Terminal-Bench ``solution.yaml`` entries into an interactive bash on a terminal in the sandbox.

    Each entry's ``command`` is a key (tmux ``send-keys`` names: ``C-c``, ``Escape``, ``Enter``...) or literal
    text; ``append_enter`` adds Enter. With ``block`` and an executing entry, the line gets a completion
    marker appended (as TB appends ``; tmux wait -S done``) and we wait for it up to ``max_timeout_sec``;
    otherwise we wait ``min_timeout_sec`` before the next entry. The terminal is drained throughout.
    The result's output is the terminal transcript (escape sequences stripped); ``timed_out`` is set when a
    blocking entry or the whole run (``timeout``) ran out of time, and later entries are not sent.
    """
    from ltenv.terminal.keys import encode_keys  # the tmux key-name encoder of keys mode

    t0 = time.monotonic()
    deadline = t0 + timeout
    nonce = secrets.token_hex(6)
    transcript = HeadTailBuffer(MAX_VERIFIER_OUTPUT)
    start = 'cd "$1" 2>/dev/null; exec bash --login -i' if workdir else "exec bash --login -i"
    argv = ["/bin/sh", "-c", start, "sh", *([workdir] if workdir else [])]
    pty = sandbox.spawn_pty(
        argv, env={"HISTFILE": "/dev/null", **(env or {})}, rows=rows, cols=cols, echo=True
    )
    run = OracleRun(exit_code=0, stdout=b"", stderr=b"", pty=pty)
    pending = bytearray()

    def pump(until: bytes | None, limit: float) -> bool:
        """Drain the terminal until ``until`` appears (True) or ``limit`` passes / the shell exits (False)."""
        while True:
            if until is not None and until in pending:
                idx = pending.index(until) + len(until)
                transcript.write(bytes(pending[:idx]).replace(until, b""))
                del pending[:idx]
                return True
            if len(pending) > 4096:
                cut = len(pending) - 256
                transcript.write(bytes(pending[:cut]))
                del pending[:cut]
            wait = limit - time.monotonic()
            if wait <= 0:
                return False
            r, _ = wait_fds([pty.fd], [], min(wait, 0.1))
            if not r:
                if pty.poll() is not None:
                    return False
                continue
            try:
                chunk = os.read(pty.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            pending.extend(chunk)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(pty.fd, view)
                view = view[n:]
            except BlockingIOError:
                pump(None, time.monotonic() + 0.05)

    seq = 0

    def marker_keys() -> tuple[list[str], bytes]:
        nonlocal seq
        seq += 1
        token = f"ltenv-{nonce}-{seq}"
        # The echoed line shows the octal escapes; only the command's output holds the raw marker bytes.
        return [f"; printf '\\036%s\\036' {token}", "Enter"], b"\x1e" + token.encode() + b"\x1e"

    try:
        keys, mark = marker_keys()
        write(encode_keys([keys[0].removeprefix("; "), "Enter"]))
        if not pump(mark, deadline):
            run.exit_code, run.timed_out = (124, True) if pty.poll() is None else (1, False)
            transcript.write(b"\n[ltenv: the oracle shell did not start]\n")
        for i, cmd in enumerate(commands if not run.timed_out and run.exit_code == 0 else []):
            keys = [cmd.command, "Enter"] if cmd.append_enter else [cmd.command]
            if cmd.block and _executes(keys[-1]):
                extra, mark = marker_keys()
                write(encode_keys(_without_execution(keys) + extra))
                limit = min(deadline, time.monotonic() + cmd.max_timeout_sec)
                if not pump(mark, limit):
                    if pty.poll() is not None:
                        transcript.write(
                            f"\n[ltenv: the shell exited during solution.yaml entry {i}]\n".encode()
                        )
                        break
                    run.exit_code, run.timed_out = 124, True
                    transcript.write(
                        f"\n[ltenv: solution.yaml entry {i} did not finish within "
                        f"{min(cmd.max_timeout_sec, max(0.0, deadline - time.monotonic())):g}s]\n".encode()
                    )
                    break
            else:
                sent = time.monotonic()
                write(encode_keys(keys))
                pump(None, min(deadline, sent + cmd.min_timeout_sec))
            if time.monotonic() >= deadline:
                run.exit_code, run.timed_out = 124, True
                transcript.write(f"\n[ltenv: the oracle ran out of its {timeout:g}s]\n".encode())
                break
        pump(None, time.monotonic() + 0.05)
        transcript.write(bytes(pending))
    except BaseException:
        run.close()
        raise
    run.stdout = strip_ansi(transcript.getvalue().decode("utf-8", errors="replace")).encode()
    run.duration_s = time.monotonic() - t0
    return run
