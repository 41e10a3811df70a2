"""Verification: run the task's ``tests/test.sh`` in the episode's sandbox and read the reward it wrote.

The verifier sees the sandbox exactly as the agent left it (files, running processes, loopback services).
Tests are copied in only now, to ``/tests``; the reward comes from ``/logs/verifier/reward.txt`` (a float in
[0, 1]) or ``/logs/verifier/reward.json``; per-test results come from JUnit XML or CTRF JSON when the test
runner wrote them to ``/logs/verifier/``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from ltenv.sandbox.base import Sandbox
from ltenv.tasks.model import Task

TESTS_DIR = "/tests"
SOLUTION_DIR = "/solution"
VERIFIER_LOGS = "/logs/verifier"
MAX_VERIFIER_OUTPUT = 64 * 1024


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def verify(sandbox: Sandbox, task: Task, *, timeout: float | None = None) -> VerifierResult:
    """Copy the tests in, run ``tests/test.sh`` and return the reward and per-test detail."""
    timeout = timeout or task.config.verifier.timeout_sec
    prep = sandbox.exec(
        ["/bin/sh", "-c", f"rm -rf {TESTS_DIR} {VERIFIER_LOGS} && mkdir -p {VERIFIER_LOGS}"],
        timeout=60,
        workdir="/",
    )
    if not prep.ok:
        return VerifierResult(0.0, False, error=f"preparing the verifier failed: {prep.text.strip()[-300:]}")
    sandbox.put(task.tests_dir, TESTS_DIR)
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


def run_oracle(sandbox: Sandbox, task: Task, *, timeout: float | None = None):
    """Run the reference solution (``solution/solve.sh``) in the sandbox, then remove it again."""
    from ltenv.errors import TaskLoadError

    if not task.has_solution:
        raise TaskLoadError(task.path, "solution/solve.sh", None, "missing: the task has no oracle")
    sandbox.put(task.solution_dir, SOLUTION_DIR)
    try:
        return sandbox.exec(
            ["bash", f"{SOLUTION_DIR}/solve.sh"],
            timeout=timeout or task.config.agent.timeout_sec,
            max_output=MAX_VERIFIER_OUTPUT,
        )
    finally:
        sandbox.exec(["rm", "-rf", SOLUTION_DIR], timeout=60, workdir="/")
