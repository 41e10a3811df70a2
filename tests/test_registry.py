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


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.bwrap
@pytest.mark.timeout(3000)  # on a fresh machine this builds all 30 task images first
def test_every_bundled_task_is_valid(store, bwrap_ok):
    """`ltenv validate` on the whole suite: oracle 1.0 and nop 0.0, twice each."""
    from ltenv.validate import validate_suite

    suite = load_suite(REGISTRY)
    results = validate_suite(suite.tasks, jobs=int(os.environ.get("LTENV_JOBS", "2")), store=store)
    bad = [f"{r.name}: {r.error}" for r in results if not r.valid]
    assert not bad, "\n".join(bad)
