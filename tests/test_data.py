"""Dataset exports (SFT, multi-turn preference pairs), ShareGPT import, and token equality with what the
policy was given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltenv.data import (
    DataFormatError,
    ExportStats,
    export_pairs,
    export_sft,
    import_sharegpt,
    is_terminus_reply,
    load_trajectories,
    read_dataset,
)
from ltenv.trajectory import Step, Trajectory, TrajectoryStore
from tests.support.cli import run_ltenv as ltenv

INSTRUCTION = "Write 'hello' into /app/greeting.txt.\n\nroot@sandbox:/app# "


def reply(cmd: str, done: bool = False) -> str:
    return json.dumps(
        {
            "analysis": "Looking at the terminal.",
            "plan": f"Run {cmd!r}.",
            "commands": [{"keystrokes": cmd + "\n", "duration": 0.1}],
            "task_complete": done,
        }
    )


def traj(
    task: str = "write-greeting",
    attempt: int = 0,
    reward: float = 1.0,
    *,
    run: str = "r1",
    cmds: tuple[str, ...] = ("echo hello > greeting.txt",),
    system: str | None = "You are a terminal agent.",
    instruction: str = INSTRUCTION,
    domain: str | None = "coding",
    termination: str = "submitted",
    trailing_observation: bool = False,
    **kw,
) -> Trajectory:
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": instruction})
    steps = []
    for i, c in enumerate(cmds):
        messages.append({"role": "assistant", "content": reply(c, done=i == len(cmds) - 1)})
        if i < len(cmds) - 1 or trailing_observation:
            messages.append({"role": "user", "content": f"New Terminal Output:\n{c}\nroot@sandbox:/app# "})
        steps.append(Step(action=c, observation="", exit_code=0, turn=i))
    return Trajectory(
        run=run,
        task=task,
        attempt=attempt,
        reward=reward,
        passed=reward >= 1.0,
        domain=domain,
        difficulty="easy",
        messages=messages,
        steps=steps,
        termination=termination,
        policy="test",
        scaffold="terminus",
        **kw,
    )


def write_run(tmp_path: Path, name: str, trajs: list[Trajectory]) -> Path:
    d = tmp_path / name
    store = TrajectoryStore(d / "trajectories.jsonl")
    for t in trajs:
        store.append(t)
    return d


# ---------------------------------------------------------------------------------------------- loading


def test_load_trajectories_from_run_dir_file_and_objects(tmp_path):
    d = write_run(tmp_path, "run-a", [traj(run=""), traj(attempt=1, run="")])
    loaded = load_trajectories(d)
    assert [t.run for t in loaded] == ["run-a", "run-a"]  # the folder names the run
    mixed = load_trajectories([d / "trajectories.jsonl", traj(run="x"), traj(run="y").model_dump()])
    assert [t.run for t in mixed] == ["run-a", "run-a", "x", "y"]
    with pytest.raises(FileNotFoundError, match="nope"):
        load_trajectories(tmp_path / "nope")


def test_old_records_load_with_a_derived_verifier_status(tmp_path):
    """Records written before ``verifier_status`` existed still load: one that carries a verifier error reads
    as ``verifier_error``, any other as ``ok``; a recorded status survives a round trip."""
    path = tmp_path / "old" / "trajectories.jsonl"
    path.parent.mkdir()
    old = traj(attempt=0).model_dump(mode="json")
    broken = traj(attempt=1, reward=0.0).model_dump(mode="json")
    broken["verifier_error"] = "the verifier wrote no /logs/verifier/reward.txt or reward.json"
    for rec in (old, broken):
        del rec["verifier_status"]
    path.write_text("".join(json.dumps(r) + "\n" for r in (old, broken)))
    assert "verifier_status" not in path.read_text()
    loaded = load_trajectories(path.parent)
    assert [(t.attempt, t.verifier_status, t.verified) for t in loaded] == [
        (0, "ok", True),
        (1, "verifier_error", False),
    ]
    store = TrajectoryStore(tmp_path / "new.jsonl")
    store.append(traj(attempt=2, verifier_status="tampered", verifier_error="reward file rewritten"))
    store.append(traj(attempt=3, verifier_status="ok"))
    assert [t.verifier_status for t in store.read(strict=True)] == ["tampered", "ok"]


# ---------------------------------------------------------------------------------------------- SFT


def test_export_sft_filters_and_columns(tmp_path):
    trajs = [
        traj(attempt=0, reward=1.0),
        traj(attempt=1, reward=0.0, cmds=("ls",)),
        traj(attempt=2, reward=0.5, cmds=("pwd",)),
        traj(task="other", attempt=0, reward=1.0, domain="security", cmds=("id", "whoami", "true")),
        traj(task="infra", reward=1.0, termination="sandbox_error", cmds=("uname",)),
    ]
    ds = export_sft(trajs)
    assert sorted(ds["task"]) == ["other", "write-greeting"]
    row = ds[ds["task"].index("write-greeting")]
    assert row["messages"] == [{"role": m["role"], "content": m["content"]} for m in trajs[0].messages]
    assert row["attempt"] == 0 and row["reward"] == 1.0 and row["run"] == "r1" and row["turns"] == 1
    assert set(ds.column_names) >= {"messages", "task", "attempt", "reward", "run", "domain"}
    # TRL keys with meaning of their own must not appear as metadata
    assert not set(ds.column_names) & {
        "prompt",
        "completion",
        "text",
        "tools",
        "images",
        "chat_template_kwargs",
    }

    assert sorted(export_sft(trajs, min_reward=0.5)["attempt"]) == [0, 0, 2]
    assert export_sft(trajs, domains=["security"])["task"] == ["other"]
    assert export_sft(trajs, max_turns=2)["task"] == ["write-greeting"]
    assert export_sft(trajs, min_reward=2.0).num_rows == 0
    assert export_sft(trajs, min_reward=2.0).column_names == ds.column_names  # schema even when empty


def test_export_sft_dedupes_identical_conversations():
    trajs = [traj(attempt=0), traj(attempt=1), traj(attempt=2, cmds=("printf hello > greeting.txt",))]
    assert export_sft(trajs)["attempt"] == [0, 2]
    assert export_sft(trajs, dedupe=False)["attempt"] == [0, 1, 2]


def test_export_sft_ends_on_assistant_turn():
    t = traj(cmds=("a", "b"), trailing_observation=True)
    assert t.messages[-1]["role"] == "user"
    msgs = export_sft([t])[0]["messages"]
    assert msgs[-1]["role"] == "assistant" and msgs == t.messages[:-1]
    # an episode with no reply at all has nothing to learn from
    empty = Trajectory(task="x", reward=1.0, passed=True, messages=[{"role": "user", "content": "hi"}])
    assert export_sft([empty]).num_rows == 0


def test_export_sft_never_exports_tampered_or_unverified_episodes(tmp_path, caplog):
    """A tampered episode is no SFT example even where its record says reward 1 (and passed), nor is one
    whose verifier failed; the exclusions are counted, and logged when the caller does not ask for them."""
    good = traj(attempt=0, reward=1.0)
    cheat = traj(
        attempt=1, reward=1.0, cmds=("echo 1 > /logs/verifier/reward.txt",), verifier_status="tampered"
    )
    timed_out = traj(
        attempt=2,
        reward=1.0,
        cmds=("printf hello > greeting.txt",),
        verifier_error="verifier timed out after 120s ([verifier] timeout_sec)",
    )
    infra = traj(attempt=3, reward=1.0, cmds=("uname",), termination="sandbox_error")
    assert cheat.passed and cheat.reward == 1.0 and timed_out.verifier_status == "verifier_error"
    run = write_run(tmp_path, "run", [good, cheat, timed_out, infra])

    stats = ExportStats()
    ds = export_sft(run, tmp_path / "sft.jsonl", stats=stats)
    assert ds["attempt"] == [0] and read_dataset(tmp_path / "sft.jsonl")["attempt"] == [0]
    assert stats.episodes == 4
    assert stats.excluded == {"tampered": 1, "verifier_error": 1, "sandbox_error": 1}
    assert stats.summary() == "excluded 3 episode(s): 1 sandbox_error, 1 tampered, 1 verifier_error"
    # a lower bar lets nothing untrusted in either
    assert export_sft([good, cheat, timed_out], min_reward=0.0, dedupe=False)["attempt"] == [0]

    with caplog.at_level("WARNING", logger="ltenv.data"):
        export_sft([good, cheat])
    assert "excluded 1 episode(s): 1 tampered" in caplog.text


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_sft_roundtrip_files(tmp_path, suffix):
    weird = 'naïve ✓ "quotes" \\ back\r\n\ttab  trailing   \n\n<script>alert(1)</script>\x1b[0m'
    trajs = [traj(instruction=weird), traj(task="b", system=None, cmds=("", "echo ''"))]
    out = tmp_path / f"sft{suffix}"
    ds = export_sft(trajs, out)
    back = read_dataset(out)
    assert back.num_rows == 2
    for a, b in zip(ds, back, strict=True):
        assert a["messages"] == b["messages"]
        assert list(b["messages"][0]) == ["role", "content"]
    assert back[0]["messages"][1]["content"] == weird
    with pytest.raises(ValueError, match="unsupported"):
        export_sft(trajs, tmp_path / "sft.csv")


# ---------------------------------------------------------------------------------------------- pairs


def test_export_pairs_schema_and_order():
    trajs = [
        traj(attempt=0, reward=0.0, cmds=("ls", "cat x")),
        traj(attempt=1, reward=1.0, cmds=("echo hello > greeting.txt",)),
        traj(attempt=2, reward=0.5, cmds=("echo hi > greeting.txt",)),
        traj(attempt=3, reward=1.0, cmds=("printf hello > greeting.txt",)),  # ties with attempt 1: no pair
    ]
    ds = export_pairs(trajs)
    got = sorted(zip(ds["chosen_attempt"], ds["rejected_attempt"], strict=True))
    assert got == [(1, 0), (1, 2), (2, 0), (3, 0), (3, 2)]
    row = ds[0]
    assert row["prompt"] == trajs[0].messages[:2]  # system + first user message
    assert row["chosen"][0]["role"] == "assistant" and row["chosen"][-1]["role"] == "assistant"
    assert row["rejected"][0]["role"] == "assistant"
    rej = next(r for r in ds if r["chosen_attempt"] == 1 and r["rejected_attempt"] == 0)
    assert [m["role"] for m in rej["rejected"]] == ["assistant", "user", "assistant"]  # multi-turn
    assert rej["rejected"] == trajs[0].messages[2:]
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in ds)
    assert all(r["margin"] == pytest.approx(r["chosen_reward"] - r["rejected_reward"]) for r in ds)


def test_export_pairs_margin_cap_seed_and_grouping():
    trajs = [traj(attempt=i, reward=r, cmds=(f"cmd{i}",)) for i, r in enumerate([0.0, 0.25, 0.5, 1.0, 1.0])]
    assert len(export_pairs(trajs)) == 9  # 10 pairs of 5, minus the tie
    big = export_pairs(trajs, min_margin=0.5)
    assert sorted(zip(big["chosen_attempt"], big["rejected_attempt"], strict=True)) == [
        (2, 0),
        (3, 0),
        (3, 1),
        (3, 2),
        (4, 0),
        (4, 1),
        (4, 2),
    ]
    a = export_pairs(trajs, max_pairs_per_task=3, seed=7)
    b = export_pairs(list(trajs), max_pairs_per_task=3, seed=7)
    assert len(a) == 3 and a.to_list() == b.to_list()  # deterministic given the seed
    seeds = {tuple(export_pairs(trajs, max_pairs_per_task=3, seed=s)["rejected_attempt"]) for s in range(8)}
    assert len(seeds) > 1  # the seed matters
    # different tasks and different prompts never pair
    other_task = traj(task="t2", attempt=0, reward=0.0)
    other_prompt = traj(attempt=9, reward=0.0, instruction="a different instruction")
    ds = export_pairs([trajs[3], other_task, other_prompt])
    assert len(ds) == 0
    # per-task cap
    two = trajs + [traj(task="t2", attempt=i, reward=float(i % 2), cmds=(f"x{i}",)) for i in range(4)]
    ds = export_pairs(two, max_pairs_per_task=2)
    assert sorted(ds["task"]) == ["t2", "t2", "write-greeting", "write-greeting"]


def test_export_pairs_skip_infra_failures_and_roundtrip(tmp_path):
    trajs = [
        traj(attempt=0, reward=1.0),
        traj(attempt=1, reward=0.0, termination="sandbox_error", cmds=("x",)),
    ]
    assert len(export_pairs(trajs)) == 0
    trajs.append(traj(attempt=2, reward=0.0, termination="parse_error", cmds=("y",)))
    out = tmp_path / "pairs.parquet"
    ds = export_pairs(trajs, out)
    assert len(ds) == 1 and ds[0]["rejected_attempt"] == 2
    assert read_dataset(out).to_list() == ds.to_list()


def test_export_pairs_tampered_only_rejected_and_unverified_excluded(tmp_path):
    """A tampered episode is never chosen, whatever reward it records: it may only be rejected, as reward 0.
    An episode whose verifier failed is in no pair at all."""
    honest_pass = traj(attempt=0, reward=1.0, cmds=("echo hello > greeting.txt",))
    honest_fail = traj(attempt=1, reward=0.0, cmds=("ls",))
    cheat = traj(
        attempt=2, reward=1.0, cmds=("echo 1 > /logs/verifier/reward.txt",), verifier_status="tampered"
    )
    unverified = traj(attempt=3, reward=0.5, cmds=("pwd",), verifier_error="reward.txt is malformed")
    run = write_run(tmp_path, "run", [honest_pass, honest_fail, cheat, unverified])

    stats = ExportStats()
    ds = export_pairs(run, stats=stats)
    got = sorted(zip(ds["chosen_attempt"], ds["rejected_attempt"], strict=True))
    assert got == [(0, 1), (0, 2)]
    row = next(r for r in ds if r["rejected_attempt"] == 2)
    assert row["rejected_reward"] == 0.0 and row["margin"] == 1.0 and row["chosen_reward"] == 1.0
    assert row["rejected"] == cheat.messages[2:]
    assert stats.excluded == {"verifier_error": 1} and stats.rejected_only == {"tampered": 1}
    assert stats.summary() == "excluded 1 episode(s): 1 verifier_error; 1 tampered as rejected only"
    # on its own beside a failure, the cheat makes no pair: it cannot be chosen
    assert len(export_pairs([cheat, honest_fail])) == 0
    # an infrastructure failure stays out even when tampered
    crashed = traj(
        attempt=4, reward=0.0, cmds=("x",), verifier_status="tampered", termination="sandbox_error"
    )
    stats = ExportStats()
    assert export_pairs([honest_pass, crashed], stats=stats).num_rows == 0
    assert stats.excluded == {"tampered": 1} and not stats.rejected_only


# ---------------------------------------------------------------------------------------------- ShareGPT


def test_import_sharegpt(tmp_path):
    good = {
        "conversations": [
            {"from": "system", "value": "sys"},
            {"from": "human", "value": "task"},
            {"from": "gpt", "value": reply("ls")},
            {"from": "human", "value": "out"},
            {"from": "gpt", "value": "```json\n" + reply("true", done=True) + "\n```"},
        ]
    }
    plain = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "just text"}]}
    rows = [
        json.dumps(good),
        json.dumps(plain),
        json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "x"}]}),
        json.dumps({"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "x"}]}),
        json.dumps({"messages": []}),
        "{not json",
        json.dumps({"conversations": [{"from": "human", "value": "only a question"}]}),
    ]
    src = tmp_path / "sft.jsonl"
    src.write_text("\n".join(rows) + "\n")
    errors: list[DataFormatError] = []
    ds = import_sharegpt(src, tmp_path / "out.jsonl", errors=errors)
    assert ds.num_rows == 2
    assert ds[0]["messages"][0] == {"role": "system", "content": "sys"}
    assert [m["role"] for m in ds[0]["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert ds["terminus"] == [True, False] and ds["source_row"] == [1, 2]
    msgs = [str(e) for e in errors]
    assert [e.row for e in errors] == [3, 4, 5, 6, 7]
    assert "sft.jsonl: row 3: conversations[1].from: unknown speaker 'robot'" in msgs[0]
    assert "row 4: conversations[0].value: expected a string, got int" in msgs[1]
    assert "row 5: conversations: missing" in msgs[2]
    assert "row 6: (row): not valid JSON" in msgs[3]
    assert "row 7: conversations: no gpt (assistant) turn" in msgs[4]
    assert read_dataset(tmp_path / "out.jsonl")["messages"] == ds["messages"]
    with pytest.raises(DataFormatError, match=r"sft.jsonl: row 3: conversations\[1\].from"):
        import_sharegpt(src, strict=True)


def test_import_sharegpt_parquet_and_json_array(tmp_path):
    from datasets import Dataset

    recs = [
        {
            "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": reply("ls")}],
            "id": "a",
        },
        {"conversations": [{"from": "gpt", "value": "x"}], "id": "b"},
    ]
    Dataset.from_list(recs).to_parquet(str(tmp_path / "in.parquet"))
    errors: list[DataFormatError] = []
    ds = import_sharegpt(tmp_path / "in.parquet", errors=errors)
    assert ds.num_rows == 1 and ds[0]["terminus"] is True
    assert (
        len(errors) == 1
        and errors[0].row == 1
        and "first non-system turn must be from human" in str(errors[0])
    )
    (tmp_path / "in.json").write_text(json.dumps(recs))
    assert import_sharegpt(tmp_path / "in.json").num_rows == 1


def test_is_terminus_reply():
    assert is_terminus_reply(reply("ls"))
    assert is_terminus_reply("Here you go:\n" + reply("ls") + "\nthanks")
    assert not is_terminus_reply("ls -la")
    assert not is_terminus_reply('{"foo": 1}')
    assert not is_terminus_reply("[1, 2]")


# ---------------------------------------------------------------------------------------------- token equality

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set content = message['content'] %}"
    "{%- if message['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _chatml_tokenizer():
    """A small byte-level BPE tokenizer with a Qwen-style (ChatML) chat template, trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [reply(c) for c in ("ls -la", "cat greeting.txt", "echo hello > greeting.txt")] + [
        INSTRUCTION
    ] * 3
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )


