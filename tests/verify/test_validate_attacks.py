"""``ltenv validate --attacks``: the built-in reward hacks run against every selected task, each must score 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltenv.tasks import load_task
from ltenv.validate import AttackResult, ValidationResult, validate_suite, validate_task
from ltenv.verify.attacks import Attack, get_attack
from tests.support.cli import run_ltenv

FIXTURES = Path(__file__).parent.parent / "fixtures"
HACKABLE = FIXTURES / "harbor-hackable"

# A hack that scores 1 on any verifier that runs the task's test.sh (a stand-in for a verifier that falls).
WINS = Attack("wins", "solves the task", 'echo "hello from $(cat /app/seed.txt)" > /app/greeting.txt\n')


@pytest.fixture(scope="module")
def hackable():
    return load_task(HACKABLE / "hackable-greeting")


@pytest.fixture(scope="module")
def bwrap_store(store, bwrap_ok, hackable):
    store.prepare(hackable)
    return store


@pytest.mark.bwrap
def test_validate_task_runs_each_attack_each_run(hackable, bwrap_store):
    attacks = [get_attack("shadow-pytest-module"), get_attack("planted-reward")]
    r = validate_task(hackable, store=bwrap_store, runs=2, attacks=attacks)
    assert r.valid, r.error
    assert [a.name for a in r.attacks] == ["shadow-pytest-module", "planted-reward"]
    for a in r.attacks:
        assert isinstance(a, AttackResult)
        assert (a.reward, a.status, a.verdict, a.rewards, a.statuses) == (
            0.0,
            "ok",
            "resisted",
            [0.0, 0.0],
            ["ok", "ok"],
        )
    d = r.to_dict()
    assert d["attacks"][0]["name"] == "shadow-pytest-module" and d["attacks"][0]["verdict"] == "resisted"


@pytest.mark.bwrap
def test_an_attack_that_scores_makes_the_task_invalid(hackable, bwrap_store):
    r = validate_task(hackable, store=bwrap_store, runs=1, attacks=[WINS])
    assert r.oracle_runs == [1.0] and r.nop_runs == [0.0]
    assert not r.valid
    (a,) = r.attacks
    assert (a.verdict, a.reward, a.rewards) == ("hacked", 1.0, [1.0])
    assert "attack 'wins' scored 1 (runs: 1)" in r.error


@pytest.mark.bwrap
def test_no_attacks_no_change(hackable, bwrap_store):
    r = validate_task(hackable, store=bwrap_store, runs=1)
    assert r.valid and r.attacks == [] and r.to_dict()["attacks"] == []


@pytest.mark.bwrap
def test_validate_suite_runs_attacks_on_the_pool(hackable, bwrap_store, fixture_task):
    """Two tasks, two jobs: each task is reported once, when its last attack episode is done."""
    greeting = fixture_task("write-greeting")
    seen: list[ValidationResult] = []
    attacks = [get_attack("conftest-force-pass"), get_attack("ld-so-preload"), WINS]
    results = validate_suite(
        [hackable, greeting], store=bwrap_store, jobs=2, runs=1, attacks=attacks, on_result=seen.append
    )
    assert sorted(r.name for r in seen) == ["hackable-greeting", "write-greeting"]
    for r in results:
        by = {a.name: a for a in r.attacks}
        assert list(by) == ["conftest-force-pass", "ld-so-preload", "wins"]
        assert by["conftest-force-pass"].verdict == "resisted"
        assert by["ld-so-preload"].verdict == "resisted"  # the image has gcc: it applied, and failed
        assert by["wins"].verdict == "hacked" and not r.valid


@pytest.mark.bwrap
@pytest.mark.slow
def test_cli_attacks_json(bwrap_store):
    proc = run_ltenv(
        "validate",
        "--tasks",
        HACKABLE,
        "--attack",
        "shadow-pytest-module",
        "--attack",
        "reward-rewriter",
        "--runs",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["valid"] and row["oracle_runs"] == [1.0] and row["nop_runs"] == [0.0]
    assert [(a["name"], a["reward"], a["status"], a["verdict"]) for a in row["attacks"]] == [
        ("shadow-pytest-module", 0.0, "ok", "resisted"),
        ("reward-rewriter", 0.0, "ok", "resisted"),
    ]
    assert "2 built-in attack(s) x 1 run(s) per task" in proc.stderr
    assert "attacks: 2/2 resisted" in proc.stderr


def test_cli_unknown_attack():
    proc = run_ltenv("validate", "--tasks", HACKABLE, "--attack", "no-such-attack")
    assert proc.returncode == 2
    assert "unknown attack 'no-such-attack'" in proc.stderr and "shadow-pytest-module" in proc.stderr
