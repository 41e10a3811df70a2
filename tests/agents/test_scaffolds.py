"""Scaffold parsing and message building (no sandbox)."""

from __future__ import annotations

import json

import pytest

from ltenv.agents import (
    BASH_SENTINEL,
    ActionResult,
    ParseError,
    TerminusScaffold,
    get_scaffold,
)
from ltenv.agents.scaffolds import DEFAULT_MIN_COMMAND_TIMEOUT

GOOD = {
    "analysis": "empty dir",
    "plan": "list files",
    "commands": [{"keystrokes": "ls -la\n", "duration": 0.1}, {"keystrokes": "sleep 30\n", "duration": 60}],
    "task_complete": False,
}


@pytest.fixture
def terminus():
    return get_scaffold("terminus")


def test_terminus_plain_json(terminus):
    p = terminus.parse(json.dumps(GOOD))
    assert [a.command for a in p.actions] == ["ls -la", "sleep 30"]
    # duration is an upper bound with a floor: 0.1 s would kill real commands
    assert [a.timeout for a in p.actions] == [DEFAULT_MIN_COMMAND_TIMEOUT, 60.0]
    assert not p.complete and p.warnings == [] and p.analysis == "empty dir" and p.plan == "list files"


def test_terminus_fenced_with_prose(terminus):
    reply = "Let me look.\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nThat should do it {maybe}."
    p = terminus.parse(reply)
    assert [a.command for a in p.actions] == ["ls -la", "sleep 30"]
    assert "text before the JSON object was ignored" in p.warnings
    assert "text after the JSON object was ignored" in p.warnings


def test_terminus_fence_alone_gives_no_warning(terminus):
    p = terminus.parse("```json\n" + json.dumps(GOOD) + "\n```")
    assert p.warnings == []


def test_terminus_first_complete_object_and_braces_in_prose(terminus):
    first = dict(GOOD, commands=[{"keystrokes": "echo one\n"}])
    second = dict(GOOD, commands=[{"keystrokes": "echo two\n"}])
    reply = 'I use {curly} braces and {"x": 1} here.\n' + json.dumps(first) + "\n" + json.dumps(second)
    p = terminus.parse(reply)
    assert [a.command for a in p.actions] == ["echo one"]
    assert p.actions[0].timeout == DEFAULT_MIN_COMMAND_TIMEOUT  # default duration 1.0 -> floor


def test_terminus_defaults_and_only_one_newline_stripped(terminus):
    p = terminus.parse('{"commands": [{"keystrokes": "printf \'a\\\\n\'\\n\\n"}]}')
    assert p.actions[0].command == "printf 'a\\n'\n"
    assert p.analysis == "" and p.plan == "" and p.complete is False


def test_terminus_complete_without_commands(terminus):
    p = terminus.parse('{"analysis": "done", "task_complete": true}')
    assert p.complete and p.actions == []


def test_terminus_custom_floor():
    p = TerminusScaffold(min_command_timeout=2).parse(
        '{"commands": [{"keystrokes": "ls\\n", "duration": 0.5}]}'
    )
    assert p.actions[0].timeout == 2


def test_terminus_skips_key_names_and_empty(terminus):
    p = terminus.parse(
        '{"commands": [{"keystrokes": "C-c"}, {"keystrokes": "\\n"}, {"keystrokes": "pwd\\n"}]}'
    )
    assert [a.command for a in p.actions] == ["pwd"]
    assert len(p.warnings) == 2


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("", "empty"),
        ("I will run ls now.", "no JSON object"),
        ('{"analysis": "x", "commands": [', "invalid JSON"),
        ('{"analysis": "x", "plan": "y"}', 'missing required field "commands"'),
        ('{"commands": "ls"}', '"commands" must be an array'),
        ('{"commands": ["ls"]}', "commands[0] must be an object"),
        ('{"commands": [{"duration": 1}]}', 'missing required field "keystrokes"'),
        ('{"commands": [{"keystrokes": 3}]}', "keystrokes must be a string"),
        ('{"commands": [{"keystrokes": "ls\\n", "duration": "fast"}]}', "duration must be a number"),
        ('{"commands": [{"keystrokes": "ls\\n", "duration": -1}]}', "duration must be a number"),
        ('{"commands": [], "task_complete": "yes"}', '"task_complete" must be true or false'),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_terminus_errors(terminus, reply, fragment):
    with pytest.raises(ParseError) as e:
        terminus.parse(reply)
    assert fragment in e.value.message
    msg = terminus.parse_error_message(e.value)
    assert msg["role"] == "user" and fragment in msg["content"]


def test_terminus_messages(terminus):
    obs = "Write a file.\n\nCurrent terminal state:\nroot@sandbox:/app# "
    system, user = terminus.initial_messages("Write a file.", obs)
    assert system["role"] == "system" and '"task_complete"' in system["content"]
    assert user["role"] == "user"
    assert user["content"].count("Write a file.") == 1 and "root@sandbox:/app#" in user["content"]
    results = [ActionResult("ls", "a.txt\n", 0), ActionResult("cat a.txt", "hi\n", 0)]
    obs_msg = terminus.observation_message(results, warnings=["text after the JSON object was ignored"])
    assert obs_msg["role"] == "user"
    assert "$ ls\na.txt\n$ cat a.txt\nhi" in obs_msg["content"]
    assert "text after the JSON object was ignored" in obs_msg["content"]
    confirm = terminus.confirmation_message(results)
    assert "Are you sure" in confirm["content"] and "a.txt" in confirm["content"]
    assert "no commands were run" in terminus.observation_message([])["content"]


