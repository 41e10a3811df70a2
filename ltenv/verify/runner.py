"""The verifier: one path for every task format.

A task's loader describes its verifier as a :class:`~ltenv.tasks.VerifierSpec` (entry script, test files,
environment, working directory, how the outcome is read). :func:`verify` runs it in a private view of the
episode's sandbox (:meth:`~ltenv.sandbox.base.Sandbox.run_trusted`): the agent's final filesystem, processes
and loopback services, but fresh ``/tests`` and ``/logs/verifier`` and a shell, Python and pytest taken from the
task image as built, so nothing the agent changed or planted decides the verdict. The outcome is a reward file
(Harbor) or ``pytest -rA`` output parsed as Terminal-Bench does, cross-checked with the reports of every pytest
session the pristine Python ran: zero tests collected, or a passing reward that a failed session contradicts,
is never a pass.

Where a backend cannot give a private view (a remote Docker engine), the tests run in the sandbox itself as
before, with a note in :attr:`VerifierResult.notes` saying the toolchain was the agent's.
"""

from __future__ import annotations

import io
import json
import signal
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ltenv.sandbox.base import DEFAULT_ENV, Sandbox
from ltenv.sandbox.trusted_run import TrustedJob, TrustedRun
from ltenv.tasks.model import Task, VerifierSpec
from ltenv.verify.offline import offline_plan, script_needs_network
from ltenv.verify.results import (
    VerifierResult,
    parse_ctrf,
    parse_junit,
    parse_pytest_summary,
    parse_reward,
)

TESTS_DIR = "/tests"
VERIFIER_LOGS = "/logs/verifier"
MAX_VERIFIER_OUTPUT = 64 * 1024
MAX_TEST_OUTPUT = 4 << 20
"""Test output kept for parsing (head and tail): the pytest summary comes last."""
BOOT = Path(__file__).with_name("boot.py")
OFFLINE_SCRIPT = "/.ltenv-verifier/offline.sh"
KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
"""A test script that died of one of these was stopped from outside: its outcome file cannot be trusted."""
OUTCOME_FILES = ("reward.txt", "reward.json", "junit.xml", "ctrf.json")
"""What the verifier reads back from ``/logs/verifier`` (other files there stay in the sandbox)."""


def verify(
    sandbox: Sandbox,
    task: Task,
    *,
    timeout: float | None = None,
    offline: bool = False,
    shell_cwd: str | None = None,
) -> VerifierResult:
    """Run the task's tests against the sandbox as the agent left it and return the reward and per-test detail.

    Args:
        timeout: overrides the task's verifier timeout (``[verifier] timeout_sec`` / ``max_test_timeout_sec``).
        offline: where the test script downloads its tools (:func:`script_needs_network`), run the task's test
            files with the image's own ``python3 -m pytest -rA`` instead. Test dependencies the script installs
            must be in the image. A script that needs nothing from the network still runs as is.
        shell_cwd: the agent shell's working directory, for Terminal-Bench tasks with
            ``run_tests_in_same_shell`` (found in the sandbox when not given).
    """
    result = _verify(sandbox, task, timeout=timeout, offline=offline, shell_cwd=shell_cwd)
    if result.error:  # no reward the verifier stands behind (a timeout, a missing or malformed outcome...)
        result.reward, result.passed = 0.0, False
        result.error = f"task '{task.name}': {result.error}"
    return result


def _verify(
    sandbox: Sandbox, task: Task, *, timeout: float | None, offline: bool, shell_cwd: str | None
) -> VerifierResult:
    spec = task.verifier_spec()
    timeout = timeout or spec.timeout_sec
    result = VerifierResult(0.0, False, runner=spec.label)
    workdir = spec.workdir or sandbox.spec.workdir
    if spec.workdir_from_agent_shell:
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
    env = _verifier_env(sandbox, spec)
    script, offline_files = spec.script_dest, None
    script_text = spec.script.read_text(encoding="utf-8", errors="replace")
    if offline and script_needs_network(script_text):
        offline_files = offline_plan(sandbox, task, env=env, workdir=workdir, result=result)
        if offline_files is None:
            return result
        script = OFFLINE_SCRIPT
    run = _run(sandbox, spec, script, offline_files, env, workdir, timeout, result)
    if run is None:
        return result
    result.exit_code, result.timed_out, result.duration_s = run.exit_code, run.timed_out, run.duration_s
    output = run.text
    if run.timed_out:
        result.error = f"the verifier timed out after {timeout:g}s ({spec.timeout_label})"
    elif run.exit_code - 128 in KILL_SIGNALS:
        result.error = f"{spec.label} was killed by signal {run.exit_code - 128} before it finished"
    if spec.outcome == "pytest-output" or offline_files is not None:
        _read_pytest_output(result, output, run, spec, offline_files is not None, script_text)
    else:
        result.output = output if len(output) <= MAX_VERIFIER_OUTPUT else _tail(output)
        _read_reward_file(result, run)
    _cross_check(result, run)
    return result


