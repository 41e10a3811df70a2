"""Branching preference pairs: episodes of the same task that agree on their first k turns and part later.
``ltenv export pairs [--branch]`` puts the shared turns into the prompt (``branch_turn`` = k); DMPO trains the
continuations only, its turn weights starting at the branch turn; SFT trains the chosen episode whole."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

from datasets import Dataset

from ltenv.data import branch_point, export_pairs, read_dataset
from ltenv.train.dmpo import DMPOConfig, DMPOTrainer, _tokenize_pair, split_pair, turn_weights
from ltenv.trajectory import Step, Trajectory, TrajectoryStore
from tests.support.cli import run_ltenv

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "You are a terminal agent."
INSTRUCTION = "Fix /app/config.yaml so that `pytest /app/tests` passes.\n\nroot@box:/app# "
OUTPUTS = {
    "ls": "config.yaml  service.py  tests",
    "cat config.yaml": "port: 80\nworkers: zero",
    "sed -i 's/zero/4/' config.yaml": "",
    "sed -i 's/80/8080/' config.yaml": "",
    "pytest -q tests": "3 passed in 0.12s",
    "pytest -x tests": "1 failed in 0.10s",
    "pwd": "/app",
}


def reply(cmd: str, done: bool) -> str:
    return json.dumps(
        {
            "analysis": "Reading the terminal.",
            "plan": f"Run {cmd!r}.",
            "commands": [{"keystrokes": cmd + "\n", "duration": 1}],
            "task_complete": done,
        }
    )


def episode(
    attempt: int, reward: float, cmds: list[str], *, seed: int = 7, outputs: dict[str, str] | None = None
) -> Trajectory:
    outputs = {**OUTPUTS, **(outputs or {})}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": INSTRUCTION},
    ]
    steps = []
    for i, cmd in enumerate(cmds):
        messages.append({"role": "assistant", "content": reply(cmd, i == len(cmds) - 1)})
        if i < len(cmds) - 1:
            messages.append(
                {"role": "user", "content": f"New Terminal Output:\n{outputs[cmd]}\nroot@box:/app# "}
            )
        steps.append(Step(action=cmd, observation=outputs[cmd], exit_code=0, turn=i))
    return Trajectory(
        run="r",
        task="fix-config",
        attempt=attempt,
        seed=seed,
        reward=reward,
        passed=reward >= 1,
        domain="system_admin",
        messages=messages,
        steps=steps,
        policy="test",
        scaffold="terminus",
    )


GOOD = ["ls", "cat config.yaml", "sed -i 's/zero/4/' config.yaml", "pytest -q tests"]
BAD = ["ls", "cat config.yaml", "sed -i 's/80/8080/' config.yaml", "pytest -q tests"]


def episodes() -> list[Trajectory]:
    return [
        episode(0, 1.0, GOOD),
        episode(1, 0.0, BAD),  # agrees with 0 on two turns: branches at turn 2
        episode(2, 0.0, ["pwd", "pytest -q tests"]),  # parts at the first reply
        episode(3, 0.0, [*BAD[:3], "pytest -x tests"], seed=8),  # another instance of the task
        episode(4, 0.0, GOOD, outputs={"ls": "service.py  tests"}),  # same first reply, another observation
    ]


def _replies(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in msgs if m["role"] == "assistant"]


# ------------------------------------------------------------------------------------------- export


def test_export_puts_shared_turns_in_the_prompt_and_branch_keeps_branching_pairs(tmp_path: Path) -> None:
    trajs = episodes()
    good = trajs[0].messages
    assert branch_point(good, trajs[1].messages) == 6  # system, instruction, 2 x (reply, observation)
    assert branch_point(good, trajs[4].messages) == 2  # the same first reply met another observation

    rows = {r["rejected_attempt"]: r for r in export_pairs(trajs)}
    assert sorted(rows) == [1, 2, 3, 4]
    assert {a: r["branch_turn"] for a, r in rows.items()} == {1: 2, 2: 0, 3: 2, 4: 0}
    row = rows[1]
    assert (
        row["prompt"] == good[:6] and row["chosen"] == good[6:] and row["rejected"] == trajs[1].messages[6:]
    )
    assert (row["chosen_turns"], row["rejected_turns"]) == (2, 2)
    assert rows[2]["prompt"] == good[:2] and rows[2]["chosen"] == good[2:]  # single-prefix pairs as before
    assert rows[4]["chosen"][0] == rows[4]["rejected"][0]  # the shared reply starts both continuations

    branched = export_pairs(trajs, tmp_path / "branch.jsonl", branch=True)
    assert branched["rejected_attempt"] == [1]  # same task, seed and prompt, parting at a later turn
    store = TrajectoryStore(tmp_path / "run" / "trajectories.jsonl")
    for t in trajs:
        store.append(t)
    proc = run_ltenv("export", "pairs", tmp_path / "run", "--out", tmp_path / "cli.jsonl", "--branch")
    assert proc.returncode == 0, proc.stderr
    assert "1 pair(s) (1 task(s)) from 5 episode(s)" in proc.stdout
    assert "1 pair(s) branch at a later turn" in proc.stdout
    back = read_dataset(tmp_path / "cli.jsonl")
    assert back.to_list() == read_dataset(tmp_path / "branch.jsonl").to_list()
    assert back[0]["branch_turn"] == 2 and back[0]["prompt"] == good[:6]


# ------------------------------------------------------------------------------------------- DMPO data


def test_prompt_with_assistant_turns_tokenizes_with_weights_from_the_branch_turn(tiny_tokenizer: Any) -> None:
    """This row used to crash the data map (IndexError in the turn weights: the prompt's turns were counted)."""
    tok = tiny_tokenizer
    row = export_pairs(episodes()[:2]).to_list()[0]
    out = _tokenize_pair(row, 0, tok, None, 0.7, "paper", "error")
    assert out["dmpo_branch_turn"] == 2 and out["chosen_n_turns"] == 2
    for side in ("chosen", "rejected"):
        ids, index, weights = out[f"{side}_ids"], out[f"{side}_turn_index"], out[f"{side}_weights"]
        assert sorted(set(index)) == [-1, 0, 1]
        trained = tok.decode([i for i, t in zip(ids, index, strict=True) if t >= 0])
        assert trained == "".join(
            r + "<|im_end|>" for r in _replies(row[side])
        )  # the prompt's turns: context
        phis = turn_weights(2, 0.7, "paper")  # T = the continuation's length, turn k has the first weight
        assert all(w == (phis[t] if t >= 0 else 0.0) for t, w in zip(index, weights, strict=True))
        assert weights[index.index(0)] == 1.0
    c0, r0 = out["chosen_turn_index"].index(0), out["rejected_turn_index"].index(0)
    assert c0 == r0 and out["chosen_ids"][:c0] == out["rejected_ids"][:r0]  # the shared prompt's tokens


def test_implicit_prompt_rows_sharing_leading_turns_branch_after_them(tiny_tokenizer: Any) -> None:
    good, bad = episodes()[0].messages, episodes()[1].messages
    implicit = {"chosen": good, "rejected": bad}
    prompt, chosen, rejected = split_pair(implicit, 0)
    assert prompt == good[:6] and chosen == good[6:] and rejected == bad[6:]
    explicit = export_pairs(episodes()[:2]).to_list()[0]
    a = _tokenize_pair(implicit, 0, tiny_tokenizer, None, 0.7, "paper", "error")
    b = _tokenize_pair(explicit, 0, tiny_tokenizer, None, 0.7, "paper", "error")
    for key in ("chosen_ids", "chosen_turn_index", "chosen_weights", "rejected_ids", "rejected_weights"):
        assert a[key] == b[key]
    # an explicit prompt whose continuations still share their first turns: those move into the prompt too
    shifted = {"prompt": good[:2], "chosen": good[2:], "rejected": bad[2:]}
    assert split_pair(shifted, 0) == (good[:6], good[6:], bad[6:])


# ------------------------------------------------------------------------------------------- trainers


def test_branching_pairs_train_with_dmpo_and_sft(tiny_model: Path, tmp_path: Path) -> None:
    trajs = episodes()
    export_pairs(trajs, tmp_path / "pairs.jsonl")
    pairs = read_dataset(tmp_path / "pairs.jsonl")
    args = DMPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        max_length=1024,
        activation_checkpointing=False,
        bf16=False,
        dataloader_num_workers=0,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-3,
    )
    trainer = DMPOTrainer(tiny_model, args=args, train_dataset=pairs)
    assert trainer.data_stats["train"]["branch_pairs"] == 2 and len(trainer.train_dataset) == 4
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for i in range(4):
        row = pairs[i]
        trained = tok.decode([t for t in batch["labels"][i].tolist() if t != -100])
        assert trained == "".join(r + "<|im_end|>" for r in _replies(row["chosen"]))
        text = tok.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist())
        assert all(r in text for r in _replies(row["prompt"]))  # shared turns are in the context
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)

    # SFT trains the chosen episode whole: prompt (its shared turns included) + continuation
    spec = importlib.util.spec_from_file_location("ltenv_training_sft_branch", ROOT / "training" / "sft.py")
    assert spec and spec.loader
    sft = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sft
    spec.loader.exec_module(sft)
    rows = [{"messages": r["prompt"] + r["chosen"]} for r in pairs if r["branch_turn"] > 0]
    ds, stats = sft.tokenize(Dataset.from_list(rows), tok, max_length=1024)
    assert stats["kept"] == 2
    trained = tok.decode([i for i, m in zip(ds[0]["input_ids"], ds[0]["assistant_masks"], strict=True) if m])
    assert trained == "".join(r + "<|im_end|>" for r in _replies(trajs[0].messages))
