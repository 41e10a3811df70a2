"""Token-exact data end to end: a loopback OpenAI-compatible server that returns token ids and log-probs
computed with the tiny tokenizer (as vLLM does for ``return_token_ids``), including one reply sampled as a
non-canonical split that re-tokenizing the text cannot give back. Real episodes on bwrap record the ids in
the trajectory; ``ltenv export`` keeps them and reports the drift; SFT trains on exactly the recorded ids
(a real step), and a DMPO step runs on a pair built from them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ltenv.agents import OpenAIPolicy, run_episode
from ltenv.trajectory import TrajectoryStore, recorded_turns
from tests.support.cli import run_ltenv
from tests.support.openai_server import Reply, ScriptedOpenAIServer
from tests.train.think_model import build_think_model

pytest.importorskip("trl")
pytestmark = [pytest.mark.bwrap, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
WRITE = 'echo "hello from $(cat /app/seed.txt)" > /app/greeting.txt'


def reply(*commands: str, complete: bool = False) -> str:
    cmds = [{"keystrokes": c + "\n", "duration": 0.1} for c in commands]
    return json.dumps({"analysis": "looking", "plan": "act", "commands": cmds, "task_complete": complete})


def spelled(tok: Any, text: str) -> list[int]:
    """``text``'s ids with its first multi-character token spelled out character by character: the same
    text, ids the tokenizer would never produce for it."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for k, piece in enumerate(tok.convert_ids_to_tokens(ids)):
        chars = tok.convert_tokens_to_ids(list(piece))
        if len(piece) > 1 and tok.unk_token_id not in chars and None not in chars:
            return [*ids[:k], *chars, *ids[k + 1 :]]
    raise AssertionError(f"nothing to spell out in {text!r}")


def serving(tok: Any, script: list[tuple[str, str | None, bool]]) -> Any:
    """A responder: turn ``t`` answers ``script[t]`` = (content, reasoning, sampled non-canonically), with
    the prompt ids as the server tokenizes its rendering of the request and the completion ids (reasoning
    block, content, ``<|im_end|>``)."""
    eot = tok.convert_tokens_to_ids("<|im_end|>")

    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        content, reasoning, odd = script[sum(m["role"] == "assistant" for m in messages)]
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        head = f"<think>\n{reasoning}\n</think>\n\n" if reasoning else ""
        body_ids = spelled(tok, content) if odd else tok(content, add_special_tokens=False)["input_ids"]
        ids = (
            tok(head, add_special_tokens=False)["input_ids"] + body_ids + [eot] if head else [*body_ids, eot]
        )
        return Reply(
            content,
            reasoning_content=reasoning,
            prompt_token_ids=tok(prompt, add_special_tokens=False)["input_ids"],
            token_ids=ids,
            logprobs=[-0.25] * len(ids),
        )

    return respond


@pytest.fixture(scope="module")
def think_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_think_model(tiny_model, tmp_path_factory.mktemp("think") / "model")


