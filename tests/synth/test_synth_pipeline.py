"""The synthesis pipeline end to end: scripted model replies over real HTTP (127.0.0.1), real image builds,
real bwrap sandboxes. Each scenario breaks one artifact of a task that otherwise validates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from ltenv.synth.ledger import read_ledger, report
from ltenv.synth.llm import SynthLLM
from ltenv.synth.pipeline import SynthConfig, SynthConfigMismatch, Synthesizer
from tests.support.cli import run_ltenv
from tests.support.openai_server import ErrorReply, openai_server  # noqa: F401
from tests.support.synth_world import GOOD_SOLVE, GOOD_TESTS, SynthWorld, is_retry, stage_of

pytestmark = [pytest.mark.bwrap, pytest.mark.slow]

DOMAIN = "data_science"


@pytest.fixture
def synth(openai_server, store, bwrap_ok, tmp_path):  # noqa: F811
    """``synth(world, **config)``: one run against the scripted server; ``.records``, ``.synth`` and the
    ``.requests`` the server received during the run."""

    def run(world: SynthWorld, *, out: Path | None = None, **overrides) -> SimpleNamespace:
        openai_server.responder = world
        start = len(openai_server.requests)
        cfg = dict(
            out=out or tmp_path / "run",
            n=1,
            model="scripted-model",
            base_url=openai_server.base_url,
            api_key="test",
            domains=[DOMAIN],
            workers=1,
            repair_rounds=0,
            runs=2,
            jobs=4,
            solution_timeout=60,
        )
        cfg.update(overrides)
        config = SynthConfig(**cfg)
        llm = SynthLLM(
            config.model,
            base_url=config.base_url,
            api_key="test",
            cache_dir=config.out / "cache",
            backoff=0.01,
            max_retries=1,
        )
        s = Synthesizer(config, llm=llm, store=store)
        try:
            records = s.run()
        finally:
            llm.close()
        return SimpleNamespace(records=records, synth=s, requests=openai_server.requests[start:])

    return run


def _one(records):
    assert len(records) == 1, records
    return records[0]


def test_accepted_task_validates_and_is_gym_makeable(synth, tmp_path, store):
    r = synth(SynthWorld())
    rec = _one(r.records)
    assert rec.verdict == "accepted", rec.detail
    assert rec.reason is None and rec.name == "word-frequency-table"
    assert rec.stages == [
        "propose", "judge", "dedupe", "instruction", "environment", "solution", "tests", "attack",
        "task_toml", "validate", "accept",
    ]  # fmt: skip
    assert rec.requests == 8 and rec.cached == 0  # one call per stage
    assert rec.paid_tokens["prompt"] > 0 and rec.paid_tokens["completion"] > 0
    task_dir = tmp_path / "run" / rec.path
    assert task_dir == tmp_path / "run" / "tasks" / DOMAIN / "word-frequency-table"
    assert (task_dir / "solution" / "solve.sh").read_text() == GOOD_SOLVE
    assert (task_dir / "tests" / "test_outputs.py").read_text() == GOOD_TESTS
    toml = (task_dir / "task.toml").read_text()
    assert 'domain = "data_science"' in toml and "allow_internet = false" in toml

    # the written folder is an ordinary task: ltenv validate and gym.make take it unchanged
    from ltenv.tasks import load_task
    from ltenv.validate import validate_task

    task = load_task(task_dir)
    result = validate_task(task, backend="bwrap", store=store)
    assert result.valid, result.error

    import gymnasium as gym

    import ltenv

    ids = ltenv.register_tasks(tmp_path / "run" / "tasks", namespace="SynthTest")
    assert "SynthTest/word-frequency-table" in ids
    env = gym.make("SynthTest/word-frequency-table", image_store=store)
    try:
        obs, info = env.reset()
        assert obs.startswith("# Word frequency table") and info["domain"] == DOMAIN
        env.step("bash /dev/stdin <<'EOF'\n" + GOOD_SOLVE + "EOF")
        _, reward, terminated, _, info = env.step(ltenv.SUBMIT)
        assert (reward, terminated) == (1.0, True), info
    finally:
        env.close()

    # each stage saw the earlier stages' outputs
    by_stage = {stage_of(b): json.dumps(b["messages"]) for b in r.requests}
    assert "Word frequency table" in by_stage["instruction"]  # the chosen idea
    assert "counts.tsv" in by_stage["environment"]  # the instruction
    assert "words.txt" in by_stage["solution"]  # the environment's files
    assert "uniq -c" in by_stage["attack"]  # the solution
    assert "test_counts_exact" in by_stage["attack"]  # the tests


@pytest.mark.docker
def test_accepted_task_validates_on_docker(synth, tmp_path, store, docker_ok):
    rec = _one(synth(SynthWorld()).records)
    assert rec.verdict == "accepted", rec.detail
    from ltenv.tasks import load_task
    from ltenv.validate import validate_task

    result = validate_task(load_task(tmp_path / "run" / rec.path), backend="docker", store=store)
    assert result.valid, result.error


# ------------------------------------------------------------------------------------- rejections
def _rejected(run, reason: str, stage: str = "validate"):
    rec = _one(run.records)
    assert (rec.verdict, rec.reason, rec.stage) == ("rejected", reason, stage), (rec.reason, rec.detail)
    assert not (run.synth.out / "tasks").exists() or not any((run.synth.out / "tasks").rglob("task.toml"))
    return rec


def test_build_failure_is_rejected(synth):
    world = SynthWorld()
    world.replies["environment"]["dockerfile"] = (
        "FROM ltenv/base:bookworm\nCOPY data/ /app/data/\nRUN test -f /app/data/prices.csv\nWORKDIR /app\n"
    )
    rec = _rejected(synth(world), "build_failed")
    assert rec.history == [
        {"round": 0, "reason": "build_failed", "detail": rec.detail, "seconds": rec.history[0]["seconds"]}
    ]


def test_failing_oracle_is_rejected(synth):
    world = SynthWorld()
    world.replies["solution"]["solve_sh"] = GOOD_SOLVE.replace("tr 'A-Z' 'a-z'", "cat")  # case-sensitive
    rec = _rejected(synth(world), "oracle_fails")
    assert "test_counts_exact" in rec.detail or "test_counts_exact" in json.dumps(rec.history)


def test_tests_that_a_do_nothing_agent_passes_are_rejected(synth):
    world = SynthWorld()
    world.replies["tests"]["test_outputs_py"] = "def test_anything():\n    assert True\n"
    _rejected(synth(world), "nop_passes")


def test_tests_that_an_attack_passes_are_rejected(synth):
    world = SynthWorld()
    weak = "from pathlib import Path\n\n\ndef test_output_exists():\n    assert Path('/app/out/counts.tsv').is_file()\n"
    world.replies["tests"]["test_outputs_py"] = weak
    rec = _rejected(synth(world), "attack_passes")
    assert "empty-output" in rec.detail


def test_flaky_tests_are_rejected(synth):
    world = SynthWorld()
    coins = "\n\nimport random\nimport pytest\n\n\n@pytest.mark.parametrize('i', range(24))\ndef test_coin(i):\n    assert random.random() < 0.5\n"
    world.replies["tests"]["test_outputs_py"] = GOOD_TESTS + coins
    _rejected(synth(world), "flaky")


def test_a_solution_that_needs_the_network_is_rejected(synth):
    world = SynthWorld()
    world.replies["solution"]["solve_sh"] = (
        "#!/bin/bash\nset -euo pipefail\ncurl -fsS https://example.com/words.txt -o /tmp/words.txt\n"
        + GOOD_SOLVE
    )
    _rejected(synth(world), "needs_network")


def test_a_build_that_downloads_is_rejected_before_building(synth):
    world = SynthWorld()
    world.replies["environment"]["dockerfile"] = (
        "FROM ltenv/base:bookworm\nRUN pip install requests\nCOPY data/ /app/data/\nWORKDIR /app\n"
    )
    rec = _rejected(synth(world), "needs_network", stage="environment")
    assert "line 2" in rec.detail and "pip" in rec.detail


# ------------------------------------------------------------------------------------------ repair
def test_repair_turns_a_rejection_into_an_acceptance(synth):
    world = SynthWorld()
    world.replies["solution"]["solve_sh"] = GOOD_SOLVE.replace("tr 'A-Z' 'a-z'", "cat")
    world.replies["repair"] = {"analysis": "the solution must lowercase the words", "solve_sh": GOOD_SOLVE}
    run = synth(world, repair_rounds=2)
    rec = _one(run.records)
    assert rec.verdict == "accepted", rec.detail
    assert rec.rounds == 1 and [h["reason"] for h in rec.history] == ["oracle_fails", None]
    repair = [b for b in run.requests if stage_of(b) == "repair"]
    assert len(repair) == 1
    prompt = repair[0]["messages"][-1]["content"]
    assert "oracle_fails" in prompt and "test_counts_exact" in prompt  # the execution log was fed back
    solve = (run.synth.out / rec.path / "solution" / "solve.sh").read_text()
    assert solve == GOOD_SOLVE


def test_refine_strengthens_tests_an_attack_passed(synth):
    world = SynthWorld()
    weak = "from pathlib import Path\n\n\ndef test_output_exists():\n    assert Path('/app/out/counts.tsv').is_file()\n"
    world.replies["tests"]["test_outputs_py"] = weak
    world.replies["refine"] = {
        "analysis": "check the counts, not only the file",
        "test_outputs_py": GOOD_TESTS,
    }
    run = synth(world, repair_rounds=1)
    rec = _one(run.records)
    assert rec.verdict == "accepted", rec.detail
    assert [h["reason"] for h in rec.history] == ["attack_passes", None]
    refine = [b for b in run.requests if stage_of(b) == "refine"]
    assert len(refine) == 1 and "empty-output" in refine[0]["messages"][-1]["content"]


def test_repair_rounds_are_bounded(synth):
    world = SynthWorld()
    world.replies["solution"]["solve_sh"] = GOOD_SOLVE.replace("tr 'A-Z' 'a-z'", "cat")
    world.replies["repair"] = {
        "analysis": "no idea",
        "solve_sh": GOOD_SOLVE.replace("tr 'A-Z' 'a-z'", "cat "),
    }
    run = synth(world, repair_rounds=2)
    rec = _rejected(run, "oracle_fails")
    assert rec.rounds == 2 and len(rec.history) == 3
    assert sum(stage_of(b) == "repair" for b in run.requests) == 2


# -------------------------------------------------------------------------------------- bad output
def test_non_json_reply_is_retried_once_then_a_counted_rejection(synth):
    world = SynthWorld()
    world.replies["instruction"] = "Sure! Here is a great instruction for the task: count the words."
    run = synth(world)
    rec = _rejected(run, "bad_output", stage="instruction")
    asks = [b for b in run.requests if stage_of(b) == "instruction"]
    assert len(asks) == 2 and is_retry(asks[1])
    assert "cannot be used" in asks[1]["messages"][-1]["content"]
    assert rec.stages == ["propose", "judge", "dedupe"]
    rep = report(read_ledger(run.synth.out))
    assert rep.reasons == [("bad_output", 1)] and rep.accepted == 0


def test_reply_missing_a_field_is_a_counted_rejection(synth):
    world = SynthWorld()
    del world.replies["environment"]["dockerfile"]
    rec = _rejected(synth(world), "bad_output", stage="environment")
    assert "dockerfile" in rec.detail and "required" in rec.detail


def test_dockerfile_copying_a_missing_file_is_a_counted_rejection(synth):
    world = SynthWorld()
    world.replies["environment"]["dockerfile"] = (
        "FROM ltenv/base:bookworm\nCOPY data/ /app/data/\nCOPY config.ini /app/\nWORKDIR /app\n"
    )
    rec = _rejected(synth(world), "bad_output", stage="environment")
    assert "config.ini" in rec.detail and "$.dockerfile" in rec.detail


def test_one_bad_reply_then_a_good_one_is_accepted(synth):
    world = SynthWorld()
    good = world.replies["instruction"]
    world.replies["instruction"] = ['```json\n{"instruction": "too short"}\n```', good]
    rec = _one(synth(world).records)
    assert rec.verdict == "accepted", rec.detail


def test_ideas_the_judge_rejects_end_the_candidate(synth):
    world = SynthWorld()
    for v in world.replies["judge"]["verdicts"]:
        v["score"] = 2
    rec = _rejected(synth(world), "judge_rejected", stage="judge")
    assert "too small" in rec.detail


def test_near_duplicate_of_a_registry_task_is_rejected(synth):
    from ltenv.sandbox.images import registry_root

    src = registry_root() / DOMAIN / "sales-monthly-revenue-report"
    world = SynthWorld()
    world.replies["instruction"]["instruction"] = (src / "instruction.md").read_text()
    world.replies["tests"]["test_outputs_py"] = (src / "tests" / "test_outputs.py").read_text()
    rec = _rejected(synth(world), "duplicate", stage="dedupe")
    assert "sales-monthly-revenue-report" in rec.detail


# -------------------------------------------------------------------------------------------- resume
def test_resumed_run_repeats_no_llm_call(synth, tmp_path):
    world = SynthWorld()
    good_toml = world.replies["task_toml"]
    world.replies["task_toml"] = ErrorReply(400, "scripted outage")  # the run stops at the 8th stage
    first = synth(world)
    rec = _rejected(first, "llm_error", stage="task_toml")
    answered = [json.dumps(b["messages"]) for b in first.requests if stage_of(b) != "task_toml"]
    assert len(answered) == 7

    world.replies["task_toml"] = good_toml
    second = synth(world)
    rec = _one(second.records)
    assert rec.verdict == "accepted", rec.detail
    assert [stage_of(b) for b in second.requests] == ["task_toml"]  # everything else from the cache
    assert not set(answered) & {json.dumps(b["messages"]) for b in second.requests}
    assert rec.cached == 7 and rec.requests == 1

    third = synth(world)
    assert third.records == [] and third.requests == []  # finished: nothing to do
    assert [r.verdict for r in read_ledger(tmp_path / "run")] == ["rejected", "accepted"]
    assert report(read_ledger(tmp_path / "run")).accepted == 1


def test_a_finished_run_replays_from_the_cache_alone(synth, tmp_path):
    first = synth(SynthWorld())
    assert _one(first.records).verdict == "accepted"
    shutil.copytree(tmp_path / "run" / "cache", tmp_path / "replay" / "cache")
    second = synth(SynthWorld({}), out=tmp_path / "replay")  # a server that answers nothing
    rec = _one(second.records)
    assert rec.verdict == "accepted" and second.requests == [] and rec.cached == 8


def test_rerun_with_other_settings_is_refused(synth):
    synth(SynthWorld(), repair_rounds=0)
    with pytest.raises(SynthConfigMismatch, match="seed"):
        synth(SynthWorld(), seed=7)


# --------------------------------------------------------------------------------------------- CLI
def test_cli_synth_then_report_then_validate(openai_server, store, bwrap_ok, tmp_path):  # noqa: F811
    openai_server.responder = SynthWorld()
    out = tmp_path / "cli"
    proc = run_ltenv(
        "synth", "--domains", "envs_registry/domains", "--domain", DOMAIN, "--n", "1",
        "--base-url", openai_server.base_url, "--model", "scripted-model", "--out", out, "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "accepted" in proc.stderr and "Acceptance per stage" in proc.stdout
    assert "Tokens per stage" in proc.stdout
    proc = run_ltenv("synth", "report", out, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["n"] == 1 and data["accepted"] == 1 and dict(data["funnel"])["validate"] == 1
    proc = run_ltenv("synth", "report", out)
    assert proc.returncode == 0 and "Acceptance per domain" in proc.stdout and DOMAIN in proc.stdout
    proc = run_ltenv("validate", "--tasks", out / "tasks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_synth_needs_a_model(tmp_path):
    proc = run_ltenv("synth", "--n", "1", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "--model is required" in proc.stderr


def test_cli_target_prints_the_weighting_and_shifts_sampling(openai_server, tmp_path):  # noqa: F811
    from tests.synth.test_sampling import report_for

    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(report_for({"maze-shortest-paths": (4, 0), "semver-constraint-resolver": (4, 4)}))
    )
    world = SynthWorld()
    for v in world.replies["judge"]["verdicts"]:
        v["score"] = 1  # every candidate stops at the judge: no image is built
    openai_server.responder = world
    out = tmp_path / "targeted"
    proc = run_ltenv(
        "synth", "--domain", "games", "--domain", "coding", "--n", "12", "--target", results,
        "--base-url", openai_server.base_url, "--model", "scripted-model", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "games" in proc.stderr and "weight" in proc.stderr.lower()  # the weighting table
    records = read_ledger(out)
    assert len(records) == 12 and {r.reason for r in records} == {"judge_rejected"}
    by_domain = {d: sum(r.domain == d for r in records) for d in ("games", "coding")}
    assert by_domain["games"] > by_domain["coding"], by_domain  # games fails, coding passes
    assert json.loads((out / "synth.json").read_text())["targeting"]["domain_weights"]["games"] > 0.5


def test_a_rejected_candidates_idea_is_free_for_the_next_one(synth):
    world = SynthWorld()
    bad = {"dockerfile": "FROM ltenv/base:bookworm\nCOPY missing.txt /app/\n", "files": []}
    world.replies["environment"] = [bad, bad, world.replies["environment"]]  # candidate 0 uses both bad ones
    run = synth(world, n=2, domains=[DOMAIN])
    first, second = sorted(run.records, key=lambda r: r.id)
    assert (first.verdict, first.reason) == ("rejected", "bad_output")
    assert second.verdict == "accepted", second.detail  # the same idea, not a duplicate of a rejected one
    assert first.name == second.name == "word-frequency-table"  # a rejected candidate's name is free again
