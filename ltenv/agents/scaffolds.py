"""Scaffolds: how an episode becomes chat messages, and how a model reply becomes shell actions.

The scaffolds are stateless (one object may serve many concurrent episodes):

* ``terminus`` (default): Terminal-Bench's Terminus-2 JSON format
  ``{"analysis", "plan", "commands": [{"keystrokes", "duration"}], "task_complete"}``. Completion is
  double-confirmed: the first ``task_complete: true`` is answered with a confirmation prompt showing the
  terminal state, only a second consecutive ``true`` ends the episode (the loop implements this, see
  :attr:`Scaffold.confirm_completion`). In command mode every ``keystrokes`` entry runs as one command to
  completion; ``duration`` is an upper bound on its run time, never below ``min_command_timeout``
  (Terminus models write ``0.1`` for quick commands: a 0.1 s limit would kill real work) and never above the
  environment's ``command_timeout``.
* ``terminus-2``: the same JSON in keys mode, as Terminal-Bench's and Harbor's Terminus-2 run it: each
  ``keystrokes`` string goes raw to a live terminal (one tmux ``send-keys`` argument: a key name such as
  ``C-c`` alone is that key, anything else is typed), then the terminal is watched for ``duration``
  seconds (capped at :data:`TERMINUS2_MAX_DURATION`); the observation is the output since the last turn,
  or the rendered screen (:func:`incremental_output`), within :data:`TERMINUS2_MAX_OUTPUT_BYTES`. Use
  ``terminus`` for models trained on command-level data, ``terminus-2`` to compare with Terminal-Bench.
* ``bash``: one fenced ```` ```bash ```` block per reply (mini-swe-agent style); a block holding only
  ``echo LTENV_TASK_COMPLETE`` submits.
* ``plain``: the reply is the command itself and ``DONE`` submits; observations are the bare output. For
  small models (the embedded demo trains a ~2M-parameter one on it).

Prompt texts are package files in ``ltenv/agents/prompts/``.

Example:
    >>> s = get_scaffold("terminus")
    >>> p = s.parse('{"analysis": "", "plan": "", "commands": [{"keystrokes": "ls\\\\n"}], "task_complete": false}')
    >>> p.actions[0].command
    'ls'
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

DEFAULT_DURATION = 1.0
"""Terminus: ``duration`` of a command that gives none (seconds)."""
DEFAULT_MIN_COMMAND_TIMEOUT = 10.0
"""Terminus: the smallest per-command time limit a ``duration`` can set (seconds)."""
BASH_SENTINEL = "echo LTENV_TASK_COMPLETE"
TERMINAL_HEADER = "Current terminal state:\n"
_MAX_JSON_STARTS = 256  # '{' positions tried when looking for the JSON object in a reply


@cache
def load_prompt(name: str) -> str:
    """The text of ``ltenv/agents/prompts/<name>.txt``."""
    return resources.files("ltenv.agents").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def _fill(template: str, **values: Any) -> str:
    """Replace ``{key}`` for the given keys only (prompts contain literal JSON braces), in one pass: a value
    holding ``{key}`` text (a task's instruction, terminal output) is left as it is."""
    if not values:
        return template
    pattern = "|".join(re.escape("{" + key + "}") for key in values)
    return re.sub(pattern, lambda m: str(values[m.group()[1:-1]]), template)


class ParseError(ValueError):
    """A reply that cannot be turned into actions; ``message`` is shown to the model."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Action:
    """One shell command to run to completion. ``timeout``: its time limit in seconds (``None``: the
    environment's ``command_timeout``); the loop caps it by ``command_timeout``."""

    command: str
    timeout: float | None = None


@dataclass(frozen=True)
class Parsed:
    """A parsed reply: actions to run in order, whether the model declares the task complete, and
    non-fatal remarks (shown to the model with the next observation)."""

    actions: list[Action]
    complete: bool = False
    warnings: list[str] = field(default_factory=list)
    analysis: str = ""
    plan: str = ""


@dataclass(frozen=True)
class ActionResult:
    """What running an :class:`Action` gave (for :meth:`Scaffold.observation_message`)."""

    command: str
    output: str
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    screen: str = ""
    """Keys mode: the rendered screen after the action."""
    alternate: bool = False
    """Keys mode: a full-screen program (vim, less) had the alternate screen after the action."""


class Scaffold(ABC):
    """Turns an episode into chat messages and replies into actions. Stateless and thread-safe."""

    name: str = ""
    action_mode: str = "command"
    """How the loop runs actions: ``command`` (each to completion, :class:`~ltenv.terminal.ShellSession`) or
    ``keys`` (raw keystrokes, then a wait, :class:`~ltenv.terminal.KeysSession`)."""
    confirm_completion: bool = False
    """True: a completion claim is answered with :meth:`confirmation_message` and only a second
    consecutive claim ends the episode."""

    def initial_messages(self, task_instruction: str, observation: str) -> list[dict[str, str]]:
        """System prompt and first user message. ``observation``: the terminal at the start (the text
        :meth:`ltenv.env.TerminalEnv.reset` returns is accepted too: the instruction it starts with is
        dropped)."""
        terminal = _terminal_part(task_instruction, observation)
        return [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": _fill(
                    load_prompt(f"{self.name}_initial"),
                    instruction=task_instruction.strip(),
                    terminal=terminal,
                ),
            },
        ]

    @abstractmethod
    def parse(self, reply: str) -> Parsed:
        """Actions of a reply; raises :class:`ParseError` with a message meant for the model."""

    @abstractmethod
    def observation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        """The user turn reporting what the actions of the last reply printed."""

    def confirmation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        """The user turn asking to confirm a completion claim (scaffolds with ``confirm_completion``)."""
        return self.observation_message(results, warnings=warnings)

    def parse_error_message(self, err: ParseError | str) -> dict[str, str]:
        """The user turn answering a malformed reply."""
        message = err.message if isinstance(err, ParseError) else str(err)
        return {
            "role": "user",
            "content": _fill(load_prompt(f"{self.name}_parse_error"), error=message, sentinel=BASH_SENTINEL),
        }

    @abstractmethod
    def render_reply(
        self,
        commands: Sequence[str],
        *,
        complete: bool = False,
        timeout: float | None = None,
        analysis: str = "",
        plan: str = "",
    ) -> str:
        """A reply in this scaffold's format (scripted policies: oracle, nop). ``timeout``: the time
        limit to ask for each command, where the format can express one."""

    def _system_prompt(self) -> str:
        return _fill(load_prompt(f"{self.name}_system"), sentinel=BASH_SENTINEL)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _terminal_part(instruction: str, observation: str) -> str:
    head = instruction.rstrip()
    if head and observation.startswith(head):
        rest = observation[len(head) :].lstrip("\n")
        return rest[len(TERMINAL_HEADER) :] if rest.startswith(TERMINAL_HEADER) else rest
    return observation