def _sft_module() -> Any:
    spec = importlib.util.spec_from_file_location("ltenv_training_sft", ROOT / "training" / "sft.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_recorded_token_ids_train_exactly(
    think_model: Path, fixture_task: Any, greeting_image: Any, store: Any, bwrap_ok: Any, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoTokenizer
    from trl import ModelConfig, SFTConfig

    from ltenv.data import export_pairs, export_sft, read_dataset
    from ltenv.train import build_chat
    from ltenv.train.dmpo import DMPOConfig, DMPOTrainer

    tok = AutoTokenizer.from_pretrained(think_model, local_files_only=True)
    task = fixture_task("write-greeting")
    runs = tmp_path / "run" / "trajectories.jsonl"
    scripts = {
        # solves the task; the final reply has reasoning and was sampled as a non-canonical split
        0: [(reply(WRITE, complete=True), None, False), (reply(complete=True), "Written and checked.", True)],
        # claims completion without doing anything
        1: [(reply("ls /app", complete=True), None, False), (reply(complete=True), None, False)],
    }
    with ScriptedOpenAIServer() as server:
        policy = OpenAIPolicy(
            "scripted", base_url=server.base_url, api_key="k", return_token_ids=True, logprobs=True
        )
        for attempt, script in scripts.items():
            server.responder = serving(tok, script)
            traj = run_episode(
                task,
                policy,
                backend="bwrap",
                image_store=store,
                attempt=attempt,
                env_kwargs={"command_timeout": 30},
            )
            TrajectoryStore(runs).append(traj)
        assert all(r["return_token_ids"] and r["logprobs"] for r in server.requests)
        assert all("tokens" not in m for r in server.requests for m in r["messages"])
    good, bad = list(TrajectoryStore(runs).read())
    assert (good.reward, bad.reward) == (1.0, 0.0), good.error
    turns = recorded_turns(good.messages)
    assert good.messages[-1]["reasoning_content"] == "Written and checked."
    assert good.messages[-1]["tokens"]["logprobs"] == [-0.25] * len(turns[-1][1])
    # the second turn's prompt is stored as the part after the first turn's prompt + completion
    assert good.messages[-1]["tokens"]["prompt_offset"] == len(turns[0][0]) + len(turns[0][1])
    expected = turns[0][0] + turns[0][1] + turns[1][0][len(turns[0][0]) + len(turns[0][1]) :] + turns[1][1]

    # export keeps the ids and reports the drift of re-tokenizing them
    sft_file = tmp_path / "sft.jsonl"
    proc = run_ltenv("export", "sft", runs.parent, "-o", sft_file, "--tokenizer", think_model)
    assert proc.returncode == 0, proc.stderr
    assert (
        "token ids recorded in 1 of 1 conversation(s); re-tokenizing them differs in 1 (100.0%), 1 of 2 turns (50.0%)"
        in proc.stdout
    )
    row = read_dataset(sft_file)[0]
    assert recorded_turns(row["messages"]) == turns

    retok = build_chat(tok, row["messages"], token_source="retokenize")
    assert retok.input_ids != expected and retok.drift_turns == 1

    sft = _sft_module()
    data = sft.SFTDataArguments(train_files=[str(sft_file)])
    config = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_length=2048,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        dataloader_num_workers=0,
        per_device_train_batch_size=1,
        max_steps=1,
        learning_rate=1e-3,
    )
    trainer = sft.build_trainer(
        data, config, ModelConfig(model_name_or_path=str(think_model), dtype="float32")
    )
    stats = trainer.data_stats["train"]
    assert (stats["recorded_rows"], stats["drift_rows"], stats["drift_turns"], stats["fallback_rows"]) == (
        1,
        1,
        1,
        0,
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["input_ids"][0].tolist() == expected
    trained = [i for i, lab in zip(expected, batch["labels"][0].tolist(), strict=True) if lab != -100]
    assert trained == turns[0][1] + turns[1][1]  # exactly the sampled ids
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters(), strict=True))

    # a DMPO step on the pair the two episodes make, both sides from their recorded ids
    pairs = export_pairs([good, bad], tmp_path / "pairs.jsonl")
    assert pairs.num_rows == 1
    export_sft([good])  # the export of recorded ids needs no tokenizer
    dmpo = DMPOTrainer(
        str(think_model),
        args=DMPOConfig(
            output_dir=str(tmp_path / "dmpo"),
            per_device_train_batch_size=1,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            max_length=2048,
            bf16=False,
            dataloader_num_workers=0,
            max_steps=1,
            logging_steps=1,
        ),
        train_dataset=read_dataset(tmp_path / "pairs.jsonl"),
    )
    # drift: the chosen side's non-canonical turn, and the rejected side's last turn, to which the Qwen3-style
    # template adds an empty think block the model never generated
    assert dmpo.data_stats["train"]["recorded_sides"] == 2 and dmpo.data_stats["train"]["drift_turns"] == 2
    assert dmpo.train_dataset[0]["chosen_ids"] == expected
    dmpo.train()
    logged = dmpo.state.log_history[0]
    assert logged["data/recorded_sides"] == 2.0 and "rewards/margins" in logged
