"""Turn fidelity: reasoning (``reasoning_content`` / inline ``<think>``) and native ``tool_calls`` go from the
policy server's reply into the trajectory, through ``ltenv export sft|pairs``, into the chat template's own
rendering in ``build_chat``/``build_turns``, and into SFT and DMPO with ``reasoning: train | mask``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ltenv.agents.policies import EpisodeContext, OpenAIPolicy, split_reasoning, wire_messages
from ltenv.train import ChatBuildError, build_chat, build_turns
from tests.support.openai_server import Reply, ScriptedOpenAIServer
from tests.train.think_model import build_think_model

ROOT = Path(__file__).resolve().parents[2]
CALL = {"id": "call_1", "type": "function", "function": {"name": "run", "arguments": '{"cmd": "ls /app"}'}}
CONV: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a terminal agent."},
    {"role": "user", "content": "Task: list /app"},
    {
        "role": "assistant",
        "content": "Listing.",
        "reasoning_content": "I should look first.",
        "tool_calls": [CALL],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "seed.txt"},
    {"role": "user", "content": "Anything else?"},
    {"role": "assistant", "content": "No, done.", "reasoning_content": "The listing answers it."},
]


@pytest.fixture
def openai_server() -> Any:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def think_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_think_model(tiny_model, tmp_path_factory.mktemp("think") / "model")


@pytest.fixture(scope="module")
def tok(think_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(think_model, local_files_only=True)


def _text(tok: Any, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=False)


def _labeled(tok: Any, ct: Any, turn: int) -> str:
    return _text(tok, [i for i, t in zip(ct.input_ids, ct.turn_index, strict=True) if t == turn])


# ------------------------------------------------------------------------------------------ rollouts


def test_policy_keeps_reasoning_and_tool_calls(openai_server: Any) -> None:
    from ltenv.tasks import Task

    ctx = EpisodeContext(task=Task.__new__(Task))
    openai_server.responder = [
        Reply("Listing.", reasoning_content="I should look first.", tool_calls=[CALL]),
        "<think>\nInline thoughts.\n</think>\n\nThe answer.",
        "R only</think>\n\nAfter an opened block.",
    ]
    policy = OpenAIPolicy("scripted", base_url=openai_server.base_url, api_key="k", backoff=0.01)
    first = policy.complete(CONV[:2], ctx)
    assert first.message() == {
        "role": "assistant",
        "content": "Listing.",
        "reasoning_content": "I should look first.",
        "tool_calls": [CALL],
    }
    # earlier reasoning and recorded tokens are not sent back (unless history_reasoning=True)
    history = [*CONV[:2], {**first.message(), "tokens": {"prompt_ids": [1]}}, CONV[3]]
    second = policy.complete(history, ctx)
    sent = openai_server.requests[1]["messages"][2]
    assert "tokens" not in sent and "reasoning_content" not in sent and sent["tool_calls"] == [CALL]
    assert (second.reasoning, second.text) == ("Inline thoughts.", "The answer.")
    assert (policy.complete(CONV[:2], ctx).reasoning) == "R only"
    assert split_reasoning("no think here") == (None, "no think here")
    assert wire_messages(history, reasoning=True)[2]["reasoning_content"] == "I should look first."


def test_token_ids_asked_but_not_returned_names_the_server(openai_server: Any) -> None:
    from ltenv.agents.policies import PolicyError
    from ltenv.tasks import Task

    openai_server.responder = ["no ids"]
    policy = OpenAIPolicy(
        "scripted", base_url=openai_server.base_url, api_key="k", backoff=0.01, return_token_ids=True
    )
    with pytest.raises(PolicyError, match=openai_server.base_url.replace(".", r"\.")):
        policy.complete(CONV[:2], EpisodeContext(task=Task.__new__(Task)))
    assert openai_server.requests[0]["return_token_ids"] is True


# ------------------------------------------------------------------------------------------ chat


def test_build_chat_renders_reasoning_and_tool_calls_as_the_template(tok: Any) -> None:
    ct = build_chat(tok, CONV)
    assert (
        ct.input_ids[: len(ct.input_ids) - 1]
        == tok(tok.apply_chat_template(CONV, tokenize=False))["input_ids"][: len(ct.input_ids) - 1]
    )
    # turn 0 precedes a later user message: the template drops its reasoning (counted as rewritten)
    assert (
        _labeled(tok, ct, 0)
        == 'Listing.\n<tool_call>\n{"name": "run", "arguments": {"cmd": "ls /app"}}\n</tool_call><|im_end|>'
    )
    assert _labeled(tok, ct, 1) == "<think>\nThe listing answers it.\n</think>\n\nNo, done.<|im_end|>"
    assert ct.rewritten_turns == 1
    # reasoning="mask": the think block stays in the input, unlabeled and outside every turn
    masked = build_chat(tok, CONV, reasoning="mask")
    assert masked.input_ids == ct.input_ids
    assert _labeled(tok, masked, 1) == "\n\nNo, done.<|im_end|>"
    think = [
        i for i, (lab, t) in enumerate(zip(ct.labels, ct.turn_index, strict=True)) if t == 1 and lab != -100
    ]
    assert all(masked.labels[i] == -100 for i in think[:5])
    # one sequence per turn keeps every turn's reasoning, each after the exact prompt the policy saw
    turns = build_turns(tok, CONV)
    assert _labeled(tok, turns[0], 0).startswith(
        "<think>\nI should look first.\n</think>\n\nListing.\n<tool_call>"
    )
    prompt0 = tok.apply_chat_template(CONV[:2], add_generation_prompt=True, tokenize=False)
    assert turns[0].input_ids[: turns[0].turn_starts[0]] == tok(prompt0)["input_ids"]
    with pytest.raises(ValueError, match="reasoning"):
        build_chat(tok, CONV, reasoning="drop")  # type: ignore[arg-type]
    # a turn with only tool calls is not empty; a turn with nothing is
    only_call = [*CONV[:2], {"role": "assistant", "content": None, "tool_calls": [CALL]}]
    assert build_chat(tok, only_call).n_turns == 1
    with pytest.raises(ChatBuildError, match="empty"):
        build_chat(tok, [*CONV[:2], {"role": "assistant", "content": ""}])


# ------------------------------------------------------------------------------------------ export


def _traj(reward: float, messages: list[dict[str, Any]], attempt: int) -> dict[str, Any]:
    return {
        "task": "list-app",
        "attempt": attempt,
        "reward": reward,
        "passed": reward == 1,
        "messages": messages,
    }


def test_export_keeps_reasoning_tool_calls_and_tokens(tmp_path: Path) -> None:
    from ltenv.data import export_pairs, export_sft, read_dataset

    rec = {"prompt_offset": 0, "prompt_ids": [1, 2, 3], "completion_ids": [4, 5], "logprobs": [-0.1, -0.2]}
    good = [*CONV[:2], {**CONV[2], "tokens": rec}, *CONV[3:]]
    bad = [*CONV[:2], {"role": "assistant", "content": "Giving up.", "reasoning_content": "Too hard."}]
    for suffix in ("jsonl", "parquet"):
        ds = export_sft([_traj(1.0, good, 0)], tmp_path / f"sft.{suffix}")
        back = read_dataset(tmp_path / f"sft.{suffix}")[0]["messages"]
        assert back[2]["reasoning_content"] == "I should look first." and back[2]["tool_calls"] == [CALL]
        assert back[2]["tokens"] == rec and back[3]["tool_call_id"] == "call_1"
        assert ds[0]["messages"][5]["reasoning_content"] == "The listing answers it."
    pairs = export_pairs([_traj(1.0, good, 0), _traj(0.0, bad, 1)], tmp_path / "pairs.jsonl")
    row = read_dataset(tmp_path / "pairs.jsonl")[0]
    assert pairs.num_rows == 1 and row["chosen"][0]["tool_calls"] == [CALL]
    assert row["rejected"][0]["reasoning_content"] == "Too hard."
    # a plain export keeps its {role, content} schema
    plain = export_sft(
        [_traj(1.0, [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], 0)]
    )
    assert list(plain[0]["messages"][1]) == ["role", "content"]
    # plain and rich files concatenate into one training set
    from datasets import concatenate_datasets

    from ltenv.data import align_messages

    export_sft(
        [_traj(1.0, [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], 0)],
        tmp_path / "plain.jsonl",
    )
    both = concatenate_datasets(
        align_messages([read_dataset(tmp_path / "plain.jsonl"), read_dataset(tmp_path / "sft.jsonl")])
    )
    assert both[0]["messages"][1]["tokens"] is None and both[1]["messages"][2]["tokens"] == rec
    with pytest.raises(ValueError, match="message 2: 'tokens'"):
        export_sft([_traj(1.0, [*CONV[:2], {**CONV[2], "tokens": {"prompt_ids": [1]}}], 0)])


# ------------------------------------------------------------------------------------------ trainers


def _sft_module() -> Any:
    spec = importlib.util.spec_from_file_location("ltenv_training_sft", ROOT / "training" / "sft.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_sft_and_dmpo_train_or_mask_the_reasoning(tok: Any) -> None:
    pytest.importorskip("trl")
    from datasets import Dataset

    from ltenv.train.dmpo import _tokenize_pair

    sft = _sft_module()
    ds = Dataset.from_list([{"messages": json.loads(json.dumps(CONV))}])
    kept, stats = sft.tokenize(ds, tok, max_length=None)
    assert stats["kept"] == 1 and stats["rewritten_turns"] == 1
    masked, _ = sft.tokenize(ds, tok, max_length=None, reasoning="mask")
    (ids,), (mask,), (mmask,) = kept["input_ids"], kept["assistant_masks"], masked["assistant_masks"]
    trained = _text(tok, [i for i, m in zip(ids, mask, strict=True) if m])
    trained_masked = _text(tok, [i for i, m in zip(ids, mmask, strict=True) if m])
    assert "The listing answers it." in trained and "The listing answers it." not in trained_masked
    # split_rewritten: one sequence per turn, every turn with its reasoning
    split, stats = sft.tokenize(ds, tok, max_length=None, split_rewritten=True)
    assert stats["split_rows"] == 1 and len(split) == 2
    first = _text(
        tok, [i for i, m in zip(split[0]["input_ids"], split[0]["assistant_masks"], strict=True) if m]
    )
    assert first.startswith("<think>\nI should look first.")

    row = {
        "prompt": CONV[:2],
        "chosen": CONV[2:],
        "rejected": [{"role": "assistant", "content": "No.", "reasoning_content": "Quick."}],
    }
    out = _tokenize_pair(row, 0, tok, None, 0.7, "paper", "error", reasoning="mask")
    assert out["dmpo_skip"] == "" and out["dmpo_rewritten"] == 1
    weighted = _text(
        tok, [i for i, w in zip(out["rejected_ids"], out["rejected_weights"], strict=True) if w > 0]
    )
    assert weighted == "\n\nNo.<|im_end|>"  # the reasoning has weight 0
    trained = _tokenize_pair(row, 0, tok, None, 0.7, "paper", "error")
    weighted = _text(
        tok, [i for i, w in zip(trained["rejected_ids"], trained["rejected_weights"], strict=True) if w > 0]
    )
    assert weighted == "<think>\nQuick.\n</think>\n\nNo.<|im_end|>"


def test_hf_policy_records_its_token_ids(think_model: Path, tok: Any) -> None:
    from ltenv.agents import HFPolicy
    from ltenv.tasks import Task
    from ltenv.trajectory import recorded_turns

    ctx = EpisodeContext(task=Task.__new__(Task))
    policy = HFPolicy(think_model, return_token_ids=True, max_new_tokens=6, temperature=0.0)
    try:
        first = policy.complete(CONV[:2], ctx)
        history = [*CONV[:2], first.message(), {"role": "user", "content": "New Terminal Output:\n$ "}]
        second = policy.complete(history, ctx)
    finally:
        policy.close()
    messages = [*history, second.message()]
    (p0, c0), (p1, _c1) = recorded_turns(messages)
    for prompt, msgs in ((p0, CONV[:2]), (p1, history)):
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert prompt == tok(text, add_special_tokens=False)["input_ids"]
    assert 0 < len(c0) <= 6 and second.tokens is not None
    # the second prompt is stored as what it shares with the first turn's sequence plus the rest
    assert p1[: second.tokens["prompt_offset"]] == (p0 + c0)[: second.tokens["prompt_offset"]]
    assert second.tokens["prompt_offset"] >= len(p0)
