"""The keystroke oracle of a Harbor task (``solution/keys.json``): its format, its errors, and its replay in
keys mode by ``ltenv validate`` and by the oracle policy with the ``terminus-2`` scaffold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ltenv.errors import TaskLoadError
from ltenv.tasks import load_task

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"

# Typed into a Python REPL: the greeting is written by the interpreter's own state, then C-d leaves it.
REPL_KEYS = [
    {"keystrokes": "python3 -q\n", "duration": 1.5},
    {"keystrokes": "seed = open('/app/seed.txt').read().strip()\n", "duration": 0.3},
    {"keystrokes": "_ = open('/app/greeting.txt', 'w').write(f'hello from {seed}\\n')\n", "duration": 0.3},
    {"keystrokes": "C-d", "duration": 0.5},
]


def keys_task(tmp_path: Path, keys, *, keep_solve: bool = False) -> Path:
    """The write-greeting fixture with ``solution/keys.json`` = ``keys`` (a list, or raw text)."""
    folder = tmp_path / "greeting-keys"
    shutil.copytree(FIXTURES / "write-greeting", folder)
    if not keep_solve:
        (folder / "solution" / "solve.sh").unlink()
    text = keys if isinstance(keys, str) else json.dumps(keys)
    (folder / "solution" / "keys.json").write_text(text)
    return folder


def test_keys_json_is_the_oracle(tmp_path):
    task = load_task(keys_task(tmp_path, [{"keystrokes": "echo hi\n"}, {"keystrokes": "C-c", "duration": 0}]))
    assert task.has_solution and task.keystroke_oracle
    assert task.solution_label == "solution/keys.json"
    spec = task.oracle_spec()
    assert spec is not None and spec.kind == "keystrokes" and spec.label == "solution/keys.json"
    assert [(k.command, k.min_timeout_sec, k.append_enter, k.block) for k in spec.keystrokes] == [
        ("echo hi\n", 1.0, False, False),  # Terminus-2's default duration
        ("C-c", 0.0, False, False),
    ]
    assert spec.timeout_sec == task.config.agent.timeout_sec


def test_keys_json_wins_over_solve_sh(tmp_path):
    task = load_task(keys_task(tmp_path, REPL_KEYS, keep_solve=True))
    assert task.solution_path == task.path / "solution" / "keys.json"
    assert task.oracle_spec().kind == "keystrokes"


def test_a_script_oracle_is_unchanged():
    task = load_task(FIXTURES / "write-greeting")
    assert not task.keystroke_oracle and task.oracle_spec().kind == "script"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("[{", None, "not valid JSON"),
        ("{}", None, "non-empty JSON list"),
        ("[]", None, "non-empty JSON list"),
        ('["ls\\n"]', "[0]", "expected an object"),
        ('[{"keystrokes": "ls\\n"}, {"duration": 1}]', "[1].keystrokes", "required"),
        ('[{"keystrokes": ""}]', "[0].keystrokes", "required"),
        ('[{"keystrokes": ["ls", "Enter"]}]', "[0].keystrokes", "required"),
        ('[{"keystrokes": "ls\\n", "duration": -1}]', "[0].duration", "expected seconds >= 0"),
        ('[{"keystrokes": "ls\\n", "duration": "2"}]', "[0].duration", "expected seconds >= 0"),
        ('[{"keystrokes": "ls\\n", "duration": true}]', "[0].duration", "expected seconds >= 0"),
        ('[{"keystrokes": "ls\\n", "wait": 1}]', "[0].wait", "unknown field"),
    ],
)
def test_bad_keys_json_names_file_and_field(tmp_path, text, field, message):
    folder = keys_task(tmp_path, text)
    with pytest.raises(TaskLoadError) as e:
        load_task(folder)
    assert e.value.file == "solution/keys.json" and e.value.field == field
    assert message in e.value.reason
    assert "solution/keys.json" in str(e.value)


def test_solution_folder_needs_solve_sh_or_keys_json(tmp_path):
    folder = keys_task(tmp_path, REPL_KEYS)
    (folder / "solution" / "keys.json").unlink()
    with pytest.raises(TaskLoadError, match=r"solution/solve.sh: missing .*keys\.json"):
        load_task(folder)


def test_oracle_policy_replays_keys_json_in_keys_mode_and_refuses_command_mode(tmp_path):
    from ltenv.agents import get_scaffold
    from ltenv.agents.policies import EpisodeContext, OraclePolicy, PolicyError

    task = load_task(keys_task(tmp_path, REPL_KEYS))
    policy = OraclePolicy()
    with pytest.raises(PolicyError, match=r"keys\.json"):
        policy.complete([], EpisodeContext(task=task, scaffold="terminus"))
    scaffold = get_scaffold("terminus-2")
    messages: list[dict] = [{"role": "user", "content": "start"}]
    sent = []
    for _ in range(len(REPL_KEYS) + 2):
        reply = policy.complete(messages, EpisodeContext(task=task, scaffold="terminus-2")).text
        parsed = scaffold.parse(reply)
        sent += [(a.command, a.timeout) for a in parsed.actions]
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "screen"}]
        if parsed.complete:
            break
    # sent as written: key names stay keys (no newline added), durations kept
    assert sent == [(k["keystrokes"], k["duration"]) for k in REPL_KEYS]
    assert parsed.complete


@pytest.mark.bwrap
@pytest.mark.docker
def test_validate_replays_keys_json_on_a_terminal(tmp_path, store, bwrap_ok):
    """`ltenv validate`: the keystrokes drive a live REPL (the oracle passes), nop fails."""
    from ltenv.validate import validate_task

    good = validate_task(
        load_task(keys_task(tmp_path / "good", REPL_KEYS)), backend="bwrap", runs=1, store=store
    )
    assert good.valid and good.oracle_runs == [1.0] and good.nop_runs == [0.0], good.error
    # Without C-d nothing is lost (the REPL wrote the file); without the write the oracle fails, by name.
    bad = validate_task(
        load_task(keys_task(tmp_path / "bad", [REPL_KEYS[0], REPL_KEYS[3]])),
        backend="bwrap",
        runs=1,
        store=store,
    )
    assert not bad.valid and bad.oracle_runs == [0.0]
    assert "test_greeting_file" in (bad.error or "")


MENU = """import curses