def test_terminus_render_roundtrip(terminus):
    reply = terminus.render_reply(["echo hi"], complete=True, timeout=30)
    p = terminus.parse(reply)
    assert p.complete and [(a.command, a.timeout) for a in p.actions] == [("echo hi", 30.0)]


def test_bash_scaffold():
    s = get_scaffold("bash")
    p = s.parse("I'll list.\n```bash\nls -la\ncat x\n```\n")
    assert [a.command for a in p.actions] == ["ls -la\ncat x"] and p.actions[0].timeout is None
    assert not p.complete
    assert s.parse(f"Done.\n```bash\n{BASH_SENTINEL}\n```").complete
    assert s.parse(s.render_reply([], complete=True)).complete
    assert s.parse(s.render_reply(["echo a"])).actions[0].command == "echo a"
    for bad, fragment in [
        ("just text", "no ```bash code block"),
        ("```bash\nls\n```\n```bash\npwd\n```", "2 ```bash code blocks"),
        ("```bash\n\n```", "empty"),
    ]:
        with pytest.raises(ParseError) as e:
            s.parse(bad)
        assert fragment in e.value.message
    system, user = s.initial_messages("Do it.", "root@sandbox:/app# ")
    assert BASH_SENTINEL in system["content"] and "Do it." in user["content"]
    msg = s.observation_message([ActionResult("ls", "a\n", 2)])
    assert "Exit code: 2" in msg["content"] and "a" in msg["content"]
    with pytest.raises(ValueError):
        s.render_reply(["ls"], complete=True)


def test_unknown_scaffold():
    with pytest.raises(ValueError, match="unknown scaffold"):
        get_scaffold("nope")


def test_prompts_are_package_files():
    from importlib import resources

    names = {p.name for p in resources.files("ltenv.agents").joinpath("prompts").iterdir()}
    assert {"terminus_system.txt", "bash_system.txt", "terminus_parse_error.txt"} <= names


# ------------------------------------------------------------------------------------------- plain
def test_plain_reply_is_the_command_and_done_submits():
    plain = get_scaffold("plain")
    assert [a.command for a in plain.parse("  ls -la /app \n").actions] == ["ls -la /app"]
    assert plain.parse("```bash\ncat a.txt\n```").actions[0].command == "cat a.txt"  # a fence is tolerated
    multi = plain.parse("cd /app\nmake")
    assert [a.command for a in multi.actions] == ["cd /app\nmake"] and not multi.complete
    done = plain.parse(" DONE\n")
    assert done.complete and done.actions == []
    with pytest.raises(ParseError, match="no command"):
        plain.parse("   \n")
    assert plain.render_reply(["echo hi"]) == "echo hi" and plain.render_reply([], complete=True) == "DONE"
    with pytest.raises(ValueError):
        plain.render_reply(["ls"], complete=True)


def test_plain_messages_are_short_and_observations_bare():
    plain = get_scaffold("plain")
    system, user = plain.initial_messages("Set the mode of /app/x.sh to 755.", "root@sandbox:/app# ")
    assert system["role"] == "system" and "DONE" in system["content"] and len(system["content"]) < 100
    assert user["role"] == "user" and user["content"].strip() == "Set the mode of /app/x.sh to 755."
    ok = plain.observation_message([ActionResult("cat f", "hello\n", exit_code=0)])
    assert ok == {"role": "user", "content": "hello"}
    empty = plain.observation_message([ActionResult("true", "", exit_code=0)])
    assert empty["content"] == "(no output)"
    failed = plain.observation_message([ActionResult("cat nope", "cat: nope: No such file\n", exit_code=1)])
    assert failed["content"] == "cat: nope: No such file\n[exit 1]"
    hung = plain.observation_message([ActionResult("sleep 99", "", timed_out=True)])
    assert hung["content"] == "[timed out]"
    flood = plain.observation_message([ActionResult("yes", "y\n" * 5000 + "END", exit_code=0)])
    assert (
        flood["content"].startswith("...")
        and flood["content"].endswith("END")
        and len(flood["content"]) < 2100
    )
    assert plain.parse_error_message(ParseError("no command"))["content"].startswith("Your reply was empty")


def test_bare_is_plain_without_the_system_prompt():
    plain, bare = get_scaffold("plain"), get_scaffold("bare")
    msgs = bare.initial_messages("Set the mode of /app/x.sh to 755.", "root@sandbox:/app# ")
    assert msgs == plain.initial_messages("Set the mode of /app/x.sh to 755.", "")[1:]
    assert [m["role"] for m in msgs] == ["user"]
    assert bare.parse("DONE").complete and bare.parse("ls").actions[0].command == "ls"
    assert bare.observation_message([ActionResult("true", "", exit_code=0)])["content"] == "(no output)"