@pytest.fixture(scope="module", params=["chatml", "tiny_qwen3"])
def tokenizer(request, tmp_path_factory):
    if request.param == "chatml":
        return _chatml_tokenizer()
    try:
        from ltenv.models.tiny import build_tiny_qwen3
    except ImportError as e:
        pytest.skip(f"ltenv.models.tiny not available: {e}")
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny")
    build_tiny_qwen3(path)
    return AutoTokenizer.from_pretrained(path)


def _recorded_episode(tokenizer, task: str, attempt: int, reward: float) -> tuple[Trajectory, list[str]]:
    """Play an episode with a recording policy: each turn the policy renders the chat it is given with the
    tokenizer's template (as HFPolicy does) and replies; return the trajectory and the recorded prompts."""
    messages = [
        {"role": "system", "content": "You are an AI assistant solving tasks in a Linux terminal.  "},
        {"role": "user", "content": INSTRUCTION + " naïve ✓ \r\n\t<script>x</script>  "},
    ]
    prompts = []
    replies = [
        "<think>\nlet me look\n</think>\n\n" + reply("ls -la"),
        reply("echo hello > greeting.txt") + "\n",
        "  " + reply("cat greeting.txt", done=True),
    ]
    for i, r in enumerate(replies):
        prompts.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        messages.append({"role": "assistant", "content": r})
        if i < len(replies) - 1:
            messages.append(
                {"role": "user", "content": f"New Terminal Output:\n\nroot@sandbox:/app# {i}  \n"}
            )
    t = Trajectory(
        task=task, attempt=attempt, reward=reward, passed=reward >= 1, messages=messages, domain="coding"
    )
    return t, prompts