def _warnings_block(warnings: Iterable[str]) -> str:
    items = [w for w in warnings if w]
    if not items:
        return ""
    return "Note about your previous reply:\n" + "".join(f"- {w}\n" for w in items) + "\n"


def _command(i: int, cmd: Any) -> tuple[str, float, str | None]:
    """``commands[i]`` of a Terminus reply, checked: its keystrokes, its duration and a warning naming unknown
    fields (``None`` when there are none)."""
    if not isinstance(cmd, dict):
        raise ParseError(
            f'commands[{i}] must be an object like {{"keystrokes": "ls\\n", "duration": 0.1}}, '
            f"got {_type_name(cmd)}"
        )
    if "keystrokes" not in cmd:
        raise ParseError(f'commands[{i}] is missing required field "keystrokes"')
    keys = cmd["keystrokes"]
    if not isinstance(keys, str):
        raise ParseError(f"commands[{i}].keystrokes must be a string, got {_type_name(keys)}")
    duration = cmd.get("duration", DEFAULT_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        raise ParseError(f"commands[{i}].duration must be a number >= 0, got {duration!r}")
    extra = sorted(set(cmd) - {"keystrokes", "duration"})
    return keys, duration, f"commands[{i}]: unknown fields ignored: {', '.join(extra)}" if extra else None


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


# tmux key names a Terminus model may send alone; in command mode nothing is running between commands.
_KEY_NAMES = re.compile(
    r"^(C-[a-z\[\\\]]|M-.|Escape|Esc|Enter|Tab|Up|Down|Left|Right|q|BSpace)$", re.IGNORECASE
)


class TerminusScaffold(Scaffold):
    """Terminus-2 compatible JSON replies (see the module docstring)."""

    name = "terminus"
    confirm_completion = True

    def __init__(self, min_command_timeout: float = DEFAULT_MIN_COMMAND_TIMEOUT):
        if min_command_timeout <= 0:
            raise ValueError(f"min_command_timeout must be > 0, got {min_command_timeout}")
        self.min_command_timeout = min_command_timeout

    def parse(self, reply: str) -> Parsed:
        obj, warnings = _find_json_object(reply)
        analysis = _optional_str(obj, "analysis", warnings)
        plan = _optional_str(obj, "plan", warnings)
        complete = obj.get("task_complete", False)
        if isinstance(complete, str) and complete.strip().lower() in ("true", "false"):
            warnings.append('"task_complete" should be a JSON boolean (true/false), not a string')
            complete = complete.strip().lower() == "true"
        if not isinstance(complete, bool):
            raise ParseError(f'"task_complete" must be true or false, got {_type_name(complete)}')
        if "commands" not in obj:
            if not complete:
                raise ParseError('missing required field "commands" (use [] to run nothing)')
            commands: Any = []
        else:
            commands = obj["commands"]
        if not isinstance(commands, list):
            raise ParseError(f'"commands" must be an array of objects, got {_type_name(commands)}')
        actions = []
        for i, cmd in enumerate(commands):
            keys, duration, unknown = _command(i, cmd)
            if unknown:
                warnings.append(unknown)
            command = _strip_one_newline(keys)
            if not command.strip():
                warnings.append(f"commands[{i}]: empty keystrokes skipped")
                continue
            if _KEY_NAMES.match(command.strip()):
                warnings.append(
                    f"commands[{i}]: {command.strip()!r} skipped: every command runs to completion here, "
                    "so there is no running program to send keys to"
                )
                continue
            if not keys.endswith("\n"):
                warnings.append(
                    f"commands[{i}]: keystrokes should end with a newline; the command was run anyway"
                )
            actions.append(Action(command, timeout=max(float(duration), self.min_command_timeout)))
        extra = sorted(set(obj) - {"analysis", "plan", "commands", "task_complete"})
        if extra:
            warnings.append(f"unknown top-level fields ignored: {', '.join(extra)}")
        return Parsed(actions, complete, warnings, analysis, plan)

    def observation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        return {
            "role": "user",
            "content": _fill(
                load_prompt("terminus_observation"),
                warnings=_warnings_block(warnings),
                output=_transcript(results),
            ),
        }

    def confirmation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        return {
            "role": "user",
            "content": _warnings_block(warnings)
            + _fill(load_prompt("terminus_confirm"), output=_transcript(results)),
        }

    def render_reply(
        self,
        commands: Sequence[str],
        *,
        complete: bool = False,
        timeout: float | None = None,
        analysis: str = "",
        plan: str = "",
    ) -> str:
        duration = DEFAULT_DURATION if timeout is None else float(timeout)
        reply = {
            "analysis": analysis,
            "plan": plan,
            "commands": [{"keystrokes": c.rstrip("\n") + "\n", "duration": duration} for c in commands],
            "task_complete": complete,
        }
        return json.dumps(reply, indent=2, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"TerminusScaffold(min_command_timeout={self.min_command_timeout:g})"


def _transcript(results: Sequence[ActionResult]) -> str:
    if not results:
        return load_prompt("observation_empty").rstrip("\n")
    parts = []
    for r in results:
        out = r.output if r.output.endswith("\n") or not r.output else r.output + "\n"
        parts.append(f"$ {r.command}\n{out}")
    return "".join(parts).rstrip("\n")


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), f"a number ({v!r})" if isinstance(v, int | float) else type(v).__name__
    )