def main(scr):
    scr.keypad(True)  # application cursor keys: arrows arrive as ESC O A / ESC O B
    items = ["hello from nobody", "hello from somebody", "hello from " + open("/app/seed.txt").read().strip()]
    sel = 0
    while True:
        for i, item in enumerate(items):
            scr.addstr(i, 0, ("> " if i == sel else "  ") + item)
        key = scr.getch()
        if key == curses.KEY_DOWN:
            sel = min(sel + 1, len(items) - 1)
        elif key == curses.KEY_UP:
            sel = max(sel - 1, 0)
        elif key in (10, 13, curses.KEY_ENTER):
            return items[sel]


choice = curses.wrapper(main)
open("/app/greeting.txt", "w").write(choice + "\\n")
"""


@pytest.mark.bwrap
@pytest.mark.docker
def test_replayed_arrows_follow_the_programs_cursor_key_mode(tmp_path, store, bwrap_ok):
    """A curses program in keypad mode (DECCKM on) gets arrows as a terminal would send them then."""
    from ltenv.sandbox import create_sandbox
    from ltenv.verify import run_oracle, verify

    folder = keys_task(
        tmp_path,
        [
            {"keystrokes": "python3 /opt/menu.py\n", "duration": 1.5},
            {"keystrokes": "Down", "duration": 0.2},
            {"keystrokes": "Down", "duration": 0.2},
            {"keystrokes": "Up", "duration": 0.2},
            {"keystrokes": "Down", "duration": 0.2},
            {"keystrokes": "Enter", "duration": 1.0},
        ],
    )
    (folder / "setup" / "opt").mkdir(parents=True)
    (folder / "setup" / "opt" / "menu.py").write_text(MENU)
    toml = folder / "task.toml"
    toml.write_text(toml.read_text() + 'setup_files = "setup"\n')
    task = load_task(folder)
    sb = create_sandbox(task, backend="bwrap", store=store, memory_mb=512, pids_limit=256)
    sb.start()
    try:
        run = run_oracle(sb, task)
        try:
            assert run.exit_code == 0, run.text
            result = verify(sb, task)
        finally:
            run.close()
    finally:
        sb.close()
    assert result.reward == 1.0, (run.text[-2000:], result)
