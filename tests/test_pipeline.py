"""The data engine end to end on the bundled suite, through the real CLI: rollout (oracle, nop, and a scripted
policy behind a loopback OpenAI-compatible server) -> export sft|pairs -> eval -> leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltenv.tasks import load_suite
from tests.support.openai_server import ScriptedOpenAIServer

REGISTRY = Path(__file__).parent.parent / "envs_registry"

pytestmark = [pytest.mark.slow, pytest.mark.bwrap, pytest.mark.docker]


def ltenv(*args: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "ltenv.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, (
        f"ltenv {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _scripted(request: dict) -> str:
    """Look around once, then claim completion (and confirm it when asked)."""
    turns = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if turns == 0:
        cmd = {"keystrokes": "ls -la && pwd\n", "duration": 1.0}
        return json.dumps(
            {
                "analysis": "Start by looking.",
                "plan": "List files.",
                "commands": [cmd],
                "task_complete": False,
            }
        )
    return json.dumps({"analysis": "Done.", "plan": "", "commands": [], "task_complete": True})


@pytest.mark.timeout(3000)
def test_bundled_suite_rollout_export_eval_leaderboard(tmp_path, store, bwrap_ok):
    # The suite as the command-mode scaffold plays it on bwrap: multi-service tasks need docker, and tasks whose
    # oracle is keystrokes (solution/keys.json) need the terminus-2 scaffold (test_interactive_tasks.py).
    # One task per domain (CI time; every task's oracle and nop are test_registry.py's).
    by_domain: dict[str, object] = {}
    for t in load_suite(REGISTRY).tasks:
        if t.services is None and not (t.solution_dir / "keys.json").is_file():
            by_domain.setdefault(t.domain, t)
    tasks = list(by_domain.values())
    assert len(tasks) == 10
    names = [t.name for t in tasks]
    jobs = os.environ.get("LTENV_JOBS", "2")
    runs = {name: tmp_path / name for name in ("oracle", "nop", "scripted")}
    ltenv("rollout", *names, "--policy", "oracle", "--out", str(runs["oracle"]), "-j", jobs)
    ltenv("rollout", *names, "--policy", "nop", "--out", str(runs["nop"]), "-j", jobs)
    server = ScriptedOpenAIServer(_scripted)
    server.start()
    try:
        ltenv(
            "rollout",
            *names,
            "--policy",
            "openai:scripted-model",
            "--base-url",
            server.base_url,
            "--api-key-env",
            "SCRIPTED_KEY",
            "--out",
            str(runs["scripted"]),
            "-j",
            jobs,
            env={"SCRIPTED_KEY": "sk-test"},
        )
    finally:
        server.stop()
    # Three requests per task: look, claim completion, confirm it. Every one went over HTTP.
    assert len(server.requests) == 3 * len(tasks)

    results = {}
    for name, run in runs.items():
        lines = (run / "trajectories.jsonl").read_text().splitlines()
        assert len(lines) == len(tasks), name
        results[name] = json.loads(ltenv("eval", "--from", str(run), "--json").stdout)
    assert results["oracle"]["pass_at_1"] == 1.0, results["oracle"]
    assert results["nop"]["pass_at_1"] == 0.0 and results["scripted"]["pass_at_1"] == 0.0
    scripted = [
        json.loads(line) for line in (runs["scripted"] / "trajectories.jsonl").read_text().splitlines()
    ]
    assert all(t["termination"] == "submitted" and t["model"] == "scripted-model" for t in scripted)
    assert all(t["steps"][0]["action"].startswith("ls -la") for t in scripted)
    assert "sk-test" not in (runs["scripted"] / "run.json").read_text()

    sft, pairs = tmp_path / "sft.jsonl", tmp_path / "pairs.parquet"
    ltenv("export", "sft", str(runs["oracle"]), str(runs["nop"]), "--out", str(sft))
    rows = [json.loads(line) for line in sft.read_text().splitlines()]
    assert len(rows) == len(tasks) and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    ltenv(
        "export", "pairs", str(runs["oracle"]), str(runs["nop"]), str(runs["scripted"]), "--out", str(pairs)
    )
    from datasets import Dataset

    ds = Dataset.from_parquet(str(pairs))
    # Per task: oracle beats nop and oracle beats scripted; nop vs scripted tie (both 0) and is dropped.
    assert len(ds) == 2 * len(tasks)
    assert all(r["chosen_reward"] == 1.0 and r["rejected_reward"] == 0.0 for r in ds)

    board = tmp_path / "board"
    out = ltenv("leaderboard", *(str(r) for r in runs.values()), "--out", str(board)).stdout
    md = (board / "leaderboard.md").read_text()
    assert md.index("oracle") < md.index("nop") and "scripted" in md, md
    html = (board / "index.html").read_text()
    assert all(t.name in html for t in tasks)
    assert "oracle" in out