def _assert_prompts_equal(tokenizer, messages: list[dict], prompts: list[str]) -> None:
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    assert len(turns) == len(prompts)
    for i, prompt in zip(turns, prompts, strict=True):
        exported = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True)["input_ids"]
        given = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert exported == given


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_token_equality_sft_and_pairs(tmp_path, suffix, tokenizer):
    good, good_prompts = _recorded_episode(tokenizer, "t", 0, 1.0)
    bad, bad_prompts = _recorded_episode(tokenizer, "t", 1, 0.0)
    bad.messages[-1]["content"] = reply("rm -rf /", done=True)  # a different last reply, same prompts
    run = write_run(tmp_path, "run", [good, bad])

    export_sft(run, tmp_path / f"sft{suffix}")
    ds = read_dataset(tmp_path / f"sft{suffix}")
    assert ds.num_rows == 1
    _assert_prompts_equal(tokenizer, ds[0]["messages"], good_prompts)

    export_pairs(run, tmp_path / f"pairs{suffix}")
    pairs = read_dataset(tmp_path / f"pairs{suffix}")
    assert pairs.num_rows == 1
    row = pairs[0]
    _assert_prompts_equal(tokenizer, row["prompt"] + row["chosen"], good_prompts)
    _assert_prompts_equal(tokenizer, row["prompt"] + row["rejected"], bad_prompts)


