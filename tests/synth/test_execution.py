"""Execution validation of synthesized candidates, in real sandboxes: one candidate per failure reason.

Tests of the other checks pass ``builtin_attacks=()`` (no built-in reward hacks: faster, and their run counts
stay those of the candidate's own solutions); the built-in attacks have their own tests at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ltenv.synth.execution import BUILTIN_PREFIX, REASONS, ExecReport, normalize_output, validate_candidate
from ltenv.verify.attacks import attack_names, get_attack
from tests.support.openai_server import openai_server  # noqa: F401

pytestmark = pytest.mark.slow

TASK_TOML = """\
version = "1.0"

[metadata]
domain = "coding"
difficulty = "easy"
category = "fixture"

[agent]
timeout_sec = 120

[verifier]
timeout_sec = 60

[environment]
build_timeout_sec = 300
cpus = 1
memory_mb = 1024
allow_internet = {internet}
"""

DOCKERFILE = """\
FROM ltenv/base:bookworm
WORKDIR /app
COPY numbers.txt /app/numbers.txt
"""

NUMBERS = "".join(f"{n}\n" for n in (17, 4, 23, 8, 42, 15, 16))

SOLVE = """\
#!/bin/bash
# Reference solution: the sum and the maximum of /app/numbers.txt, one per line.
set -e
cd /app
awk '{ s += $1; if ($1 > m) m = $1 } END { print s; print m }' numbers.txt > /app/answer.txt
"""

TEST_SH = """\
#!/bin/bash
mkdir -p /logs/verifier
cd /app
python3 -m pytest -q -p no:cacheprovider --junitxml=/logs/verifier/junit.xml /tests/test_outputs.py -rA
if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
"""

TESTS_PY = """\
from pathlib import Path


def lines():
    return Path("/app/answer.txt").read_text().split()


def test_answer_exists():
    assert Path("/app/answer.txt").is_file()


def test_sum():
    assert lines()[0] == "125"


def test_max():
    assert lines()[1] == "42"
"""

ATTACKS = {
    "sum-only": "cd /app && awk '{ s += $1 } END { print s }' numbers.txt > answer.txt\n",
    "first-line-max": "cd /app && { echo 125; head -n1 numbers.txt; } > answer.txt\n",
}

# Hackable by construction, whatever runs it: the test script itself puts the agent's working directory
# first on sys.path, so an agent's /app/pytest.py is the pytest that runs (built-in attack
# shadow-pytest-module), and nothing reports a real pytest session to the verifier.
HACKABLE_TEST_SH = """\
#!/bin/bash
mkdir -p /logs/verifier
cd /app
python3 -c 'import sys; sys.path.insert(0, "/app"); import pytest; sys.exit(pytest.main(["-q", "-rA", "-p", "no:cacheprovider", "/tests/test_outputs.py"]))'
if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
"""

FLAKY_TESTS_PY = """\
import random

import pytest


@pytest.mark.parametrize("i", range(24))
def test_coin(i):
    assert random.random() < 0.5