def _optional_str(obj: dict, key: str, warnings: list[str]) -> str:
    v = obj.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        warnings.append(f'"{key}" should be a string')
        return json.dumps(v, ensure_ascii=False)
    return v


def _find_json_object(reply: str) -> tuple[dict[str, Any], list[str]]:
    """The first complete JSON object in ``reply`` (fenced or surrounded by prose), and warnings."""
    decoder = json.JSONDecoder()
    first_error: json.JSONDecodeError | None = None
    found: tuple[dict[str, Any], int, int] | None = None
    fallback: tuple[dict[str, Any], int, int] | None = None
    pos, tries = reply.find("{"), 0
    while pos != -1 and tries < _MAX_JSON_STARTS:
        tries += 1
        try:
            obj, end = decoder.raw_decode(reply, pos)
        except json.JSONDecodeError as e:
            first_error = first_error or e
        else:
            if isinstance(obj, dict):
                if {"analysis", "plan", "commands", "task_complete"} & obj.keys():
                    found = (obj, pos, end)
                    break
                fallback = fallback or (obj, pos, end)
                pos = reply.find("{", end)
                continue
        pos = reply.find("{", pos + 1)
    found = found or fallback
    if found is None:
        if not reply.strip():
            raise ParseError("the reply is empty; a JSON object was expected")
        if first_error is not None:
            raise ParseError(
                f"invalid JSON: {first_error.msg} at line {first_error.lineno} column {first_error.colno} "
                "of the reply"
            )
        raise ParseError("no JSON object found in the reply")
    obj, start, end = found
    warnings = []
    before, after = reply[:start], reply[end:]
    before = re.sub(r"```(?:json|JSON)?\s*$", "", before.rstrip()).strip()
    after = re.sub(r"^\s*```", "", after).strip()
    if before:
        warnings.append("text before the JSON object was ignored")
    if after:
        warnings.append("text after the JSON object was ignored")
    return obj, warnings


