"""The verifier: run the task's tests in the episode's sandbox and turn their outcome into a reward."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from ltenv.sandbox.base import ExecResult, Sandbox
from ltenv.tasks.model import Task
from ltenv.verify.offline import (
    REPORTING_PLUGINS,
    _missing_dependencies,
    offline_test_files,
    script_needs_network,
    script_test_dependencies,
)
from ltenv.verify.results import (
    VerifierResult,
    parse_ctrf,
    parse_junit,
    parse_pytest_summary,
    parse_reward,
)

TESTS_DIR = "/tests"
SOLUTION_DIR = "/solution"
ORACLE_DIR = "/oracle"
VERIFIER_LOGS = "/logs/verifier"
MAX_VERIFIER_OUTPUT = 64 * 1024
MAX_TEST_OUTPUT = 4 << 20


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