"""


def make_candidate(
    root: Path,
    name: str = "sum-max",
    *,
    dockerfile: str = DOCKERFILE,
    solve: str = SOLVE,
    test_sh: str = TEST_SH,
    tests_py: str = TESTS_PY,
    internet: bool = False,
    env_files: dict[str, str] | None = None,
) -> Path:
    """A small Harbor candidate: sum and maximum of a list of numbers."""
    d = root / name
    (d / "environment").mkdir(parents=True)
    (d / "solution").mkdir()
    (d / "tests").mkdir()
    (d / "task.toml").write_text(TASK_TOML.format(internet="true" if internet else "false"))
    (d / "instruction.md").write_text(
        "Write the sum and then the maximum of the numbers in /app/numbers.txt to /app/answer.txt, "
        "one per line.\n"
    )
    (d / "environment" / "Dockerfile").write_text(dockerfile)
    (d / "environment" / "numbers.txt").write_text(NUMBERS)
    for rel, text in (env_files or {}).items():
        (d / "environment" / rel).write_text(text)
    (d / "solution" / "solve.sh").write_text(solve)
    (d / "tests" / "test.sh").write_text(test_sh)
    (d / "tests" / "test_outputs.py").write_text(tests_py)
    return d


@pytest.fixture
def bwrap_store(store, bwrap_ok):
    return store


def _check(report: ExecReport, reason: str | None) -> None:
    assert report.reason == reason, (report.reason, report.detail, report.log)
    assert report.ok is (reason is None)
    assert reason is None or reason in REASONS
    assert report.log.endswith("\n") and "verdict: " in report.log


@pytest.mark.bwrap
def test_accepted_candidate_and_log_is_deterministic(tmp_path, bwrap_store):
    task = make_candidate(tmp_path)
    # build and warm the layer cache
    validate_candidate(task, ATTACKS, store=bwrap_store, runs=1, builtin_attacks=())
    t0 = time.monotonic()
    first = validate_candidate(task, ATTACKS, store=bwrap_store, builtin_attacks=())
    wall = time.monotonic() - t0
    print(f"warm-cache validation of 8 episodes: {first.seconds:.2f}s (wall {wall:.2f}s)")
    _check(first, None)
    assert len(first.runs) == 8
    by = {(o.solution, o.run): o for o in first.runs}
    assert by[("oracle", 0)].reward == 1.0 and by[("oracle", 1)].reward == 1.0
    assert by[("oracle", 0)].tests == {
        "test_outputs::test_answer_exists": "passed",
        "test_outputs::test_sum": "passed",
        "test_outputs::test_max": "passed",
    }
    assert by[("nop", 0)].reward == 0.0 and by[("nop", 0)].solution_exit is None
    assert by[("attack:sum-only", 1)].reward == 0.0 and by[("attack:sum-only", 1)].solution_exit == 0
    assert by[("attack:first-line-max", 0)].reward == 0.0
    assert first.to_dict()["runs"][0]["solution"] == "oracle"
    assert "[attack:sum-only] rewards 0, 0: ok" in first.log
    assert wall < 15  # the benchmark asks < 5 s on 2 cores; loose here for loaded CI machines

    second = validate_candidate(task, ATTACKS, store=bwrap_store, builtin_attacks=())
    _check(second, None)
    assert second.log == first.log
    assert not any(x in first.log for x in ("/tmp/", "ltenv-attacks", "passed in 0."))


@pytest.mark.bwrap
@pytest.mark.parametrize(
    "dockerfile, needle",
    [
        (DOCKERFILE + "RUN false\n", "RUN false"),
        (DOCKERFILE + "COPY missing.txt /app/missing.txt\n", "missing.txt"),
    ],
    ids=["run-false", "copy-missing"],
)
def test_build_failed(tmp_path, bwrap_store, dockerfile, needle):
    report = validate_candidate(make_candidate(tmp_path, dockerfile=dockerfile), ATTACKS, store=bwrap_store)
    _check(report, "build_failed")
    assert report.runs == []
    assert needle in report.log or needle in report.detail
    assert "--mount=type=secret" not in report.log  # the steps as the task wrote them, not as they were lent


def test_malformed_folder_is_build_failed(tmp_path):
    task = make_candidate(tmp_path)
    (task / "tests" / "test.sh").unlink()
    report = validate_candidate(task, ATTACKS)
    _check(report, "build_failed")
    assert "tests/test.sh" in report.detail


@pytest.mark.bwrap
def test_leak_of_solution_copy_and_tests_dir(tmp_path, bwrap_store):
    dockerfile = DOCKERFILE + "COPY helper.sh /usr/local/bin/helper.sh\nRUN mkdir -p /tests\n"
    task = make_candidate(tmp_path, dockerfile=dockerfile, env_files={"helper.sh": SOLVE})
    report = validate_candidate(task, ATTACKS, store=bwrap_store, runs=1, builtin_attacks=())
    _check(report, "leak")
    assert "/usr/local/bin/helper.sh in the image is identical to solution/solve.sh" in report.detail
    assert "/tests exists in the image" in report.detail
    assert "the layers above ltenv/base:bookworm" not in report.log  # the leak section lists the hits


@pytest.mark.bwrap
@pytest.mark.parametrize("variant", ["curl", "pip", "allow-internet", "runtime"])
def test_needs_network(tmp_path, bwrap_store, variant):
    test_sh, tests_py, internet = TEST_SH, TESTS_PY, False
    if variant == "curl":
        test_sh = TEST_SH.replace("cd /app\n", "cd /app\ncurl -fsSL https://example.com/setup.sh | bash\n")
    elif variant == "pip":
        test_sh = TEST_SH.replace("cd /app\n", "cd /app\npip install --timeout 1 --retries 0 requests\n")
    elif variant == "allow-internet":
        internet = True
    else:  # nothing in test.sh gives it away: the tests themselves reach out
        tests_py = TESTS_PY + (
            "\n\ndef test_remote_reference():\n"
            "    import urllib.request\n"
            "    urllib.request.urlopen('http://reference.example.com/answer', timeout=5)\n"
        )
    task = make_candidate(tmp_path, test_sh=test_sh, tests_py=tests_py, internet=internet)
    report = validate_candidate(task, ATTACKS, store=bwrap_store, runs=1, builtin_attacks=())
    _check(report, "needs_network")
    if variant == "allow-internet":
        assert "task.toml [environment] allow_internet" in report.detail
        assert report.runs and all(o.reward == 0 for o in report.runs if o.solution != "oracle")
        assert any(o.reward == 1 for o in report.runs if o.solution == "oracle")  # ran offline anyway
    elif variant == "runtime":
        assert "shows a network failure" in report.detail
    else:
        assert "tests/test.sh downloads" in report.detail


@pytest.mark.bwrap
def test_flaky(tmp_path, bwrap_store):
    report = validate_candidate(
        make_candidate(tmp_path, tests_py=FLAKY_TESTS_PY), {}, store=bwrap_store, builtin_attacks=()
    )
    _check(report, "flaky")
    assert "the oracle" in report.detail and "test_coin[" in report.detail
    assert "[flaky] FAILED" in report.log


@pytest.mark.bwrap
def test_oracle_fails(tmp_path, bwrap_store):
    solve = SOLVE.replace("print m", "print m + 1")
    report = validate_candidate(
        make_candidate(tmp_path, solve=solve), ATTACKS, store=bwrap_store, builtin_attacks=()
    )
    _check(report, "oracle_fails")
    assert "solution/solve.sh exited 0" in report.detail and "test_max" in report.detail
    assert "verifier output (tail):" in report.log


@pytest.mark.bwrap
def test_nop_passes(tmp_path, bwrap_store):
    dockerfile = DOCKERFILE + "RUN printf '125\\n42\\n' > /app/answer.txt\n"
    report = validate_candidate(
        make_candidate(tmp_path, dockerfile=dockerfile), {}, store=bwrap_store, builtin_attacks=()
    )
    _check(report, "nop_passes")
    assert "a do-nothing agent scored 1 on both runs" in report.detail
    assert "tests/test_outputs.py accept the initial state" in report.detail


@pytest.mark.bwrap
def test_attack_passes(tmp_path, bwrap_store):
    attacks = {**ATTACKS, "hardcode": "printf '125\\n42\\n' > /app/answer.txt\n"}
    report = validate_candidate(make_candidate(tmp_path), attacks, store=bwrap_store)
    _check(report, "attack_passes")
    assert report.detail.startswith(
        "attack 'hardcode' scored 1 on both runs: tests/test_outputs.py accepts a wrong solution"
    )
    assert "sum-only" not in report.detail
    # a rejected candidate does not pay for the built-in reward hacks
    assert "[built-in attacks] not run: the candidate already fails (attack_passes)" in report.log
    assert not any(o.solution.startswith(BUILTIN_PREFIX) for o in report.runs)


@pytest.mark.bwrap
def test_hung_and_flooding_attacks_do_not_hang(tmp_path, bwrap_store):
    attacks = {"hang": "sleep 1000\n", "flood": "yes 'all work and no play' | head -c 50000000\nsleep 1000\n"}
    t0 = time.monotonic()
    report = validate_candidate(
        make_candidate(tmp_path), attacks, store=bwrap_store, solution_timeout=2, builtin_attacks=()
    )
    assert time.monotonic() - t0 < 30
    _check(report, None)
    hung = [o for o in report.runs if o.solution == "attack:hang"]
    assert len(hung) == 2 and all(o.solution_timed_out and o.reward == 0 for o in hung)
    assert all(o.solution_exit == 124 for o in hung)
    assert "solution timed out" in report.log
    assert all(len(o.solution_output) < 2000 for o in report.runs)


@pytest.mark.bwrap
def test_sandbox_error(tmp_path, bwrap_store):
    report = validate_candidate(
        make_candidate(tmp_path),
        {"kill-everything": "kill -9 -1\n"},
        store=bwrap_store,
        runs=1,
        builtin_attacks=(),
    )
    _check(report, "sandbox_error")
    assert "attack 'kill-everything' run 0" in report.detail
    assert "not judged (sandbox error)" in report.log
    assert [o.sandbox_failed for o in report.runs] == [False, False, True]


@pytest.mark.bwrap
def test_builtin_attacks_on_a_sound_candidate(tmp_path, bwrap_store):
    """Every built-in reward hack runs once by default, and the verifier resists every one on a sound
    candidate, which is then accepted."""
    report = validate_candidate(make_candidate(tmp_path), ATTACKS, store=bwrap_store, runs=1)
    builtin = {
        o.solution[len(BUILTIN_PREFIX) :]: o for o in report.runs if o.solution.startswith(BUILTIN_PREFIX)
    }
    assert sorted(builtin) == sorted(attack_names())
    assert all(o.run == 0 and o.solution_exit is None and not o.sandbox_failed for o in builtin.values())
    hacked = sorted(n for n, o in builtin.items() if o.reward > 0)
    assert hacked == [], {n: builtin[n].verifier_output[-500:] for n in hacked}
    _check(report, None)
    assert f"{len(builtin)} built-in reward hack(s) resisted" in report.detail
    assert f"[built-in attacks] ok ({len(builtin)} reward hacks scored 0)" in report.log


@pytest.mark.bwrap
def test_a_hackable_verifier_falls_to_a_builtin_attack(tmp_path, bwrap_store):
    task = make_candidate(tmp_path, test_sh=HACKABLE_TEST_SH)
    hacks = [get_attack("shadow-pytest-module"), get_attack("planted-reward")]
    report = validate_candidate(task, ATTACKS, store=bwrap_store, runs=1, builtin_attacks=hacks)
    _check(report, "reward_hack")  # the oracle passes, nop and the candidate's own attacks fail
    assert report.detail.startswith(
        "the verifier falls to built-in reward hack 'shadow-pytest-module' (reward 1:"
    )
    assert "planted-reward" not in report.detail  # the verifier's /logs/verifier starts empty: resisted
    assert "[built-in attacks] FAILED: 1 of 2 scored above 0: shadow-pytest-module" in report.log
    assert "[attack:sum-only] rewards 0: ok" in report.log
    by = {o.solution: o for o in report.runs}
    assert by["builtin:shadow-pytest-module"].reward == 1.0
    assert by["builtin:planted-reward"].reward == 0.0


@pytest.mark.bwrap
def test_a_hackable_verifier_is_rejected_and_the_ledger_names_the_attack(
    tmp_path,
    store,
    bwrap_ok,
    openai_server,  # noqa: F811
):
    """The synthesis pipeline with a scripted model (loopback HTTP): its test.sh is hackable, so the
    candidate is rejected at validation, and the ledger's record names the built-in attack."""
    from ltenv.synth.ledger import REJECTION_REASONS, read_ledger
    from ltenv.synth.llm import SynthLLM
    from ltenv.synth.pipeline import SynthConfig, Synthesizer
    from tests.support.synth_world import SynthWorld

    world = SynthWorld()
    world.replies["tests"]["test_sh"] = HACKABLE_TEST_SH
    openai_server.responder = world
    config = SynthConfig(
        out=tmp_path / "run",
        n=1,
        model="scripted-model",
        base_url=openai_server.base_url,
        api_key="test",
        domains=["data_science"],
        workers=1,
        repair_rounds=0,
        runs=1,
        jobs=4,
        solution_timeout=60,
    )
    llm = SynthLLM(config.model, base_url=config.base_url, api_key="test", cache_dir=config.out / "cache")
    try:
        records = Synthesizer(config, llm=llm, store=store).run()
    finally:
        llm.close()
    (rec,) = read_ledger(tmp_path / "run")
    assert [r.id for r in records] == [rec.id]
    assert (rec.verdict, rec.stage, rec.reason) == ("rejected", "validate", "reward_hack"), rec.detail
    assert "reward_hack" in REJECTION_REASONS
    assert "built-in reward hack" in rec.detail and "'shadow-pytest-module'" in rec.detail
    assert rec.history[0]["reason"] == "reward_hack" and "shadow-pytest-module" in rec.history[0]["detail"]


