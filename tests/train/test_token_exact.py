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


@pytest.mark.bwrap
@pytest.mark.docker
def test_recorded_token_ids_train_exactly(
    think_model: Path, fixture_task: Any, greeting_image: Any, store: Any, bwrap_ok: Any, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoTokenizer
    from trl import ModelConfig, SFTConfig

    from ltenv.data import read_dataset
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
    proc = run_ltenv(
        "export", "pairs", runs.parent, "-o", tmp_path / "pairs.jsonl", "--tokenizer", think_model
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 pair(s)" in proc.stdout and "differs in 2 (100.0%), 2 of 4 turns (50.0%)" in proc.stdout
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


def _recorded(tok: Any, messages: list[dict[str, Any]], rewrite: bool = False) -> list[dict[str, Any]]:
    """``messages`` with ``tokens`` records as a server would return them. Each completion is the turn as
    the template renders the newest message (reasoning included). Each prompt is, with ``rewrite``, the
    tokenization of the template's rendering (which drops earlier reasoning: the prompts no longer extend
    each other), else the previous sequence as sampled followed by the new messages (a client that keeps
    the token sequence and only tokenizes what was added)."""
    from ltenv.trajectory import last_sequence, token_record

    def enc(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    header = "<|im_start|>assistant"
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] != "assistant":
            out.append(m)
            continue
        prompt_text = tok.apply_chat_template(out, add_generation_prompt=True, tokenize=False)
        alone = tok.apply_chat_template([*out, m], tokenize=False)
        completion = alone[len(prompt_text) : alone.rindex("<|im_end|>") + len("<|im_end|>")]
        previous = last_sequence(out)
        if rewrite or not previous:
            prompt = enc(prompt_text)
        else:
            last = prompt_text.rindex(header, 0, len(prompt_text) - len(header) - 1)
            added = prompt_text[prompt_text.index("<|im_end|>", last) + len("<|im_end|>") :]
            prompt = previous + enc(added)
        out.append({**m, "tokens": token_record(previous, prompt, enc(completion))})
    return out


def test_recorded_ids_consistency_fallback_and_errors(think_model: Path) -> None:
    from transformers import AutoTokenizer

    from ltenv.train import ChatBuildError, build_chat, build_turns
    from ltenv.train.tokens import drift_report
    from ltenv.trajectory import recorded_turns

    tok = AutoTokenizer.from_pretrained(think_model, local_files_only=True)
    conv = [
        {"role": "system", "content": "You are a terminal agent."},
        {"role": "user", "content": "Task: list /app"},
        {"role": "assistant", "content": reply("ls /app"), "reasoning_content": "Look first."},
        {"role": "user", "content": "New Terminal Output:\nseed.txt"},
        {"role": "assistant", "content": reply(complete=True), "reasoning_content": "Done."},
    ]
    # the server re-renders history without the old reasoning: the recorded prompts do not extend each other
    rewritten = _recorded(tok, conv, rewrite=True)
    ct = build_chat(tok, rewritten)
    assert (
        ct.token_source == "retokenized" and "does not start with the previous turn's tokens" in ct.fallback
    )
    with pytest.raises(ChatBuildError, match="recorded token ids unusable"):
        build_chat(tok, rewritten, token_source="recorded")
    # one sequence per turn is still exact: each turn's recorded prompt + completion, reasoning included
    per_turn = build_turns(tok, rewritten)
    for (prompt, completion), x in zip(recorded_turns(rewritten), per_turn, strict=True):
        assert x.token_source == "recorded" and x.input_ids == prompt + completion
        assert [i for i, lab in zip(x.input_ids, x.labels, strict=True) if lab != -100] == completion
    masked = build_turns(tok, rewritten, reasoning="mask")[0]
    trained = tok.decode([i for i, lab in zip(masked.input_ids, masked.labels, strict=True) if lab != -100])
    assert trained.startswith("\n\n{") and "Look first." not in trained
    # a consistent recording is used as one sequence; masking its reasoning keeps the ids
    kept = _recorded(tok, conv)
    one = build_chat(tok, kept, token_source="recorded")
    turns = recorded_turns(kept)
    assert one.input_ids == turns[1][0] + turns[1][1] and one.n_turns == 2
    assert kept[4]["tokens"]["prompt_offset"] == len(turns[0][0]) + len(turns[0][1])
    assert "Look first." in tok.decode(one.input_ids) and one.drift_turns == 1  # re-tokenizing drops it
    mask = build_chat(tok, kept, token_source="recorded", reasoning="mask")
    assert mask.input_ids == one.input_ids
    assert "Look first." not in tok.decode(
        [i for i, lab in zip(mask.input_ids, mask.labels, strict=True) if lab != -100]
    )
    # ids from another tokenizer, a turn without a record
    alien = json.loads(json.dumps(kept))
    alien[2]["tokens"]["completion_ids"][0] = len(tok) + 7
    with pytest.raises(ChatBuildError, match="outside the tokenizer"):
        build_chat(tok, alien, token_source="recorded")
    partial = [*kept[:4], conv[4]]
    assert "[1] have no recorded token ids" in build_chat(tok, partial).fallback
    with pytest.raises(ChatBuildError, match="not every assistant turn"):
        build_chat(tok, conv, token_source="recorded")
    report = drift_report(tok, [kept, rewritten, conv, alien])
    assert (report.rows, report.recorded_rows, report.inconsistent_rows) == (4, 2, 1)
    assert sum(report.errors.values()) == 1 and "not compared" in report.summary()


def test_sft_counts_fallbacks_and_splits_inconsistent_recordings(think_model: Path) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from ltenv.trajectory import recorded_turns

    tok = AutoTokenizer.from_pretrained(think_model, local_files_only=True)
    conv = [
        {"role": "user", "content": "Task: list /app"},
        {"role": "assistant", "content": reply("ls /app"), "reasoning_content": "Look first."},
        {"role": "user", "content": "New Terminal Output:\nseed.txt"},
        {"role": "assistant", "content": reply(complete=True), "reasoning_content": "Done."},
    ]
    rewritten = _recorded(tok, conv, rewrite=True)
    ds = Dataset.from_list([{"messages": rewritten}, {"messages": _recorded(tok, conv)}])
    sft = _sft_module()
    _, stats = sft.tokenize(ds, tok, max_length=None)
    assert (stats["recorded_rows"], stats["fallback_rows"], stats["compared_rows"]) == (1, 1, 2)
    split, stats = sft.tokenize(ds, tok, max_length=None, split_rewritten=True)
    assert (stats["recorded_rows"], stats["fallback_rows"], stats["split_rows"]) == (2, 0, 1)
    prompt, completion = recorded_turns(rewritten)[0]
    assert split[0]["input_ids"] == prompt + completion
    _, stats = sft.tokenize(ds, tok, max_length=None, token_source="retokenize")
    assert (stats["recorded_rows"], stats["compared_rows"], stats["drift_rows"]) == (0, 2, 2)