def _verifier_env(sandbox: Sandbox, spec: VerifierSpec) -> dict[str, str]:
    """The sandbox's configured environment (never the agent shell's) with the verifier's over it."""
    return {**DEFAULT_ENV, **sandbox.env, **spec.env}


def _files_tar(spec: VerifierSpec) -> bytes:
    """``tests/`` and the entry script, as the tar the verifier's view is seeded with."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if spec.tests_dir is not None and spec.tests_dir.is_dir():
            tar.add(spec.tests_dir, arcname=TESTS_DIR.lstrip("/"), filter=_root_owned)
        if spec.script_dest.lstrip("/") not in tar.getnames():
            info = tar.gettarinfo(spec.script, arcname=spec.script_dest.lstrip("/"))
            with open(spec.script, "rb") as f:
                tar.addfile(_root_owned(info), f)
    return buf.getvalue()


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if info.isfile() and info.name.endswith(".sh"):
        info.mode |= 0o755
    return info


def _offline_script(offline_files: list[str], outcome: str) -> str:
    files = " ".join(json.dumps(f) for f in offline_files)
    lines = ["#!/bin/bash", f"python3 -m pytest -rA -p no:cacheprovider {files}", "code=$?"]
    if outcome == "reward-file":
        # What such a test.sh writes: 1 if pytest passed (with at least one test: cross-checked), else 0.
        lines.append(
            f'mkdir -p {VERIFIER_LOGS}; [ "$code" -eq 0 ] && echo 1 > {VERIFIER_LOGS}/reward.txt || '
            f"echo 0 > {VERIFIER_LOGS}/reward.txt"
        )
    lines.append('exit "$code"')
    return "\n".join(lines) + "\n"


def _run(
    sandbox: Sandbox,
    spec: VerifierSpec,
    script: str,
    offline_files: list[str] | None,
    env: dict[str, str],
    workdir: str,
    timeout: float,
    result: VerifierResult,
) -> TrustedRun | None:
    view_files = {"boot.py": BOOT.read_text(encoding="utf-8")}
    if offline_files is not None:
        view_files["offline.sh"] = _offline_script(offline_files, spec.outcome)
    why = sandbox.trusted_unavailable()
    if why is None:
        job = TrustedJob(
            script=script,
            files=_files_tar(spec),
            env=env,
            workdir=workdir,
            timeout=timeout,
            view_files=view_files,
            fresh_dirs=spec.fresh_dirs,
            max_output=MAX_TEST_OUTPUT,
            collect=tuple(f"{VERIFIER_LOGS}/{name}" for name in OUTCOME_FILES),
        )
        run = sandbox.run_trusted(job)
        if run.error:
            result.error = f"the verifier could not run: {run.error}"
            result.output = _tail(run.text)
            return None
        return run
    result.notes.append(
        f"the tests ran on the agent's own toolchain, not the image as built ({why}): an agent that "
        "changed it could change the verdict"
    )
    return _run_in_sandbox(sandbox, spec, script, view_files, env, workdir, timeout, result)


def _run_in_sandbox(
    sandbox: Sandbox,
    spec: VerifierSpec,
    script: str,
    view_files: dict[str, str],
    env: dict[str, str],
    workdir: str,
    timeout: float,
    result: VerifierResult,
) -> TrustedRun | None:
    """The fallback: tests copied into the sandbox and run there (what every harness does)."""
    dirs = " ".join([TESTS_DIR, VERIFIER_LOGS, "/.ltenv-verifier", *spec.fresh_dirs])
    prep = sandbox.exec(["/bin/sh", "-c", f"rm -rf {dirs} && mkdir -p {dirs}"], timeout=60, workdir="/")
    if not prep.ok:
        result.error = f"preparing the verifier failed: {prep.text.strip()[-300:]}"
        return None
    if spec.tests_dir is not None and spec.tests_dir.is_dir():
        sandbox.put(spec.tests_dir, TESTS_DIR)
    sandbox.put(spec.script, spec.script_dest, mode=0o755)
    for name, text in view_files.items():
        sandbox.put_bytes(text.encode(), f"/.ltenv-verifier/{name}", mode=0o755)
    t0 = time.monotonic()
    res = sandbox.exec(
        ["bash", script], timeout=timeout, env=env, workdir=workdir, max_output=MAX_TEST_OUTPUT
    )
    run = TrustedRun(**{f: getattr(res, f) for f in res.__dataclass_fields__})
    run.duration_s = time.monotonic() - t0
    for name in OUTCOME_FILES:
        raw = sandbox.get(f"{VERIFIER_LOGS}/{name}")
        if raw is not None:
            run.files[f"{VERIFIER_LOGS}/{name}"] = raw
    return run


def _read_reward_file(result: VerifierResult, run: TrustedRun) -> None:
    for name, parser in (("junit.xml", parse_junit), ("ctrf.json", parse_ctrf)):
        raw = run.files.get(f"{VERIFIER_LOGS}/{name}")
        if raw:
            try:
                result.tests = parser(raw.decode("utf-8", errors="replace"))
                break
            except (ET.ParseError, ValueError, KeyError, TypeError, AttributeError):
                pass
    reward_error = None
    for name in ("reward.txt", "reward.json"):
        raw = run.files.get(f"{VERIFIER_LOGS}/{name}")
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


def _read_pytest_output(
    result: VerifierResult, output: str, run: TrustedRun, spec: VerifierSpec, offline: bool, script_text: str
) -> None:
    summary = parse_pytest_summary(output)
    result.tests = summary.tests
    result.output = _tail(output)
    if spec.outcome == "reward-file":  # offline run of a Harbor task: the generated script wrote the reward
        _read_reward_file(result, run)
        if not summary.found and not result.error:
            result.error = (
                "offline pytest printed no 'short test summary info' section (the tests did not run)"
            )
        if offline and not summary.tests:
            result.reward, result.passed = 0.0, False
        return
    result.passed = summary.resolved and not run.timed_out
    result.reward = 1.0 if result.passed else 0.0
    if run.timed_out:
        return
    if not summary.found:
        hint = ""
        if not offline and script_needs_network(script_text):
            hint = (
                f" ({spec.label} downloads its tools: without a network, use offline mode, --offline-tests)"
            )
        result.error = f"no 'short test summary info' section in the test output: the tests did not run{hint}"
    elif not summary.tests:
        result.error = "the pytest summary reports no tests"


def _cross_check(result: VerifierResult, run: TrustedRun) -> None:
    """Hold the verdict against what the pristine pytest itself reported (one report per session)."""
    started = sum(1 for s in run.reports if s.get("event") == "start")
    sessions = [s for s in run.reports if "event" not in s]
    if started > len(sessions):
        claimed = result.reward > 0
        result.reward, result.passed, result.tampered = 0.0, False, claimed or result.tampered
        result.error = (
            f"{started - len(sessions)} of {started} pytest session(s) never finished (killed before they could "
            "report)" + (f", yet the outcome ({result.runner}) says pass" if claimed else "")
        )
        return
    if not sessions:
        return
    collected = sum(int(s.get("collected", 0)) for s in sessions)
    bad = [s for s in sessions if int(s.get("exitstatus", 1)) != 0]
    broken = [s for s in sessions if int(s.get("exitstatus", 0)) in (3, 4)]  # internal error, usage error
    if broken and not result.error:
        s = broken[0]
        why = s.get("crashed") or ("an internal error" if s.get("exitstatus") == 3 else "a usage error")
        result.error = f"pytest could not run the tests (exit status {s.get('exitstatus')}: {why})"
    if collected == 0 and not result.error:
        result.error = "pytest collected no tests: zero tests run is never a verdict"
    if collected == 0 or broken:
        result.reward, result.passed = 0.0, False
        return
    if result.reward > 0 and bad:
        worst = bad[0]
        failures = ", ".join(worst.get("failures", [])[:5]) or f"exit status {worst.get('exitstatus')}"
        result.reward, result.passed, result.tampered = 0.0, False, True
        result.error = (
            f"the outcome ({result.runner}) says pass, but pytest itself reported {worst.get('failed', 0)} failed, "
            f"{worst.get('errors', 0)} errors of {worst.get('collected', 0)} tests ({failures}): something "
            "other than the tests decided the verdict"
        )


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
