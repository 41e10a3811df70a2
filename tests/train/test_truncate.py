"""Long trajectories under max_length (ltenv.train.truncate): a 30-turn trajectory is kept whole by
eliding middle observations, then by dropping middle turns, in SFT's tokenize and in DMPO's pair
tokenization; the old drop-the-latest-turns behaviour stays selectable; counts reach logs and metrics."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

from datasets import Dataset

from ltenv.train.chat import build_chat
from ltenv.train.dmpo import DMPOConfig, DMPODataError, DMPOTrainer, _tokenize_pair, turn_weights
from ltenv.train.truncate import DoesNotFit, elide_text, fit_conversations, token_counter

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = {"role": "system", "content": "You are a terminal agent. Reply with one JSON object."}
INSTRUCTION = (
    "Task: the service in /app fails its health check. Find the cause, fix /app/config.yaml and make "
    "`pytest /app/tests` pass.\n\nCurrent terminal state:\nroot@box:/app# "
)


def reply(t: int, n: int, tag: str = "") -> str:
    cmd = f"python -m pytest -x tests/test_{t}.py 2>&1 | tail -40{tag}\n"
    return json.dumps(
        {
            "analysis": f"Step {t}: reading the output above.",
            "plan": f"Run check {t}.",
            "commands": [{"keystrokes": cmd, "duration": 5}],
            "task_complete": t == n - 1,
        }
    )


def observation(t: int, rng: random.Random, lines: int = 18) -> str:
    out = [f"root@box:/app# python -m pytest -x tests/test_{t}.py 2>&1 | tail -40"]
    for k in range(lines):
        out.append(
            f"tests/test_{t}.py::test_case_{k} {'PASSED' if rng.random() < 0.8 else 'FAILED'} [{5 * k:3d}%]"
        )
    out.append(f"E   AssertionError: expected status 200, got {500 + t}")
    out.append(
        f"==== {rng.randint(1, 9)} failed, {rng.randint(10, 30)} passed in {rng.random() * 3:.2f}s ===="
    )
    out.append("root@box:/app# ")
    return "New Terminal Output:\n" + "\n".join(out)


def turns(n: int, seed: int = 0, tag: str = "", lines: int = 18) -> list[dict[str, str]]:
    """``n`` assistant turns with realistic test-run observations between them (no trailing observation)."""
    rng = random.Random(seed)
    msgs = []
    for t in range(n):
        msgs.append({"role": "assistant", "content": reply(t, n, tag)})
        if t < n - 1:
            msgs.append({"role": "user", "content": observation(t, rng, lines)})
    return msgs


def trajectory(n: int = 30, **kw: Any) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": INSTRUCTION}, *turns(n, **kw)]


def _sft_module() -> Any:
    spec = importlib.util.spec_from_file_location("ltenv_training_sft_truncate", ROOT / "training" / "sft.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def trained_text(tok: Any, ids: list[int], trained: list[bool]) -> str:
    return tok.decode([i for i, on in zip(ids, trained, strict=True) if on])


# ------------------------------------------------------------------------------------------- the policy


def test_elide_text_keeps_head_and_tail(tiny_tokenizer: Any) -> None:
    count = token_counter(tiny_tokenizer)
    text = observation(3, random.Random(0))
    short = elide_text(text, 120, count)
    lines = text.splitlines()
    assert count(short) <= 120
    assert short.startswith(lines[0]) and short.endswith(lines[-1])  # the command echo and the prompt
    n = int(short.split("[... ")[1].split(" lines")[0])
    assert len(short.splitlines()) - 1 + n == len(lines)  # every line kept or counted in the marker
    assert elide_text(text, count(text), count) == text  # what fits is left alone
    one_line = "x" * 4000
    cut = elide_text(one_line, 100, count)
    assert "characters elided ...]" in cut and cut.startswith("xxx") and count(cut) <= 110


def test_thirty_turns_kept_whole_by_eliding_observations_sft(tiny_tokenizer: Any, caplog: Any) -> None:
    sft = _sft_module()
    tok = tiny_tokenizer
    msgs = trajectory(30)
    whole = len(build_chat(tok, msgs))
    limit = whole * 2 // 5  # the trajectory is 2.5 times too long
    ds, stats = sft.tokenize(Dataset.from_list([{"messages": msgs}]), tok, max_length=limit)
    assert stats["kept"] == 1 and stats["truncated_rows"] == 1
    assert stats["dropped_turns"] == 0 and stats["truncated_turns"] == 0
    assert stats["shortened_observations"] > 10 and stats["elided_tokens"] > whole - limit
    ids, mask = ds[0]["input_ids"], ds[0]["assistant_masks"]
    assert len(ids) <= limit
    # all 30 assistant turns trained, exactly as generated
    assert trained_text(tok, ids, [bool(m) for m in mask]) == "".join(
        m["content"] + "<|im_end|>" for m in msgs if m["role"] == "assistant"
    )
    text = tok.decode(ids)
    assert INSTRUCTION in text and msgs[-2]["content"] in text  # instruction and final observation intact
    assert msgs[3]["content"] not in text and "lines elided ...]" in text  # the oldest observation shortened
    with caplog.at_level(logging.WARNING):
        sft._log_stats("train", stats)
    assert f"{stats['shortened_observations']} observations shortened" in caplog.text

    # the old behaviour: the earliest turns that fit, the latest (where the outcome is decided) dropped
    ds, stats = sft.tokenize(
        Dataset.from_list([{"messages": msgs}]), tok, max_length=limit, truncation="drop_latest"
    )
    assert 0 < 30 - stats["truncated_turns"] < 15 and stats["shortened_observations"] == 0
    assert msgs[-1]["content"] not in tok.decode(ds[0]["input_ids"])
    with pytest.raises(ValueError, match=r"row 0: the conversation is \d+ tokens, longer than max_length"):
        sft.tokenize(Dataset.from_list([{"messages": msgs}]), tok, max_length=limit, truncation="error")


def test_middle_turns_dropped_when_eliding_is_not_enough(tiny_tokenizer: Any) -> None:
    tok = tiny_tokenizer
    msgs = trajectory(30)
    replies = [m["content"] for m in msgs if m["role"] == "assistant"]
    limit = 2400  # below the 30 replies alone: whole middle turns must go
    fit = fit_conversations(
        [msgs], limit, measure=lambda m: len(build_chat(tok, m)), count_tokens=token_counter(tok)
    )
    out, kept = fit.conversations[0], fit.kept_turns[0]
    ct = build_chat(tok, out)
    assert len(ct) <= limit and fit.dropped_turns == 30 - len(kept) > 0
    assert kept == list(range(30 - len(kept), 30))  # the oldest turns go, the last ones stay
    assert out[:2] == msgs[:2]  # system prompt and instruction untouched
    assert out[-1]["content"] == replies[-1] and out[-2]["content"] == msgs[-2]["content"]
    assert out[2]["role"] == "user" and out[2]["content"].startswith(
        f"[... {fit.dropped_turns} earlier turns"
    )
    assert [m["content"] for m in out if m["role"] == "assistant"] == replies[-len(kept) :]

    with pytest.raises(DoesNotFit, match="the instruction and the last turn must fit"):
        fit_conversations(
            [msgs], 150, measure=lambda m: len(build_chat(tok, m)), count_tokens=token_counter(tok)
        )
    sft = _sft_module()
    _, stats = sft.tokenize(Dataset.from_list([{"messages": msgs}] * 2), tok, max_length=150)
    assert stats["kept"] == 0
    assert sum(v for k, v in stats.items() if k.startswith("skipped:DoesNotFit")) == 2


# ------------------------------------------------------------------------------------------- DMPO


def pair_row(n_chosen: int = 30, n_rejected: int = 24, **kw: Any) -> dict[str, Any]:
    return {
        "prompt": [SYSTEM, {"role": "user", "content": INSTRUCTION}],
        "chosen": turns(n_chosen, seed=1, **kw),
        "rejected": turns(n_rejected, seed=2, tag=" # retry", **kw),
    }


def test_thirty_turn_pair_kept_whole_dmpo(tiny_tokenizer: Any) -> None:
    tok = tiny_tokenizer
    row = pair_row()
    whole = len(build_chat(tok, row["prompt"] + row["chosen"]))
    limit = whole * 2 // 5
    out = _tokenize_pair(row, 0, tok, limit, 0.7, "paper", "error")
    assert out["dmpo_truncated"] == 1 and out["dmpo_dropped"] == 0 and out["dmpo_shortened"] > 10
    for side, n in (("chosen", 30), ("rejected", 24)):
        ids, index, weights = out[f"{side}_ids"], out[f"{side}_turn_index"], out[f"{side}_weights"]
        assert len(ids) <= limit
        assert sorted({t for t in index if t >= 0}) == list(range(n))  # every turn trained
        phis = turn_weights(n, 0.7, "paper")
        assert all(w == (phis[t] if t >= 0 else 0.0) for t, w in zip(index, weights, strict=True))
        text = tok.decode(ids)
        assert INSTRUCTION in text and row[side][-2]["content"] in text
        assert trained_text(tok, ids, [t >= 0 for t in index]) == "".join(
            m["content"] + "<|im_end|>" for m in row[side] if m["role"] == "assistant"
        )
    # the old behaviour stays selectable: chosen loses its latest turns
    old = _tokenize_pair(row, 0, tok, limit, 0.7, "paper", "error", truncation="drop_latest")
    assert max(old["chosen_turn_index"]) < 29 and old["dmpo_dropped"] > 0 and old["dmpo_shortened"] == 0
    with pytest.raises(DMPODataError, match=r"row 0: chosen: conversation is .* longer than max_length"):
        _tokenize_pair(row, 0, tok, limit, 0.7, "paper", "skip", truncation="error")
    # too long even with only the instruction and the last turn: a bad row, counted
    skipped = _tokenize_pair(row, 3, tok, 150, 0.7, "paper", "skip")
    assert skipped["dmpo_too_long"] == 1 and skipped["dmpo_skip"].startswith("row 3: pair:")


def test_shared_prompt_truncated_identically_and_dropped_turns_keep_their_weights(
    tiny_tokenizer: Any,
) -> None:
    """A branching pair whose prompt holds 10 long turns: the prompt is shortened the same on both sides
    (its tokens agree), turns dropped by the budget keep their position t in φ(t, T)."""
    tok = tiny_tokenizer
    shared = [*trajectory(11)[:-1], {"role": "user", "content": observation(10, random.Random(9))}]
    row = {"prompt": shared, "chosen": turns(6, seed=1, tag=" # a"), "rejected": turns(9, seed=2, tag=" # b")}
    limit = 4500
    out = _tokenize_pair(row, 0, tok, limit, 0.7, "paper", "error")
    assert out["dmpo_branch_turn"] == 10 and out["dmpo_truncated"] == 1 and out["dmpo_dropped"] == 0
    c_ids, r_ids = out["chosen_ids"], out["rejected_ids"]
    c0 = out["chosen_turn_index"].index(0)
    assert c_ids[:c0] == r_ids[:c0] and len(c_ids) <= limit and len(r_ids) <= limit
    for side, n in (("chosen", 6), ("rejected", 9)):
        index = out[f"{side}_turn_index"]
        assert sorted({t for t in index if t >= 0}) == list(range(n))  # the prompt's turns are context
    tight = _tokenize_pair(row, 0, tok, 1200, 0.7, "paper", "error")
    assert tight["dmpo_dropped"] > 0
    index, weights = tight["rejected_turn_index"], tight["rejected_weights"]
    kept = sorted({t for t in index if t >= 0})
    assert kept[-1] == 8 and kept == list(range(kept[0], 9))  # the latest turns, at their own positions
    phis = turn_weights(9, 0.7, "paper")
    assert all(w == (phis[t] if t >= 0 else 0.0) for t, w in zip(index, weights, strict=True))


def test_dmpo_trainer_reports_truncation_in_its_metrics(tiny_model: Path, tmp_path: Path) -> None:
    rows = [pair_row(6, 5, lines=12)]
    args = DMPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        max_length=1200,
        activation_checkpointing=False,
        bf16=False,
        dataloader_num_workers=0,
        max_steps=1,
        logging_steps=1,
    )
    trainer = DMPOTrainer(tiny_model, args=args, train_dataset=Dataset.from_list(rows))
    stats = trainer.data_stats["train"]
    assert stats["truncated_pairs"] == 1 and stats["shortened_observations"] > 0
    assert stats["skipped_too_long"] == 0
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "loss" in h)
    assert math.isfinite(logged["loss"])
    assert logged["data/truncated_pairs"] == 1.0 and logged["data/shortened_observations"] > 0
    assert logged["turns/chosen"] == 6.0  # every turn of the 6-turn chosen side present