_FENCE = re.compile(r"```(?:bash|sh|shell)[ \t]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)


class BashScaffold(Scaffold):
    """One fenced bash block per reply; a block holding only :data:`BASH_SENTINEL` submits."""

    name = "bash"
    confirm_completion = False

    def parse(self, reply: str) -> Parsed:
        blocks = _FENCE.findall(reply)
        if not blocks:
            raise ParseError("no ```bash code block found; give exactly one")
        if len(blocks) > 1:
            raise ParseError(f"found {len(blocks)} ```bash code blocks; give exactly one per reply")
        body = blocks[0].strip("\n")
        if not body.strip():
            raise ParseError("the ```bash code block is empty")
        if body.strip() == BASH_SENTINEL:
            return Parsed([], complete=True)
        return Parsed([Action(body)], complete=False, analysis=reply[: reply.find("```")].strip())

    def observation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        if not results:
            body = load_prompt("observation_empty")
        else:
            body = "".join(
                _fill(
                    load_prompt("bash_observation"),
                    warnings="",
                    exit_code="timed out" if r.timed_out else r.exit_code,
                    output=r.output,
                )
                for r in results
            )
        return {"role": "user", "content": _warnings_block(warnings) + body.rstrip("\n")}

    def render_reply(
        self,
        commands: Sequence[str],
        *,
        complete: bool = False,
        timeout: float | None = None,
        analysis: str = "",
        plan: str = "",
    ) -> str:
        body = _one_action(self.name, commands, complete, BASH_SENTINEL)
        text = " ".join(x for x in (analysis, plan) if x)
        return (text + "\n\n" if text else "") + f"```bash\n{body}\n```"


PLAIN_DONE = "DONE"
PLAIN_MAX_OUTPUT = 2000
"""Plain scaffold: characters of a command's output shown to the model (the tail; the head is cut)."""


class PlainScaffold(Scaffold):
    """The reply *is* the command (a surrounding code fence is tolerated); ``DONE`` submits. Observations are
    the bare output (its tail, at most :data:`PLAIN_MAX_OUTPUT` characters), with the exit code only when it
    is not 0. Made for small models: the whole protocol costs a few dozen tokens per episode."""

    name = "plain"
    confirm_completion = False

    def initial_messages(self, task_instruction: str, observation: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self._system_prompt()},
            {
                "role": "user",
                "content": _fill(load_prompt("plain_initial"), instruction=task_instruction.strip()),
            },
        ]

    def _system_prompt(self) -> str:
        return _fill(load_prompt("plain_system"), done=PLAIN_DONE).strip()

    def parse(self, reply: str) -> Parsed:
        text = reply.strip()
        blocks = _FENCE.findall(text)
        if blocks:
            text = blocks[0].strip()
        if not text:
            raise ParseError("no command")
        if text == PLAIN_DONE:
            return Parsed([], complete=True)
        return Parsed([Action(text)], complete=False)

    def parse_error_message(self, err: ParseError | str) -> dict[str, str]:
        message = err.message if isinstance(err, ParseError) else str(err)
        return {
            "role": "user",
            "content": _fill(load_prompt("plain_parse_error"), error=message, done=PLAIN_DONE).strip(),
        }

    def observation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        parts = []
        for r in results:
            out = r.output.rstrip("\n")
            if len(out) > PLAIN_MAX_OUTPUT:
                out = "..." + out[-PLAIN_MAX_OUTPUT:]
            status = (
                "[timed out]"
                if r.timed_out
                else (f"[exit {r.exit_code}]" if r.exit_code not in (0, None) else "")
            )
            parts.append("\n".join(x for x in (out, status) if x) or "(no output)")
        body = "\n".join(parts) if parts else "(no output)"
        return {"role": "user", "content": _warnings_block(warnings) + body}

    def render_reply(
        self,
        commands: Sequence[str],
        *,
        complete: bool = False,
        timeout: float | None = None,
        analysis: str = "",
        plan: str = "",
    ) -> str:
        return _one_action(self.name, commands, complete, PLAIN_DONE)


