"""What a verification returns, and the parsers that read test-runner reports (reward files, JUnit XML,
CTRF JSON, and ``pytest -rA`` output as Terminal-Bench's parser reads it)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from ltenv.output import strip_ansi


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
