"""The bundled suite: at least 30 well-formed tasks over the ten domains, every one valid on execution."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ltenv.tasks import DOMAINS, load_suite

REGISTRY = Path(__file__).parent.parent / "envs_registry"


def test_bundled_suite_loads_without_errors():
    suite = load_suite(REGISTRY)
    assert suite.errors == []
    counts = Counter(t.domain for t in suite.tasks)
    assert len(suite.tasks) >= 30
    assert set(counts) == set(DOMAINS)
    assert min(counts.values()) >= 3, counts
    for t in suite.tasks:
        assert t.path.parent.name == t.domain, f"{t.name}: folder domain differs from [metadata] domain"
        assert t.has_solution, t.name
        assert not t.config.environment.allow_internet, t.name
        assert t.difficulty in ("easy", "medium", "hard"), t.name


def test_no_tests_or_solution_copied_into_images():
    for df in REGISTRY.glob("*/*/environment/Dockerfile"):
        text = df.read_text()
        for word in ("tests/", "solution/", "solve.sh", "test_outputs"):
            assert word not in text, f"{df} mentions {word!r}"


@pytest.fixture(scope="module")
def bwrap_results(store, bwrap_ok):
    from ltenv.validate import validate_suite

    suite = load_suite(REGISTRY)
    return validate_suite(suite.tasks, jobs=int(os.environ.get("LTENV_JOBS", "2")), store=store)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.bwrap
@pytest.mark.timeout(3000)  # on a fresh machine this builds all 30 task images first
def test_every_bundled_task_is_valid(bwrap_results):
    """`ltenv validate` on the whole suite: oracle 1.0 and nop 0.0, twice each."""
    bad = [f"{r.name}: {r.error}" for r in bwrap_results if not r.valid]
    assert not bad, "\n".join(bad)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.bwrap
@pytest.mark.timeout(3000)
def test_backends_agree_on_every_bundled_task(bwrap_results, store):
    """`ltenv validate --backend docker --runs 1` gives every task the same oracle and nop rewards as bwrap
    (the stability of repeated runs is bwrap's test above; once per task is enough to compare backends)."""
    from ltenv.validate import validate_suite

    suite = load_suite(REGISTRY)
    docker = validate_suite(
        suite.tasks, backend="docker", jobs=int(os.environ.get("LTENV_JOBS", "2")), runs=1, store=store
    )
    by_name = {r.name: r for r in docker}
    assert set(by_name) == {r.name for r in bwrap_results}
    differ = [
        f"{r.name}: bwrap oracle={r.oracle_runs} nop={r.nop_runs}, docker oracle={d.oracle_runs} nop={d.nop_runs}"
        f" ({d.error})"
        for r in bwrap_results
        if (d := by_name[r.name]).oracle_runs != r.oracle_runs[:1]
        or d.nop_runs != r.nop_runs[:1]
        or not d.valid
    ]
    assert not differ, "\n".join(differ)