class BareScaffold(PlainScaffold):
    """The ``plain`` protocol without a system prompt: the episode opens with the task's instruction. For
    models fine-tuned on the protocol, which need no description of it. The demo's tiny model learns
    to copy names and values from the instruction and the observations far sooner without the prompt's
    fixed tokens in front (see the README's demo section)."""

    name = "bare"

    def initial_messages(self, task_instruction: str, observation: str) -> list[dict[str, str]]:
        return super().initial_messages(task_instruction, observation)[1:]


def _one_action(scaffold: str, commands: Sequence[str], complete: bool, done: str) -> str:
    """The body of a one-action reply: the commands as one script, or ``done`` to declare completion."""
    if complete and commands:
        raise ValueError(f"the {scaffold} scaffold runs commands and declares completion in separate replies")
    return done if complete else "\n".join(c.rstrip("\n") for c in commands)


TERMINUS2_MAX_DURATION = 60.0
"""Terminus-2: the longest wait one command can ask for (seconds); longer ``duration`` values are capped."""
TERMINUS2_MAX_OUTPUT_BYTES = 10_000
"""Terminus-2: the terminal output shown per turn (UTF-8 bytes); past it the first and last halves are
kept around a note of how many bytes were left out."""
NEW_OUTPUT_HEADER = "New Terminal Output:\n"
SCREEN_HEADER = "Current Terminal Screen:\n"


def limit_output(text: str, max_bytes: int = TERMINUS2_MAX_OUTPUT_BYTES) -> str:
    """``text`` within ``max_bytes`` UTF-8 bytes: its first and last ``max_bytes // 2`` bytes around a line
    saying how many bytes in between were left out (Terminus-2's output limit).

    Example:
        >>> limit_output("a" * 30 + "b" * 30, 20)
        'aaaaaaaaaa\\n[... output limited to 20 bytes; 40 interior bytes omitted ...]\\nbbbbbbbbbb'
    """
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    half = max_bytes // 2
    head = raw[:half].decode("utf-8", errors="ignore")
    tail = raw[len(raw) - half :].decode("utf-8", errors="ignore")
    omitted = len(raw) - len(head.encode()) - len(tail.encode())
    return f"{head}\n[... output limited to {max_bytes} bytes; {omitted} interior bytes omitted ...]\n{tail}"