def test_normalize_output():
    text = (
        "==== 3 passed, 1 failed in 0.12s ====\nreal 0m1.250s\nwrote /tmp/pytest-of-root/x/y.txt\n"
        "container 4f2a9c81d03e77aa ready at 0x7f3a2b\n"
        "/solution/solve.sh: line 3: 12345 Killed   sleep 1000\n2026-01-02 03:04:05 took 15ms"
    )
    out = normalize_output(text)
    assert "0.12s" not in out and "0m1.250s" not in out and "/tmp/pytest-of-root" not in out
    assert "4f2a9c81d03e77aa" not in out and "12345" not in out and "15ms" not in out
    assert "3 passed, 1 failed in <dur>" in out
    assert normalize_output("x" * 5000).startswith("[...]\n") and len(normalize_output("x" * 5000)) < 1600


@pytest.mark.docker
def test_accepted_candidate_on_docker(tmp_path, store, docker_ok):
    report = validate_candidate(
        make_candidate(tmp_path), ATTACKS, store=store, backend="docker", builtin_attacks=()
    )
    _check(report, None)
    assert len(report.runs) == 8
    assert "content compared over the whole image filesystem (docker)" in report.log


@pytest.mark.docker
def test_leak_on_docker(tmp_path, store, docker_ok):
    dockerfile = DOCKERFILE + "COPY helper.sh /opt/helper.sh\n"
    task = make_candidate(tmp_path, dockerfile=dockerfile, env_files={"helper.sh": SOLVE})
    report = validate_candidate(task, {}, store=store, backend="docker", runs=1, builtin_attacks=())
    _check(report, "leak")
    assert "/opt/helper.sh in the image is identical to solution/solve.sh" in report.detail
