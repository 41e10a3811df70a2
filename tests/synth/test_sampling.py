"""Proposal seeds (ltenv.synth.sampling): reproducible sampling, grid coverage, and deficit targeting."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ltenv.errors import LtenvError
from ltenv.evaluation import evaluate
from ltenv.synth.domains import DomainSpec, load_domain_specs
from ltenv.synth.sampling import ResultsFormatError, Seed, SeedSampler, Targeting, deficit_weights
from ltenv.tasks import load_suite
from ltenv.trajectory import Trajectory

REGISTRY = Path(__file__).parent.parent.parent / "envs_registry"


@pytest.fixture(scope="module")
def specs() -> dict[str, DomainSpec]:
    return load_domain_specs(REGISTRY / "domains")


def spec(name: str, skills: int, subtopics: int, mix: dict[str, float] | None = None) -> DomainSpec:
    return DomainSpec(
        name=name,
        description=f"tasks of {name}",
        skills=[f"{name} skill {i}" for i in range(skills)],
        subtopics=[f"{name} subtopic {i}" for i in range(subtopics)],
        tools=["bash"],
        difficulty_mix=mix or {"easy": 1, "medium": 1, "hard": 1},
    )


# --- seeds ---------------------------------------------------------------------------------------------


def test_seed_id_and_dict():
    s = Seed(42, "coding", "a skill", "a subtopic", "hard", "grid")
    assert s.id == "00042-coding"
    assert s.to_dict() == {
        "id": "00042-coding",
        "index": 42,
        "domain": "coding",
        "skill": "a skill",
        "subtopic": "a subtopic",
        "difficulty": "hard",
        "mode": "grid",
    }
    assert json.loads(json.dumps(s.to_dict()))["id"] == s.id


def test_sequence_is_deterministic_and_prefix_stable(specs):
    short = SeedSampler(specs, seed=5, free_fraction=0.2).sample(5)
    long = SeedSampler(specs, seed=5, free_fraction=0.2).sample(20)
    assert short == long[:5]
    assert [s.index for s in long] == list(range(20))
    assert SeedSampler(specs, seed=5, free_fraction=0.2).sample(10, start=10) == long[10:]
    again = SeedSampler(list(specs.values()), seed=5, free_fraction=0.2)
    assert again.sample(3, start=17) == long[17:]
    assert again.sample(20) == long
    assert SeedSampler(specs, seed=6, free_fraction=0.2).sample(20) != long
    assert SeedSampler(specs, seed=5).sample(0) == []


def test_seeds_come_from_the_specs(specs):
    for s in SeedSampler(specs, seed=1, free_fraction=0.3).sample(300):
        sp = specs[s.domain]
        assert s.difficulty in ("easy", "medium", "hard")
        if s.mode == "grid":
            assert s.skill in sp.skills and s.subtopic in sp.subtopics
        else:
            assert s.mode == "free" and s.skill is None and s.subtopic is None


def test_domains_are_uniform_by_default(specs):
    counts = Counter(s.domain for s in SeedSampler(specs, seed=2).sample(3000))
    assert set(counts) == set(specs)
    for domain, c in counts.items():
        assert abs(c / 3000 - 0.1) < 0.025, (domain, c)


def test_domain_weights_are_respected():
    two = [spec("coding", 3, 3), spec("games", 3, 3)]
    seeds = SeedSampler(two, seed=0, domain_weights={"coding": 9, "games": 1}).sample(2000)
    share = sum(s.domain == "coding" for s in seeds) / 2000
    assert abs(share - 0.9) < 0.03
    only = SeedSampler(two, seed=0, domain_weights={"games": 2.5}).sample(200)
    assert {s.domain for s in only} == {"games"}  # unlisted domains weigh 0


def test_grid_coverage_spreads_pairs():
    a, b = spec("coding", 3, 4), spec("games", 5, 2)
    seeds = SeedSampler([a, b], seed=3).sample(400)
    for sp in (a, b):
        pairs = [(s.skill, s.subtopic) for s in seeds if s.domain == sp.name]
        size = len(sp.skills) * len(sp.subtopics)
        assert len(pairs) > 2 * size
        assert len(set(pairs[:size])) == size  # every pair once before any repeats
        full = len(pairs) // size * size
        assert set(Counter(pairs[:full]).values()) == {full // size}  # then in whole rounds
        assert pairs[:size] != pairs[size : 2 * size]  # in a fresh order each round


def test_grid_coverage_with_bundled_specs(specs):
    seeds = SeedSampler(specs, seed=11).sample(1000)
    for name, sp in specs.items():
        pairs = [(s.skill, s.subtopic) for s in seeds if s.domain == name]
        n = min(len(sp.skills) * len(sp.subtopics), len(pairs))
        assert len(set(pairs[:n])) == n


def test_skill_weights_are_respected_while_spreading():
    a = spec("coding", 3, 2)
    weights = {("coding", "coding skill 0"): 3.0, ("coding", "coding skill 1"): 1.0}
    seeds = SeedSampler([a], seed=4, skill_weights=weights).sample(400)
    skills = Counter(s.skill for s in seeds)
    assert skills["coding skill 2"] == 0  # unlisted skill of a listed domain weighs 0
    assert abs(skills["coding skill 0"] - 300) <= 2 and abs(skills["coding skill 1"] - 100) <= 2
    per_pair = Counter((s.skill, s.subtopic) for s in seeds)
    assert (
        abs(
            per_pair[("coding skill 0", "coding subtopic 0")]
            - per_pair[("coding skill 0", "coding subtopic 1")]
        )
        <= 1
    )
    # Spread over time: the heavy skill takes about three in every four seeds, in every stretch.
    for start in range(0, 400, 40):
        chunk = Counter(s.skill for s in seeds[start : start + 40])
        assert 27 <= chunk["coding skill 0"] <= 33


def test_unmentioned_domain_keeps_uniform_skills():
    a, b = spec("coding", 2, 2), spec("games", 2, 2)
    seeds = SeedSampler([a, b], seed=0, skill_weights={("coding", "coding skill 0"): 1.0}).sample(400)
    assert {s.skill for s in seeds if s.domain == "coding"} == {"coding skill 0"}
    assert {s.skill for s in seeds if s.domain == "games"} == {"games skill 0", "games skill 1"}


def test_free_fraction():
    two = [spec("coding", 2, 2), spec("games", 2, 2)]
    seeds = SeedSampler(two, seed=9, free_fraction=0.25).sample(2000)
    free = [s for s in seeds if s.mode == "free"]
    assert abs(len(free) / 2000 - 0.25) < 0.03
    assert all(s.skill is None and s.subtopic is None for s in free)
    assert all(s.mode == "grid" for s in SeedSampler(two, seed=9).sample(300))
    assert all(s.mode == "free" for s in SeedSampler(two, seed=9, free_fraction=1.0).sample(300))
    # A domain whose skills all weigh 0 is fine when every seed is free.
    zero = {("coding", "coding skill 0"): 0.0, ("coding", "coding skill 1"): 0.0}
    assert SeedSampler(two, seed=9, free_fraction=1.0, skill_weights=zero).sample(5)


def test_difficulty_mix():
    sp = spec("coding", 2, 2, mix={"easy": 0.2, "medium": 0.8})
    seeds = SeedSampler([sp], seed=12).sample(2000)
    levels = Counter(s.difficulty for s in seeds)
    assert levels["hard"] == 0
    assert abs(levels["easy"] / 2000 - 0.2) < 0.03


def test_bundled_difficulty_mix(specs):
    seeds = SeedSampler(specs, seed=13, domain_weights={"coding": 1}).sample(3000)
    levels = Counter(s.difficulty for s in seeds)
    for level, w in specs["coding"].difficulty_weights.items():
        assert abs(levels[level] / 3000 - w) < 0.03


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domain_weights": {"cooking": 1.0}}, "unknown domain 'cooking'"),
        ({"domain_weights": {"coding": -1.0}}, "domain_weights['coding']: weight must be >= 0"),
        ({"domain_weights": {"coding": 0, "games": 0.0}}, "every weight is 0"),
        ({"domain_weights": {"coding": float("nan")}}, "finite"),
        ({"domain_weights": {"coding": True}}, "must be a number"),
        ({"skill_weights": {("cooking", "x"): 1.0}}, "unknown domain 'cooking'"),
        ({"skill_weights": {("coding", "juggling"): 1.0}}, "no skill 'juggling'"),
        ({"skill_weights": {("coding", "coding skill 0"): -2}}, "weight must be >= 0"),
        ({"skill_weights": {"coding": 1.0}}, "(domain, skill) tuples"),
        ({"skill_weights": {("coding", "coding skill 0"): 0.0}}, "every skill of domain 'coding' weighs 0"),
        ({"free_fraction": 1.5}, "free_fraction"),
        ({"free_fraction": -0.1}, "free_fraction"),
    ],
)
def test_invalid_settings(kwargs, message):
    two = [spec("coding", 2, 2), spec("games", 2, 2)]
    with pytest.raises(ValueError, match=re.escape(message)):
        SeedSampler(two, **kwargs)


def test_invalid_specs_and_ranges():
    with pytest.raises(ValueError, match="no domain specs"):
        SeedSampler([])
    with pytest.raises(ValueError, match="given twice"):
        SeedSampler([spec("coding", 1, 1), spec("coding", 2, 2)])
    with pytest.raises(ValueError, match="n and start"):
        SeedSampler([spec("coding", 1, 1)]).sample(-1)


# --- deficit targeting ---------------------------------------------------------------------------------


def report_for(outcomes: dict[str, tuple[int, int]], **extra) -> dict:
    """An eval report (``EvalReport.to_dict()``) of bundled tasks: task name -> (attempts, passed)."""
    tasks = {t.name: t for t in load_suite(REGISTRY).tasks}
    trajs = []
    for name, (n, c) in outcomes.items():
        t = tasks[name]
        for attempt in range(n):
            ok = attempt < c
            trajs.append(
                Trajectory(
                    run="r",
                    task=name,
                    task_path=str(t.path),
                    domain=t.domain,
                    difficulty=t.difficulty,
                    attempt=attempt,
                    passed=ok,
                    reward=float(ok),
                    termination="submitted",
                )
            )
    report = evaluate(trajs, write=False).to_dict()
    report.update(extra)
    return report


OUTCOMES = {
    "maze-shortest-paths": (4, 0),
    "pgn-tournament-standings": (4, 4),
    "savegame-checksum-repair": (4, 4),
    "semver-constraint-resolver": (4, 4),
    "unified-diff-patch-apply": (4, 3),
    "git-recover-lost-work": (4, 3),
}


def test_deficit_weights_target_the_failing_domain_and_skill(specs, tmp_path):
    report = report_for(OUTCOMES)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(report))
    targeting = deficit_weights(path, specs, registry=REGISTRY)
    assert isinstance(targeting, Targeting)

    dw = targeting.domain_weights
    assert abs(sum(dw.values()) - 1) < 1e-9
    assert max(dw, key=dw.get) == "games"
    assert dw["games"] > dw["version_control"] > dw["coding"]
    assert targeting.failure_rates["games"] == pytest.approx(1 / 3)
    assert targeting.failure_rates["coding"] == pytest.approx(0.125)
    assert targeting.failure_rates["ai_ml"] is None
    assert targeting.n_tasks["games"] == 3 and targeting.n_tasks["ai_ml"] == 0
    # floor + failure: games 0.05 + 1/3, coding 0.05 + 0.125; absent domains get the mean of those present.
    assert dw["games"] / dw["coding"] == pytest.approx((0.05 + 1 / 3) / (0.05 + 0.125))
    present = [0.05 + 1 / 3, 0.05 + 0.125, 0.05 + 0.25]
    assert dw["ai_ml"] / dw["coding"] == pytest.approx(sum(present) / 3 / (0.05 + 0.125))
    assert any("not in the report get the mean weight" in n and "ai_ml" in n for n in targeting.notes)

    top_games = targeting.top_skills("games", 1)[0][0]
    assert "maze" in top_games.casefold()
    top_vc = targeting.top_skills("version_control", 1)[0][0]
    assert "recover" in top_vc.casefold()
    for d, sp in specs.items():
        share = sum(w for (dd, _), w in targeting.skill_weights.items() if dd == d)
        assert share == pytest.approx(1.0)
        assert {s for (dd, s) in targeting.skill_weights if dd == d} == set(sp.skills)
        assert all(w > 0 for (dd, _), w in targeting.skill_weights.items() if dd == d)
    # Domains where everything passed keep uniform skills.
    ai_ml = {w for (d, _), w in targeting.skill_weights.items() if d == "ai_ml"}
    assert len(ai_ml) == 1

    # The weights drive the sampler.
    sampler = SeedSampler(specs, seed=0, **targeting.sampler_kwargs())
    seeds = sampler.sample(2000)
    assert Counter(s.domain for s in seeds).most_common(1)[0][0] == "games"
    games = Counter(s.skill for s in seeds if s.domain == "games")
    assert games.most_common(1)[0][0] == top_games


def test_deficit_weights_without_task_folders_use_names(specs):
    report = report_for(OUTCOMES)
    report["run_info"] = {}
    targeting = deficit_weights(report, specs)
    assert "maze" in targeting.top_skills("games", 1)[0][0].casefold()
    assert any("by name only" in n for n in targeting.notes)


def test_deficit_weights_find_folders_through_run_info(specs):
    # A task with an uninformative name, whose folder is known only from run.json's task list.
    report = {
        "tasks": [{"task": "task-0001", "domain": "games", "n": 2, "pass_at_1": 0.0}],
        "run_info": {
            "tasks": [{"name": "task-0001", "path": str(REGISTRY / "games" / "pgn-tournament-standings")}]
        },
    }
    targeting = deficit_weights(report, specs)
    assert "pgn" in targeting.top_skills("games", 1)[0][0].casefold()
    assert not any("by name only" in n for n in targeting.notes)
    blind = deficit_weights({"tasks": report["tasks"]}, specs)
    assert "by name only" in " ".join(blind.notes)


def test_deficit_weights_edge_cases(specs):
    # Unknown domains are ignored (noted); no usable task: uniform domains.
    report = {"tasks": [{"task": "x", "domain": "cooking", "n": 1, "pass_at_1": 0.0}]}
    targeting = deficit_weights(report, specs)
    assert list(targeting.domain_weights.values()) == pytest.approx([0.1] * 10)
    assert any("cooking" in n for n in targeting.notes)
    # Everything passed and floor 0: uniform, said so.
    passed = {"tasks": [{"task": "maze-shortest-paths", "domain": "games", "n": 1, "pass_at_1": 1.0}]}
    t0 = deficit_weights(passed, specs, floor=0.0)
    assert list(t0.domain_weights.values()) == pytest.approx([0.1] * 10)
    assert any("every evaluated task passed" in n for n in t0.notes)
    with pytest.raises(ValueError, match="floor"):
        deficit_weights(passed, specs, floor=-1)


def test_targeting_table_and_dict(specs):
    from rich.console import Console

    targeting = deficit_weights(report_for(OUTCOMES), specs, registry=REGISTRY)
    console = Console(width=200, record=True)
    console.print(targeting.table())
    text = console.export_text()
    lines = [ln for ln in text.splitlines() if any(d in ln for d in specs)]
    assert lines[0].split("│")[1].strip() == "games"  # sorted by weight
    assert "100.0%" not in lines[0] and "33.3%" in lines[0]
    assert "maze" in text.casefold()
    d = targeting.to_dict()
    assert json.loads(json.dumps(d))["domain_weights"]["games"] == targeting.domain_weights["games"]


# --- malformed reports ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{}", "tasks"),
        ('{"tasks": {}}', "tasks"),
        ('{"tasks": [1]}', "tasks[0]"),
        ('{"tasks": [{"domain": "games", "n": 1, "pass_at_1": 0.5}]}', "tasks[0].task"),
        ('{"tasks": [{"task": "t", "n": 1, "pass_at_1": 0.5}]}', "tasks[0].domain"),
        ('{"tasks": [{"task": "t", "domain": "games", "pass_at_1": 0.5}]}', "tasks[0].n"),
        (
            '{"tasks": [{"task": "t", "domain": "games", "n": 1, "pass_at_1": 1}, '
            '{"task": "u", "domain": "games", "n": 1}]}',
            "tasks[1].pass_at_1",
        ),
        ('{"tasks": [{"task": "t", "domain": "games", "n": 1, "pass_at_1": 1.5}]}', "tasks[0].pass_at_1"),
        ('{"tasks": [{"task": "t", "domain": "games", "n": 1, "pass_at_1": "high"}]}', "tasks[0].pass_at_1"),
        ('{"tasks": [{"task": "t", "domain": 3, "n": 1, "pass_at_1": 1}]}', "tasks[0].domain"),
        ("[]", None),
        ('{"tasks": [', "line 1"),
    ],
)
def test_malformed_results_name_file_and_field(specs, tmp_path, content, field):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsFormatError) as info:
        deficit_weights(path, specs)
    assert isinstance(info.value, LtenvError)
    assert str(path) in str(info.value)
    assert info.value.file == str(path)
    if field is not None:
        assert field in str(info.value)
        assert info.value.field is not None and info.value.field.startswith(field)


def test_missing_results_file(specs, tmp_path):
    with pytest.raises(ResultsFormatError, match="no such file"):
        deficit_weights(tmp_path / "nope.json", specs)
    # A run folder: its results.json.
    (tmp_path / "run").mkdir()
    with pytest.raises(ResultsFormatError, match=r"run/results\.json"):
        deficit_weights(tmp_path / "run", specs)
    (tmp_path / "run" / "results.json").write_text(json.dumps(report_for(OUTCOMES)))
    assert deficit_weights(tmp_path / "run", specs).domain_weights["games"] > 0.1