def incremental_output(results: Sequence[ActionResult], screen: str, *, alternate: bool = False) -> str:
    """What Terminus-2 shows after a turn: ``New Terminal Output:`` and what the terminal printed since the
    previous turn, where that is readable; else ``Current Terminal Screen:`` and the rendered screen (a
    full-screen program such as vim or less is on the alternate screen, whose byte stream is cursor
    movements, not lines; or nothing new was printed)."""
    printed = "".join(r.output for r in results)
    if alternate or not printed.strip():
        return SCREEN_HEADER + screen
    return NEW_OUTPUT_HEADER + printed


class Terminus2Scaffold(Scaffold):
    """Terminal-Bench's Terminus-2 in keys mode: each ``keystrokes`` string is sent to an interactive
    terminal as tmux ``send-keys`` sends one argument (a tmux key name such as ``C-c``, ``Escape`` or
    ``Enter`` alone is that key, anything else is typed as text, ``\\n`` pressing Enter), then the terminal
    is watched for ``duration`` seconds (at most :data:`TERMINUS2_MAX_DURATION`) whether or not the
    program finished. The observation is :func:`incremental_output` within
    :data:`TERMINUS2_MAX_OUTPUT_BYTES`. See the module docstring and the README for what differs from
    Terminal-Bench's harness.

    The first user message holds the whole protocol (Terminus-2 sends no system message). An
    :class:`Action` of this scaffold carries the raw keystrokes in ``command`` and the wait in ``timeout``.
    """

    name = "terminus-2"
    action_mode = "keys"
    confirm_completion = True

    def initial_messages(self, task_instruction: str, observation: str) -> list[dict[str, str]]:
        screen = _terminal_part(task_instruction, observation)
        return [
            {
                "role": "user",
                "content": _fill(
                    _template("terminus2_initial"),
                    instruction=task_instruction.strip(),
                    terminal=limit_output(SCREEN_HEADER + screen),
                    max_duration=f"{TERMINUS2_MAX_DURATION:g}",
                ),
            }
        ]

    def parse(self, reply: str) -> Parsed:
        obj, warnings = _find_json_object(reply)
        missing = [k for k in ("analysis", "plan", "commands") if k not in obj]
        complete = obj.get("task_complete", False)
        if isinstance(complete, str) and complete.strip().lower() in ("true", "false"):
            complete = complete.strip().lower() == "true"
        if not isinstance(complete, bool):
            raise ParseError(f'"task_complete" must be true or false, got {_type_name(complete)}')
        if missing and not (complete and missing == ["commands"]):
            raise ParseError(f"missing required fields: {', '.join(missing)}")
        analysis = _optional_str(obj, "analysis", warnings)
        plan = _optional_str(obj, "plan", warnings)
        commands = obj.get("commands", [])
        if not isinstance(commands, list):
            raise ParseError(f'"commands" must be an array of objects, got {_type_name(commands)}')
        actions = []
        for i, cmd in enumerate(commands):
            if isinstance(cmd, dict) and "duration" not in cmd:
                warnings.append(f'commands[{i}]: no "duration"; waited the default {DEFAULT_DURATION:g} s')
            keys, duration, unknown = _command(i, cmd)
            if duration > TERMINUS2_MAX_DURATION:
                warnings.append(
                    f"commands[{i}]: duration {duration:g} s capped at {TERMINUS2_MAX_DURATION:g} s; "
                    "to wait longer, send an empty command with another duration next turn"
                )
            if unknown:
                warnings.append(unknown)
            if i + 1 < len(commands) and keys and not keys.endswith("\n") and not is_key_name(keys):
                warnings.append(
                    f"commands[{i}] does not end with a newline but another command follows: both end "
                    "up on the same line"
                )
            actions.append(Action(keys, timeout=min(float(duration), TERMINUS2_MAX_DURATION)))
        extra = sorted(set(obj) - {"analysis", "plan", "commands", "task_complete"})
        if extra:
            warnings.append(f"unknown top-level fields ignored: {', '.join(extra)}")
        return Parsed(actions, complete, warnings, analysis, plan)

    def observation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        return {
            "role": "user",
            "content": _fill(
                _template("terminus2_observation"),
                warnings=_warnings_text(warnings),
                output=self._terminal(results),
            ),
        }

    def confirmation_message(
        self, results: Sequence[ActionResult], *, warnings: Iterable[str] = ()
    ) -> dict[str, str]:
        return {
            "role": "user",
            "content": _warnings_text(warnings)
            + _fill(_template("terminus2_confirm"), output=self._terminal(results)),
        }

    def parse_error_message(self, err: ParseError | str) -> dict[str, str]:
        message = err.message if isinstance(err, ParseError) else str(err)
        return {"role": "user", "content": _fill(_template("terminus2_parse_error"), error=message)}

    def summary_request(self) -> dict[str, str]:
        """The user turn asking for a hand-off summary when the context is full (see the loop)."""
        return {"role": "user", "content": _template("terminus2_summarize")}

    def handoff_messages(
        self, task_instruction: str, summary: str, results: Sequence[ActionResult]
    ) -> list[dict[str, str]]:
        """The fresh conversation after a summary: the protocol and task as at the start, then the summary
        and the current terminal."""
        first = _fill(
            _template("terminus2_initial"),
            instruction=task_instruction.strip(),
            terminal="(see below)",
            max_duration=f"{TERMINUS2_MAX_DURATION:g}",
        )
        handoff = _fill(
            _template("terminus2_handoff"), summary=summary.strip(), output=self._terminal(results)
        )
        return [{"role": "user", "content": first.rstrip() + "\n\n" + handoff}]

    @staticmethod
    def _terminal(results: Sequence[ActionResult]) -> str:
        screen = results[-1].screen if results else ""
        alternate = bool(results) and results[-1].alternate
        return limit_output(incremental_output(results, screen, alternate=alternate))

    def render_reply(
        self,
        commands: Sequence[str],
        *,
        complete: bool = False,
        timeout: float | None = None,
        analysis: str = "",
        plan: str = "",
    ) -> str:
        duration = DEFAULT_DURATION if timeout is None else min(float(timeout), TERMINUS2_MAX_DURATION)
        reply = {
            "analysis": analysis,
            "plan": plan,
            "commands": [
                {"keystrokes": c if is_key_name(c) else c.rstrip("\n") + "\n", "duration": duration}
                for c in commands
            ],
            "task_complete": complete,
        }
        return json.dumps(reply, indent=2, ensure_ascii=False)


