"""The ltenv command line, run as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"


def ltenv(*args: str, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltenv.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


def test_list_json_bundled():
    proc = ltenv("list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {"name", "domain", "difficulty", "path"} <= set(rows[0])
    assert len(rows) >= 30


def test_list_reports_malformed_folders(tmp_path):
    shutil.copytree(FIXTURES / "write-greeting", tmp_path / "good")
    shutil.copytree(FIXTURES / "write-greeting", tmp_path / "bad")
    (tmp_path / "bad" / "task.toml").write_text("[agent]\ntimeout_sec = 'x'\n")
    proc = ltenv("list", "--json", "--tasks", str(tmp_path))
    assert proc.returncode == 1
    assert [r["name"] for r in json.loads(proc.stdout)] == ["good"]
    assert "task 'bad'" in proc.stderr and "task.toml" in proc.stderr and "[agent] timeout_sec" in proc.stderr


@pytest.mark.bwrap
@pytest.mark.docker
def test_validate_json_flags_invalid_tasks(store, bwrap_ok):
    proc = ltenv("validate", "--tasks", str(FIXTURES), "--json", "--jobs", "2")
    assert proc.returncode == 1, proc.stderr
    results = {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    assert set(results) == {"write-greeting", "serve-http", "nop-passes", "oracle-fails", "keys-fidelity"}
    for r in results.values():
        assert {"name", "oracle", "nop", "stable", "seconds"} <= set(r)
    assert (
        results["write-greeting"]["valid"]
        and results["serve-http"]["valid"]
        and results["keys-fidelity"]["valid"]
    )
    assert results["write-greeting"]["oracle_runs"] == [1.0, 1.0]
    assert results["write-greeting"]["nop_runs"] == [0.0, 0.0]
    assert not results["nop-passes"]["valid"] and "do-nothing" in results["nop-passes"]["error"]
    assert not results["oracle-fails"]["valid"] and "test_answer" in results["oracle-fails"]["error"]


@pytest.mark.bwrap
@pytest.mark.docker
def test_play_scripted_and_interactive(store, bwrap_ok):
    task = str(FIXTURES / "write-greeting")
    proc = ltenv("play", task, "-c", "cat seed.txt", "-c", 'echo "hello from $(cat seed.txt)" > greeting.txt')
    assert proc.returncode == 0, proc.stderr
    assert "seed-write-greeting" in proc.stdout and "reward=1" in proc.stdout
    proc = ltenv("play", task, input="ls\nsubmit\n")
    assert proc.returncode == 1  # nothing done: the verifier fails it
    assert "seed.txt" in proc.stdout and "reward=0" in proc.stdout and "FAIL" in proc.stdout


def test_unknown_task_name():
    proc = ltenv("play", "no-such-task-anywhere")
    assert proc.returncode == 2 and "unknown task" in proc.stderr


@pytest.mark.docker
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_play_keystroke_oracle_of_a_terminal_bench_task(store, backend):
    tb1 = FIXTURES.parent / "tb1"
    proc = ltenv("play", "tb-vim-edit-config", "--tasks", str(tb1), "--oracle", "--backend", backend)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "typed solution.yaml into a terminal" in proc.stdout
    assert "reward=1" in proc.stdout and "PASS test_mode_is_production" in proc.stdout
    # The bash oracle of a folder given by path, with the image map and offline verification.
    proc = ltenv(
        "play",
        str(tb1 / "tb-offline-mean"),
        "--oracle",
        "--offline-tests",
        "--image-map",
        str(FIXTURES.parent / "image-map.yaml"),
        "--backend",
        backend,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reward=1" in proc.stdout
