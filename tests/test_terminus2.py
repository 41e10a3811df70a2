"""The ``terminus-2`` scaffold: Terminal-Bench's Terminus-2 protocol in keys mode (raw keystrokes into a
live terminal, then a wait), driven by a scripted model behind a real OpenAI-compatible server on
127.0.0.1, on real sandboxes; and keys mode through ``ltenv play --keys`` and ``ltenv rollout``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltenv.agents import OpenAIPolicy, get_scaffold, run_episode
from ltenv.agents.scaffolds import (
    NEW_OUTPUT_HEADER,
    SCREEN_HEADER,
    TERMINUS2_MAX_DURATION,
    ActionResult,
    ParseError,
    limit_output,
)
from ltenv.cli import key_spec_actions
from ltenv.data import export_sft
from ltenv.trajectory import TrajectoryStore
from tests.support.cli import run_ltenv
from tests.support.openai_server import ErrorReply, openai_server  # noqa: F401  (fixture)

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
PROMPT = "root@sandbox:/app#"


def reply(*commands: str | tuple[str, float], complete: bool = False) -> str:
    """A Terminus-2 reply; a command is keystrokes, or (keystrokes, duration)."""
    cmds = [
        {"keystrokes": c, "duration": 0.2}
        if isinstance(c, str)
        else dict(zip(("keystrokes", "duration"), c, strict=False))
        for c in commands
    ]
    return json.dumps({"analysis": "a", "plan": "p", "commands": cmds, "task_complete": complete})


def policy(server) -> OpenAIPolicy:
    return OpenAIPolicy("scripted", base_url=server.base_url, api_key="x", max_retries=0, backoff=0.01)


def last_user(request: dict) -> str:
    return request["messages"][-1]["content"]


# ------------------------------------------------------------------------------------ the protocol


def test_parse_keystrokes_durations_and_warnings():
    sc = get_scaffold("terminus-2")
    assert sc.action_mode == "keys" and sc.confirm_completion
    p = sc.parse(
        "Sure:\n```json\n"
        + json.dumps(
            {
                "analysis": "x",
                "plan": "y",
                "commands": [
                    {"keystrokes": "vim a.txt\n", "duration": 0.5},
                    {"keystrokes": "C-c"},
                    {"keystrokes": "echo a", "duration": 600},
                    {"keystrokes": "Escape", "duration": 0.1},
                ],
                "task_complete": "false",
            }
        )
        + "\n```"
    )
    assert [(a.command, a.timeout) for a in p.actions] == [
        ("vim a.txt\n", 0.5),  # raw: the newline is Enter
        ("C-c", 1.0),  # a tmux key name, sent as the key; default duration
        ("echo a", TERMINUS2_MAX_DURATION),  # capped
        ("Escape", 0.1),
    ]
    assert not p.complete and (p.analysis, p.plan) == ("x", "y")
    w = "\n".join(p.warnings)
    assert "text before the JSON object" in w
    assert 'commands[1]: no "duration"' in w
    assert "duration 600 s capped at 60 s" in w
    assert "commands[2] does not end with a newline but another command follows" in w
    assert "commands[1] does not end" not in w  # a key name is complete on its own
    for bad, msg in [
        ('{"analysis": "", "commands": []}', "missing required fields: plan"),
        ("no json here", "no JSON object"),
        (
            '{"analysis": "", "plan": "", "commands": [{"duration": 1}]}',
            'missing required field "keystrokes"',
        ),
        ('{"analysis": "", "plan": "", "commands": [{"keystrokes": "ls\\n", "duration": -1}]}', ">= 0"),
        ('{"analysis": "", "plan": "", "commands": "ls"}', "must be an array"),
    ]:
        with pytest.raises(ParseError, match=msg):
            sc.parse(bad)
    assert sc.parse('{"analysis": "", "plan": "", "task_complete": true}').complete  # commands optional then
    assert sc.parse(sc.render_reply(["ls", "C-d"], timeout=3)).actions[1].command == "C-d"


def test_observations_output_limits_and_confirmation():
    sc = get_scaffold("terminus-2")
    first = sc.initial_messages("Do the thing.", f"{PROMPT} ")
    assert [m["role"] for m in first] == ["user"]  # the protocol travels in the first user message
    assert "Do the thing." in first[0]["content"]
    assert first[0]["content"].endswith(f"{SCREEN_HEADER}{PROMPT} ")
    printed = ActionResult("ls\n", "ls\na.txt\n", screen=f"{PROMPT} ls\na.txt\n{PROMPT}")
    obs = sc.observation_message([printed], warnings=["w1"])["content"]
    assert obs == f"Your previous reply had warnings:\n- w1\n\n{NEW_OUTPUT_HEADER}ls\na.txt\n"
    vim = ActionResult("vim a\n", "\x1b[?1049h garbage", screen="~\n~", alternate=True)
    assert sc.observation_message([vim])["content"] == SCREEN_HEADER + "~\n~"
    quiet = ActionResult("", "", screen=f"{PROMPT}")
    assert sc.observation_message([quiet])["content"] == SCREEN_HEADER + PROMPT
    flood = ActionResult("seq\n", "é" * 20_000, screen="")
    limited = sc.observation_message([flood])["content"]
    assert len(limited.encode()) < 10_200 and "[... output limited to 10000 bytes; " in limited
    assert limit_output("x" * 100, 40).count("x") == 40
    confirm = sc.confirmation_message([printed])["content"]
    assert (
        confirm.startswith("Current terminal state:\n" + NEW_OUTPUT_HEADER)
        and '"task_complete": true' in confirm
    )
    err = sc.parse_error_message(ParseError("bad"))["content"]
    assert "ERROR: bad" in err


def test_key_specs_of_play_keys():
    def keys(line: str) -> list[tuple[list[str], bool, float]]:
        return [
            (a["keys"], a.get("literal", False), a["wait"])
            for a in map(json.loads, key_spec_actions(line, 0.5))
        ]

    assert keys("vim a.txt Enter") == [(["vim a.txt", "Enter"], False, 0.5)]
    assert keys("i hello  world Escape :wq Enter") == [
        (["i hello  world", "Escape", ":wq", "Enter"], False, 0.5)
    ]
    assert keys("C-c") == [(["C-c"], False, 0.5)]
    assert keys("") == [([], False, 0.5)]
    assert keys("echo \\Enter Enter") == [(["echo Enter", "Enter"], False, 0.5)]
    assert keys("\\Escape") == [(["Escape"], True, 0.5)]


# ------------------------------------------------------------------------------------ episodes


def test_episode_edits_with_vi_interrupts_sleep_and_confirms(openai_server, store, backend, tmp_path):  # noqa: F811
    """Malformed reply (fed back, the episode goes on), `sleep 1000` interrupted with C-c, a file written
    with vi (`Escape :wq Enter`), `task_complete` confirmed twice; the verifier scores it."""
    openai_server.responder = [
        "I will look around first.",  # no JSON: a parse error, answered, the episode goes on
        reply(("sleep 1000\n", 0.3)),
        reply(("C-c", 0.3), ("echo after-$((6*7))\n", 0.3)),
        reply(("vi greeting.txt\n", 1.0)),
        reply(("ihello from ", 0.1), ("Escape", 0.1), (":r seed.txt\n", 0.2), ("kJ", 0.1), (":wq\n", 0.5)),
        reply(("cat greeting.txt\n",)),  # no duration: the default wait, with a warning
        reply(complete=True),
        reply(complete=True),
    ]
    traj = run_episode(
        FIXTURES / "write-greeting",
        policy(openai_server),
        scaffold="terminus-2",
        backend=backend,
        image_store=store,
        cast_path=tmp_path / "e.cast",
    )
    assert (traj.termination, traj.reward, traj.passed, traj.parse_errors) == ("submitted", 1.0, True, 1)
    assert traj.action_mode == "keys" and traj.scaffold == "terminus-2"
    reqs = openai_server.requests
    assert len(reqs) == 8
    assert "could not be used" in last_user(reqs[1])
    # sleep 1000 still runs; the new output starts with the prompt line, as in a tmux scrollback diff
    assert last_user(reqs[2]) == f"{NEW_OUTPUT_HEADER}{PROMPT} sleep 1000\n"
    after_cc = last_user(reqs[3])
    assert after_cc.startswith(f"{NEW_OUTPUT_HEADER}^C\n{PROMPT} echo after-$((6*7))\nafter-42\n"), after_cc
    in_vi = last_user(reqs[4])
    assert in_vi.startswith(SCREEN_HEADER) and in_vi.count("\n~") >= 10  # vi's screen, rendered
    cat = last_user(reqs[6])
    assert 'commands[0]: no "duration"' in cat and "hello from seed-write-greeting" in cat
    assert last_user(reqs[7]).startswith("Current terminal state:")
    steps = [(s.action, s.model_extra["duration"]) for s in traj.steps]
    assert steps[:3] == [("sleep 1000\n", 0.3), ("C-c", 0.3), ("echo after-$((6*7))\n", 0.3)]
    assert ("Escape", 0.1) in steps and ("cat greeting.txt\n", 1.0) in steps
    assert all(s.model_extra["wait_s"] == s.model_extra["duration"] for s in traj.steps)
    assert traj.messages[0]["role"] == "user" and traj.messages[-1]["role"] == "assistant"
    assert len(traj.messages) == 16  # 8 replies, each after the user turn it answers
    store_path = tmp_path / "t.jsonl"
    TrajectoryStore(store_path).append(traj)
    ds = export_sft(store_path)
    assert len(ds) == 1 and ds[0]["scaffold"] == "terminus-2" and ds[0]["turns"] == 8
    assert (tmp_path / "e.cast").read_text().count("after-42") >= 1


@pytest.mark.bwrap
def test_context_overflow_hands_off_to_a_summary(openai_server, store, bwrap_ok):  # noqa: F811
    """The model's context runs out: it is asked for a summary (the oldest turns dropped until the request
    fits) and the episode goes on in a fresh conversation holding the summary and the terminal."""

    def respond(body: dict):
        msgs = body["messages"]
        text = last_user(body)
        if "hand-off summary" in text:
            if len(msgs) > 4:
                return ErrorReply.context_length()
            return "NOTES: the seed is in seed.txt"
        if "NOTES: the seed" in msgs[0]["content"]:
            if "task_complete" in text and "Are you sure" in text:
                return reply(complete=True)
            return reply(("echo hello from $(cat seed.txt) > greeting.txt\n", 0.3), complete=True)
        if len(msgs) >= 5:
            return ErrorReply.context_length()
        return reply((f"echo turn-{len(msgs)}\n", 0.1))

    openai_server.responder = respond
    traj = run_episode(
        FIXTURES / "write-greeting",
        policy(openai_server),
        scaffold="terminus-2",
        backend="bwrap",
        image_store=store,
    )
    assert (traj.termination, traj.reward) == ("submitted", 1.0), traj.error
    [handoff] = traj.model_extra["handoffs"]
    assert handoff["summary"] == "NOTES: the seed is in seed.txt" and len(handoff["messages"]) == 5
    first = traj.messages[0]["content"]
    assert "NOTES: the seed is in seed.txt" in first and "turn-3" in first  # the terminal as it is now
    summary_requests = [r for r in openai_server.requests if "hand-off summary" in last_user(r)]
    assert [len(r["messages"]) for r in summary_requests] == [6, 4]  # the oldest turn dropped on the retry


@pytest.mark.bwrap
def test_cli_play_keys_and_rollout_terminus2(openai_server, tmp_path, bwrap_ok):  # noqa: F811
    proc = run_ltenv(
        "play", "write-greeting", "--tasks", FIXTURES, "--keys", "--wait", "0.3",
        "-c", "python3 Enter",
        "-c", "open('greeting.txt', 'w').write('hello from ' + open('seed.txt').read()) Enter",
        "-c", "C-d",
        "-c", "cat greeting.txt Enter",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ">>> open('greeting.txt'" in proc.stdout and "reward=1" in proc.stdout
    assert f"{PROMPT} cat greeting.txt\nhello from seed-write-greeting" in proc.stdout

    openai_server.responder = lambda body: (
        reply(("echo hello from $(cat seed.txt) > greeting.txt\n", 0.2), complete=True)
        if len(body["messages"]) == 1
        else reply(complete=True)
    )
    out = tmp_path / "run"
    proc = run_ltenv(
        "rollout", "write-greeting", "--tasks", FIXTURES, "--policy", "openai:scripted",
        "--base-url", openai_server.base_url, "--api-key-env", "PATH", "--scaffold", "terminus-2",
        "-k", "2", "--out", out, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trajs = list(TrajectoryStore(out / "trajectories.jsonl").read(strict=True))
    assert len(trajs) == 2 and all(t.reward == 1.0 and t.action_mode == "keys" for t in trajs)
    assert (
        trajs[0].steps[0].action.startswith("echo hello from")
        and trajs[0].steps[0].model_extra["duration"] == 0.2
    )


@pytest.mark.bwrap
def test_oracle_types_the_solution_and_waits_for_the_prompt(store, bwrap_ok, tmp_path):
    """The oracle in keys mode: solve.sh typed through a child bash, short waits until the prompt is back,
    then completion claimed and confirmed; `ltenv play --keys --oracle` types it the same way."""
    from ltenv.agents import make_policy

    traj = run_episode(
        FIXTURES / "write-greeting",
        make_policy("oracle"),
        scaffold="terminus-2",
        backend="bwrap",
        image_store=store,
    )
    assert (traj.termination, traj.reward) == ("submitted", 1.0), traj.error
    assert traj.steps[0].action.startswith("bash <<'__LTENV_ORACLE__'\n")
    assert traj.steps[0].model_extra["duration"] == 0.5
    replies = [json.loads(m["content"]) for m in traj.messages if m["role"] == "assistant"]
    assert [r["task_complete"] for r in replies][-2:] == [True, True]
    assert sum(bool(r["commands"]) for r in replies) == 1
    proc = run_ltenv("play", "write-greeting", "--tasks", FIXTURES, "--keys", "--oracle", "--wait", "0.3")
    assert proc.returncode == 0 and "reward=1" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.bwrap
def test_oracle_replays_a_terminal_bench_keystroke_solution_in_keys_mode(store, bwrap_ok):
    """TB `solution.yaml` under terminus-2: each entry one turn (`append_enter` as a newline after text, an
    Enter key after a key name such as Escape), the blocking `grep` watched until the prompt is back."""
    from ltenv.agents import make_policy

    tb1 = FIXTURES.parent / "tb1"
    traj = run_episode(
        tb1 / "tb-vim-edit-config", make_policy("oracle"), scaffold="terminus-2", image_store=store
    )
    assert (traj.termination, traj.reward) == ("submitted", 1.0), (traj.error, traj.steps)
    sent = [s.action for s in traj.steps]
    assert sent[:3] == ["sleep 600\n", "C-c", "vi /app/service.ini\n"], sent
    assert ":wq\n" in sent and sent[-1] == "grep -n '^mode' /app/service.ini\n"
    grep_at = len(traj.steps) - 1
    assert (
        traj.steps[grep_at].model_extra["duration"] == 0.5
    )  # blocking: a short wait, then turns until the prompt
    assert "mode = production" in traj.steps[grep_at].observation


@pytest.mark.bwrap
def test_cli_oracle_of_a_keystroke_task_picks_keys_mode_or_says_why_not(tmp_path, bwrap_ok):
    task = "reindex-interrupt-checkpoint"  # bundled: solution/keys.json (start a job, then C-c)
    proc = run_ltenv("rollout", task, "--policy", "oracle", "--scaffold", "terminus", "--out", tmp_path / "a")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--scaffold terminus runs whole commands" in proc.stderr and task in proc.stderr
    assert not (tmp_path / "a" / "trajectories.jsonl").exists()
    proc = run_ltenv("rollout", task, "--policy", "oracle", "--out", tmp_path / "b", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the oracle runs with the terminus-2 scaffold" in proc.stderr
    [traj] = TrajectoryStore(tmp_path / "b" / "trajectories.jsonl").read(strict=True)
    assert (traj.scaffold, traj.reward) == ("terminus-2", 1.0) and traj.steps[1].action == "C-c"
    proc = run_ltenv("play", task, "--keys", "--oracle")
    assert proc.returncode == 0 and "reward=1" in proc.stdout, proc.stdout + proc.stderr
