"""The embedded demo (`ltenv demo`): stages through the public CLI/API, per-stage checkpoints, resume after
a failed or killed stage, and (the CI check of issue 7) SFT beating the untrained model on held-out seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltenv.demo import HELDOUT_BASE, STAGES, Demo, DemoConfig, DemoError
from tests.support.cli import run_ltenv

pytestmark = [pytest.mark.bwrap, pytest.mark.slow]


def tiny(out: Path, **kw) -> DemoConfig:
    """A demo small enough for a test: two families, a handful of seeds, a few training steps."""
    base = dict(
        out=out,
        families=["fix-permission", "json-field"],
        train_seeds=6,
        heldout_seeds=3,
        pair_seeds=3,
        pair_attempts=1,
        sft_steps=4,
        sft_batch=4,
        dmpo_steps=2,
        dmpo_batch=2,
        hidden=32,
        intermediate=64,
        layers=2,
        vocab_size=400,
        jobs=4,
        model_jobs=8,
        max_new_tokens=12,
    )
    base.update(kw)
    return DemoConfig(**base)


def state(out: Path) -> dict:
    return json.loads((out / "demo-state.json").read_text())


def test_stages_checkpoint_and_resume_after_a_failed_stage(tmp_path, store, bwrap_ok):
    out = tmp_path / "demo"
    bad = tmp_path / "missing-accelerate-config.yaml"
    with pytest.raises(DemoError) as info:
        Demo(tiny(out, accelerate_config=str(bad)), say=lambda m: None).run()
    msg = str(info.value)
    assert "stage sft" in msg and "logs/sft.log" in msg and "Rerun `ltenv demo`" in msg
    done = list(state(out)["stages"])
    assert done == ["model", "collect", "export-sft", "eval-base"]  # checkpointed up to the failure
    assert (out / "oracle" / "trajectories.jsonl").is_file() and (out / "sft.jsonl").is_file()
    # the SFT data is in task order, not in the order the oracle's episodes happened to finish
    tasks = [json.loads(line)["task"] for line in (out / "sft.jsonl").read_text().splitlines()]
    assert len(tasks) == 12 and tasks == sorted(tasks)
    oracle_mtime = (out / "oracle" / "trajectories.jsonl").stat().st_mtime

    said: list[str] = []
    Demo(tiny(out), say=said.append).run(until="sft")
    assert any("resuming" in s and "next: sft" in s for s in said)
    assert list(state(out)["stages"]) == [*done, "sft"]
    assert (out / "oracle" / "trajectories.jsonl").stat().st_mtime == oracle_mtime  # not redone
    assert (out / "sft-model" / "config.json").is_file()


def test_other_settings_are_refused_naming_them(tmp_path, store, bwrap_ok):
    out = tmp_path / "demo"
    Demo(tiny(out), say=lambda m: None).run(until="model")
    with pytest.raises(DemoError, match=r"train_seeds: 6 -> 7"):
        Demo(tiny(out, train_seeds=7), say=lambda m: None).run()
    Demo(tiny(out, train_seeds=7), say=lambda m: None, fresh=True).run(until="model")  # --fresh starts over
    assert state(out)["config"]["train_seeds"] == 7


def test_heldout_seeds_never_overlap_training_seeds(tmp_path):
    demo = Demo(tiny(tmp_path / "d", train_seeds=50, heldout_seeds=5), say=lambda m: None)
    train = {t.name for t in demo.train_tasks()}
    held = {t.name for t in demo.heldout_tasks()}
    pairs = {t.name for t in demo.pair_tasks()}
    assert len(train) == 100 and len(held) == 10 and len(pairs) == 6
    assert not train & held and not pairs & train and not pairs & held
    assert all(int(n.rsplit("-s", 1)[1]) >= HELDOUT_BASE for n in held)
    with pytest.raises(DemoError, match="reaches the held-out seeds"):
        Demo(tiny(tmp_path / "e", train_seeds=HELDOUT_BASE - 1), say=lambda m: None).pair_tasks()


@pytest.mark.timeout(900)
def test_a_killed_training_stage_is_reported_and_resumed(tmp_path, store, bwrap_ok):
    out = tmp_path / "demo"
    args = [
        sys.executable, "-m", "ltenv.cli", "demo", "--out", str(out), "--families", "fix-permission",
        "--train-seeds", "6", "--heldout-seeds", "2", "--sft-steps", "400", "--seed", "3", "--until", "sft",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 240
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        victim = _find_process("training/sft.py", str(out))
        time.sleep(0.2)
    assert victim is not None, "the SFT process never started"
    time.sleep(3)  # let it get going
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    err = " ".join(err.split())
    assert "stage sft" in err and "killed by SIGKILL" in err and "Rerun `ltenv demo`" in err
    assert "sft" not in state(out)["stages"] and "eval-base" in state(out)["stages"]
    assert state(out)["config"]["seed"] == 3

    rerun = run_ltenv(*args[3:-2], "--until", "export-sft", timeout=120)
    assert rerun.returncode == 0, rerun.stderr  # nothing left to do up to export-sft: a no-op resume
    assert "sft" not in state(out)["stages"]


def _find_process(*needles: str) -> int | None:
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles) and "accelerate" not in cmd.split()[0]:
            return int(d.name)
    return None


@pytest.mark.timeout(1800)
def test_quick_demo_sft_beats_the_untrained_model_on_heldout_seeds(tmp_path, store, bwrap_ok):
    out = tmp_path / "quick"
    proc = run_ltenv("demo", "--quick", "--out", out, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "demo-report.json").read_text())
    overall = report["overall"]
    assert overall["SFT"] > overall["untrained"], report
    assert overall["DMPO"] is not None
    assert set(report["seconds"]) == set(STAGES) - {"report"}  # written by the report stage itself
    assert (out / "leaderboard" / "index.html").is_file()
    assert "| family |" in proc.stdout and "untrained" in proc.stdout  # the table is printed