def test_token_equality_detects_altered_messages(tokenizer):
    """The check above can fail: an export that touched whitespace would not match."""
    t, prompts = _recorded_episode(tokenizer, "t", 0, 1.0)
    altered = [{"role": m["role"], "content": m["content"].strip()} for m in t.messages]
    with pytest.raises(AssertionError):
        _assert_prompts_equal(tokenizer, altered, prompts)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_export_and_import(tmp_path):
    run = write_run(
        tmp_path,
        "run",
        [
            traj(attempt=0, reward=1.0),
            traj(attempt=1, reward=0.0, cmds=("ls",)),
            traj(task="sec", attempt=0, reward=1.0, domain="security", cmds=("id",)),
        ],
    )
    proc = ltenv("export", "sft", run, "--out", tmp_path / "sft.parquet")
    assert proc.returncode == 0, proc.stderr
    assert "2 example(s) (2 task(s)) from 3 episode(s)" in proc.stdout
    assert read_dataset(tmp_path / "sft.parquet").num_rows == 2
    proc = ltenv(
        "export", "sft", run / "trajectories.jsonl", "--out", tmp_path / "s.jsonl", "--domain", "security"
    )
    assert proc.returncode == 0, proc.stderr
    assert read_dataset(tmp_path / "s.jsonl")["task"] == ["sec"]

    proc = ltenv("export", "pairs", run, "--out", tmp_path / "pairs.jsonl", "--min-margin", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "1 pair(s) (1 task(s))" in proc.stdout
    row = read_dataset(tmp_path / "pairs.jsonl")[0]
    assert row["chosen_attempt"] == 0 and row["rejected_attempt"] == 1

    cheats = write_run(
        tmp_path,
        "cheats",
        [
            traj(attempt=0, reward=1.0),
            traj(
                attempt=1,
                reward=1.0,
                cmds=("echo 1 > /logs/verifier/reward.txt",),
                verifier_status="tampered",
            ),
        ],
    )
    proc = ltenv("export", "sft", cheats, "--out", tmp_path / "c.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert "1 example(s) (1 task(s)) from 2 episode(s)" in proc.stdout
    assert "excluded 1 episode(s): 1 tampered" in proc.stdout
    proc = ltenv("export", "pairs", cheats, "--out", tmp_path / "cp.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert "1 pair(s)" in proc.stdout and "1 tampered as rejected only" in proc.stdout
    assert read_dataset(tmp_path / "cp.jsonl")["rejected_attempt"] == [1]

    assert ltenv("export", "sft", run, "--out", tmp_path / "x.csv").returncode == 2
    proc = ltenv("export", "sft", tmp_path / "missing", "--out", tmp_path / "x.jsonl")
    assert proc.returncode == 2 and "missing" in proc.stderr

    src = tmp_path / "share.jsonl"
    src.write_text(
        json.dumps(
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": reply("ls")}]}
        )
        + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]})
        + "\n"
    )
    proc = ltenv("import", "sharegpt", src, "--out", tmp_path / "imported.parquet")
    assert proc.returncode == 0, proc.stderr
    assert "1 conversation(s) (1 in Terminus-2 JSON), 1 skipped" in proc.stdout
    assert "row 2: conversations[1].value: missing" in proc.stderr
    proc = ltenv("import", "sharegpt", src, "--out", tmp_path / "strict.jsonl", "--strict")
    assert proc.returncode == 1 and "row 2: conversations[1].value: missing" in proc.stderr


