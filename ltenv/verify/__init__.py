"""Verification: run a task's tests against the sandbox the agent left and turn their outcome into a reward.

One path for every task format. Each loader describes its verifier and its oracle as plain specs
(:class:`ltenv.tasks.VerifierSpec`, :class:`ltenv.tasks.OracleSpec`); this package runs them.

* :mod:`ltenv.verify.runner` — :func:`verify`: copy the tests in, run the entry script, read the outcome
  (a reward file, or ``pytest -rA`` output parsed as Terminal-Bench does), cross-check it with the test
  runner's own report.
* :mod:`ltenv.verify.results` — :class:`VerifierResult` and the report parsers (reward files, JUnit, CTRF,
  pytest summaries).
* :mod:`ltenv.verify.offline` — test scripts that download their tools run the task's test files with the
  image's own pytest instead (offline mode).
* :mod:`ltenv.verify.oracle` — the reference solution (a script, or Terminal-Bench keystrokes).
* :mod:`ltenv.verify.attacks` — the built-in reward-hacking attack suite every task must resist.

The verifier sees the agent's final filesystem, processes and loopback services, but runs on a toolchain the
agent could not change: see the README's "Reward integrity" section for the threat model.
"""

from ltenv.verify.attacks import ATTACKS, Attack, apply_attack, attack_skipped, get_attack, run_attack
from ltenv.verify.offline import (
    REPORTING_PLUGINS,
    TestDependency,
    offline_test_files,
    script_needs_network,
    script_test_dependencies,
)
from ltenv.verify.oracle import ORACLE_DIR, SOLUTION_DIR, OracleRun, run_keystrokes, run_oracle
from ltenv.verify.results import (
    PytestSummary,
    TestResult,
    VerifierResult,
    parse_ctrf,
    parse_junit,
    parse_pytest_summary,
    parse_reward,
)
from ltenv.verify.runner import (
    MAX_TEST_OUTPUT,
    MAX_VERIFIER_OUTPUT,
    TESTS_DIR,
    VERIFIER_LOGS,
    agent_shell_cwd,
    verify,
)

__all__ = [
    "ATTACKS",
    "MAX_TEST_OUTPUT",
    "MAX_VERIFIER_OUTPUT",
    "ORACLE_DIR",
    "REPORTING_PLUGINS",
    "SOLUTION_DIR",
    "TESTS_DIR",
    "VERIFIER_LOGS",
    "Attack",
    "OracleRun",
    "PytestSummary",
    "TestDependency",
    "TestResult",
    "VerifierResult",
    "agent_shell_cwd",
    "apply_attack",
    "attack_skipped",
    "get_attack",
    "offline_test_files",
    "parse_ctrf",
    "parse_junit",
    "parse_pytest_summary",
    "parse_reward",
    "run_attack",
    "run_keystrokes",
    "run_oracle",
    "script_needs_network",
    "script_test_dependencies",
    "verify",
]