def _template(name: str) -> str:
    """A prompt file's text without the newline that ends the file."""
    return load_prompt(name).removesuffix("\n")


def is_key_name(keystrokes: str) -> bool:
    """True when ``keystrokes`` alone is a tmux key name (``C-c``, ``Escape``, ``Enter``...), which tmux
    ``send-keys`` sends as that key rather than as text."""
    from ltenv.terminal.keys import encode_keys

    return encode_keys([keystrokes]) != encode_keys([keystrokes], literal=True)


def _warnings_text(warnings: Iterable[str]) -> str:
    items = [w for w in warnings if w]
    if not items:
        return ""
    return "Your previous reply had warnings:\n" + "".join(f"- {w}\n" for w in items) + "\n"


SCAFFOLDS: dict[str, type[Scaffold]] = {
    "terminus": TerminusScaffold,
    "terminus-2": Terminus2Scaffold,
    "bash": BashScaffold,
    "plain": PlainScaffold,
    "bare": BareScaffold,
}


def get_scaffold(scaffold: str | Scaffold = "terminus", **kwargs: Any) -> Scaffold:
    """A scaffold by name (``terminus``, ``terminus-2``, ``bash``, ``plain``, ``bare``), or the given object
    as is."""
    if isinstance(scaffold, Scaffold):
        return scaffold
    try:
        cls = SCAFFOLDS[scaffold]
    except KeyError:
        raise ValueError(f"unknown scaffold {scaffold!r}; choose from {sorted(SCAFFOLDS)}") from None
    return cls(**kwargs)