@pytest.mark.slow
def test_exports_train_with_trl(tmp_path):
    """The exported files, metadata columns included, load into TRL 1.16's SFTTrainer (assistant-only
    loss over all turns) and DPOTrainer, and a couple of steps run on a tiny local Qwen3."""
    pytest.importorskip("trl")
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from ltenv.models.tiny import build_tiny_qwen3

    model = build_tiny_qwen3(tmp_path / "tiny")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    trajs = [
        traj(attempt=0, reward=1.0, cmds=("echo hello > greeting.txt", "cat greeting.txt")),
        traj(attempt=1, reward=0.0, cmds=("ls",)),
    ]
    export_sft(trajs, tmp_path / "sft.parquet")
    export_pairs(trajs, tmp_path / "pairs.jsonl")
    common = {"max_steps": 1, "per_device_train_batch_size": 1, "report_to": [], "use_cpu": True}
    sft = SFTTrainer(
        model=str(model),
        args=SFTConfig(
            output_dir=str(tmp_path / "sft"), assistant_only_loss=True, save_strategy="no", **common
        ),
        train_dataset=read_dataset(tmp_path / "sft.parquet"),
        processing_class=tok,
    )
    assert sft.train().training_loss > 0
    dpo = DPOTrainer(
        model=str(model),
        args=DPOConfig(output_dir=str(tmp_path / "dpo"), save_strategy="no", **common),
        train_dataset=read_dataset(tmp_path / "pairs.jsonl"),
        processing_class=tok,
    )
    assert dpo.train().training_loss > 0
