"""Keys mode: an agent types keystrokes into an interactive terminal and reads the rendered screen.

This is how Terminal-Bench's tmux-driven agents (Terminus) work: an action is a list of keys in tmux
``send-keys`` notation, the agent waits a moment, then looks at the screen. Programs run on a real PTY
with line editing and echo on, so REPLs, editors, pagers and Ctrl-C behave as they do for a person.

* :func:`encode_keys` turns tmux key names (``Enter``, ``C-c``, ``Up``, ``M-b``...) and text into bytes.
* :func:`parse_keys_action` reads an action text (a JSON object, a JSON list, or plain text).
* :func:`keys` builds the JSON action text (also ``ltenv.keys``).
* :class:`KeysSession` runs ``bash -i`` on a PTY in a sandbox and renders it on a ``pyte`` screen; like
  tmux it reads the terminal continuously (a reader thread), so programs run on between actions.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
import logging
import math
import os
import re
import select
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyte

from ltenv.errors import ShellError
from ltenv.output import HeadTailBuffer, decode, strip_ansi
from ltenv.sandbox.base import PtyProcess, PtyRequest, Sandbox
from ltenv.terminal.session import DEFAULT_MAX_OUTPUT

log = logging.getLogger(__name__)

DEFAULT_WAIT = 1.0
"""Seconds a keys action keeps reading the terminal after its keys are sent (Terminus' default)."""
PROMPT = r"\u@\h:\w\$ "
"""The shell prompt (``root@sandbox:/app# ``), as Debian's ``/etc/bash.bashrc`` sets it."""

# ---------------------------------------------------------------------------------------------- encoding
_ESC = "\x1b"
# Named keys, looked up case-insensitively as tmux does. Values: the unmodified sequence, and how a
# modifier (xterm parameter 1 + shift*1 + meta*2 + ctrl*4) is encoded: ("csi", final) -> ESC [ 1 ; m final,
# ("tilde", n) -> ESC [ n ; m ~, or None -> Meta adds an ESC prefix, other modifiers are dropped.
_NAMED: dict[str, tuple[str, tuple[str, Any] | None]] = {
    "enter": ("\r", None),
    "escape": (_ESC, None),
    "esc": (_ESC, None),
    "tab": ("\t", None),
    "btab": (_ESC + "[Z", None),
    "space": (" ", None),
    "bspace": ("\x7f", None),
    "up": (_ESC + "[A", ("csi", "A")),
    "down": (_ESC + "[B", ("csi", "B")),
    "right": (_ESC + "[C", ("csi", "C")),
    "left": (_ESC + "[D", ("csi", "D")),
    "home": (_ESC + "[1~", ("csi", "H")),
    "end": (_ESC + "[4~", ("csi", "F")),
    "ic": (_ESC + "[2~", ("tilde", 2)),
    "insert": (_ESC + "[2~", ("tilde", 2)),
    "dc": (_ESC + "[3~", ("tilde", 3)),
    "delete": (_ESC + "[3~", ("tilde", 3)),
    "ppage": (_ESC + "[5~", ("tilde", 5)),
    "pageup": (_ESC + "[5~", ("tilde", 5)),
    "pgup": (_ESC + "[5~", ("tilde", 5)),
    "npage": (_ESC + "[6~", ("tilde", 6)),
    "pagedown": (_ESC + "[6~", ("tilde", 6)),
    "pgdn": (_ESC + "[6~", ("tilde", 6)),
    "f1": (_ESC + "OP", ("csi", "P")),
    "f2": (_ESC + "OQ", ("csi", "Q")),
    "f3": (_ESC + "OR", ("csi", "R")),
    "f4": (_ESC + "OS", ("csi", "S")),
}
for _n, _code in zip(range(5, 13), (15, 17, 18, 19, 20, 21, 23, 24), strict=True):
    _NAMED[f"f{_n}"] = (f"{_ESC}[{_code}~", ("tilde", _code))

# Characters that have a control code of their own (besides letters, which map to 0x01..0x1a).
_CTRL_SPECIAL = {
    "@": "\x00",
    " ": "\x00",
    "[": "\x1b",
    "\\": "\x1c",
    "]": "\x1d",
    "^": "\x1e",
    "_": "\x1f",
    "?": "\x7f",
}
_APP_CURSOR = {"up": "A", "down": "B", "right": "C", "left": "D"}


def _ctrl(ch: str) -> str | None:
    if ch.isascii() and ch.isalpha():  # one character: C-a and C-A are both 0x01
        return chr(ord(ch.lower()) & 0x1F)
    return _CTRL_SPECIAL.get(ch)


def _split_modifiers(key: str) -> tuple[bool, bool, bool, str]:
    """``"C-M-x"`` -> (ctrl, meta, shift, ``"x"``), tmux style (modifier letters in either case)."""
    ctrl = meta = shift = False
    rest = key
    while len(rest) >= 3 and rest[1] == "-" and rest[0] in "CcMmSs":
        ctrl |= rest[0] in "Cc"
        meta |= rest[0] in "Mm"
        shift |= rest[0] in "Ss"
        rest = rest[2:]
    return ctrl, meta, shift, rest


def _encode_key(key: str, app_cursor: bool) -> str | None:
    """The characters for one tmux key name, or ``None`` if ``key`` is not one (it is then text)."""
    ctrl, meta, shift, rest = _split_modifiers(key)
    name = rest.lower()
    if name in _NAMED:
        seq, modified = _NAMED[name]
        if name == "space" and ctrl:
            seq = "\x00"
        elif name == "tab" and shift:
            seq = _NAMED["btab"][0]
        elif modified is not None and (ctrl or meta or shift):
            param = 1 + shift + 2 * meta + 4 * ctrl
            kind, final = modified
            return f"{_ESC}[1;{param}{final}" if kind == "csi" else f"{_ESC}[{final};{param}~"
        elif app_cursor and name in _APP_CURSOR and not (ctrl or meta or shift):
            seq = _ESC + "O" + _APP_CURSOR[name]
        return (_ESC + seq) if meta else seq
    if len(rest) != 1 or not (ctrl or meta or shift):
        return None
    ch = rest
    if shift:
        ch = ch.upper()
    if ctrl:
        c = _ctrl(ch)
        if c is None:
            return None
        ch = c
    return (_ESC + ch) if meta else ch


def _text_bytes(text: str) -> bytes:
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # lone surrogates outside the escape range
        return text.encode("utf-8", errors="replace")


def encode_keys(keys: Sequence[str] | str, *, literal: bool = False, app_cursor: bool = False) -> bytes:
    """Bytes a terminal sends for ``keys``, with tmux ``send-keys`` semantics.

    Each element is looked up as a tmux key name (case-insensitively): ``Enter`` (CR), ``Escape``/``Esc``,
    ``Tab``, ``BTab``, ``Space``, ``BSpace`` (DEL), ``Up``/``Down``/``Left``/``Right``, ``Home``, ``End``,
    ``PageUp``/``PPage``/``PgUp``, ``PageDown``/``NPage``/``PgDn``, ``IC``/``Insert``, ``DC``/``Delete``,
    ``F1``..``F12``, with optional modifier prefixes ``C-`` (control: ``C-a``..``C-z``, ``C-@``,
    ``C-Space``, ``C-[``, ``C-\\``, ``C-]``, ``C-^``, ``C-_``, ``C-?``), ``M-`` (meta: an ESC prefix) and
    ``S-`` (shift), combinable (``C-M-x``, ``C-Left`` = xterm ``ESC [1;5D``). Anything else, including
    ``^C`` and a lone ``C-``, is sent as UTF-8 text, in which a newline becomes a carriage return (what
    a terminal's Enter key sends; ``\\r\\n`` counts as one). ``literal=True`` sends every element as text
    (tmux ``send-keys -l``). ``app_cursor=True`` sends the arrows as ``ESC O A``... (DECCKM mode).
    A single string is one element.

    Example:
        >>> encode_keys(["ls -la", "Enter"])
        b'ls -la\\r'
        >>> encode_keys(["C-c", "Up", "M-b", "^C"])
        b'\\x03\\x1b[A\\x1bb^C'
    """
    if isinstance(keys, str):
        keys = [keys]
    out = bytearray()
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"keys are strings, got {type(key).__name__}: {key!r}")
        seq = None if literal else _encode_key(key, app_cursor)
        out += _text_bytes(key) if seq is None else seq.encode()
    return bytes(out)


# ---------------------------------------------------------------------------------------------- actions
@dataclass
class KeysAction:
    """A parsed keys-mode action: what to type, and how long to watch the terminal afterwards."""

    keys: list[str]
    wait: float | None = None
    """Seconds to keep reading after the keys are sent; ``None`` = the environment's default."""
    literal: bool = False
    """Send every element as text, without key-name lookup (plain-text actions)."""


_FIELDS = ("keys", "wait", "literal")


def _looks_like_json(text: str) -> bool:
    # `{ echo a; }` and `[ -f x ]` are shell, `{"keys": ...}`, `{}` and `["ls", "Enter"]` are JSON.
    if text.startswith("{"):
        return text[1:].lstrip()[:1] in ('"', "}")
    return text.startswith(('["', "[]"))


def parse_keys_action(action: str) -> KeysAction:
    """Read a keys-mode action.

    Accepted forms:

    * a JSON object ``{"keys": ["vim notes.txt", "Enter"], "wait": 2}``: ``keys`` is a list of tmux key
      names / text (a single string is one element), ``wait`` seconds (optional, >= 0), ``literal``
      (optional bool: no key-name lookup);
    * a JSON list of strings ``["ls -la", "Enter"]``;
    * anything else is typed literally, newlines as Enter: ``"ls -la\\n"`` runs ``ls -la``.

    Raises:
        ValueError: for text that is JSON-shaped (starts with ``{"``, ``{}``, ``["``) but is not a valid
            keys action; the message names the field.

    Example:
        >>> parse_keys_action('{"keys": ["q"], "wait": 0.5}')
        KeysAction(keys=['q'], wait=0.5, literal=False)
        >>> parse_keys_action("echo hi\\n")
        KeysAction(keys=['echo hi\\n'], wait=None, literal=True)
    """
    if not isinstance(action, str):
        raise TypeError(f"a keys action is a string, got {type(action).__name__}")
    text = action.strip()
    intended = _looks_like_json(text)
    if intended or text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            if intended:
                raise ValueError(f"keys action: invalid JSON ({e})") from None
            value = None
        if isinstance(value, list):
            if intended or all(isinstance(k, str) for k in value):
                return KeysAction(keys=_check_keys(value))
        elif isinstance(value, dict):
            return _from_object(value)
        elif intended:
            raise ValueError("keys action: expected a JSON object or a list of strings")
    return KeysAction(keys=[action], literal=True)


def _check_keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError(
            f"keys action: 'keys' must be a string or a list of strings, got {type(value).__name__}"
        )
    for i, k in enumerate(value):
        if not isinstance(k, str):
            raise ValueError(f"keys action: 'keys[{i}]' must be a string, got {type(k).__name__}: {k!r}")
    return list(value)


def _from_object(obj: dict[str, Any]) -> KeysAction:
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise ValueError(f"keys action: unknown field {unknown[0]!r} (allowed: {', '.join(_FIELDS)})")
    keys = _check_keys(obj.get("keys", []))
    wait = obj.get("wait")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0
    ):
        raise ValueError(f"keys action: 'wait' must be a number of seconds >= 0, got {wait!r}")
    literal = obj.get("literal", False)
    if not isinstance(literal, bool):
        raise ValueError(f"keys action: 'literal' must be true or false, got {literal!r}")
    return KeysAction(keys=keys, wait=None if wait is None else float(wait), literal=literal)


def keys(*keys: str, wait: float | None = None, literal: bool = False) -> str:
    """The action text that types ``keys`` (tmux key names or text), then watches for ``wait`` seconds.

    Example:
        >>> keys("python3", "Enter", wait=2)
        '{"keys": ["python3", "Enter"], "wait": 2}'
    """
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"keys are strings, got {type(k).__name__}: {k!r}")
    obj: dict[str, Any] = {"keys": list(keys)}
    if wait is not None:
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
            raise ValueError(f"wait must be a number of seconds >= 0, got {wait!r}")
        obj["wait"] = wait
    if literal:
        obj["literal"] = True
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------- screen
_ALT_SCREEN_MODES = {47, 1047, 1049}
_DECCKM = 1 << 5  # pyte stores private mode n as n << 5


class _Screen(pyte.Screen):
    """A pyte screen with the alternate screen buffer (``ESC [?1049h``, used by vim, less, top...) and
    answers to status and cursor-position reports (``ESC [5n``, ``ESC [6n``)."""

    def __init__(self, columns: int, lines: int):
        self.replies: list[str] = []
        self._last_drawn = ""
        self._saved_main: tuple[Any, Any] | None = None
        super().__init__(columns, lines)

    def _new_buffer(self) -> Any:
        return defaultdict(lambda: pyte.screens.StaticDefaultDict(self.default_char))

    def reset(self) -> None:
        self._saved_main = None
        super().reset()

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and _ALT_SCREEN_MODES.intersection(modes):
            if self._saved_main is None:
                cursor = copy.copy(self.cursor) if 1049 in modes else None
                self._saved_main = (self.buffer, cursor)
                self.buffer = self._new_buffer()
                self.dirty.update(range(self.lines))
            modes = tuple(m for m in modes if m not in _ALT_SCREEN_MODES)
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private") and _ALT_SCREEN_MODES.intersection(modes):
            if self._saved_main is not None:
                self.buffer, cursor = self._saved_main
                self._saved_main = None
                if cursor is not None:
                    self.cursor = cursor
                self.dirty.update(range(self.lines))
            modes = tuple(m for m in modes if m not in _ALT_SCREEN_MODES)
        super().reset_mode(*modes, **kwargs)

    def set_margins(self, top: int | None = None, bottom: int | None = None) -> None:
        super().set_margins(top, bottom)
        if not top and bottom is None:
            # DECSTBM moves the cursor home, also when it resets the scroll region (ESC [r), as xterm and
            # tmux do; pyte leaves the cursor where it was then.
            self.cursor_position()

    def alignment_display(self) -> None:
        # DECALN (ESC #8) also resets the scroll region and homes the cursor, as in xterm and tmux.
        super().alignment_display()
        self.margins = None
        self.cursor_position()

    # Sequences pyte does not know (dispatched by _Stream); ncurses uses SU/SD (terminfo indn/rin) and
    # CBT (cbt) with TERM=xterm-256color.
    def scroll_up(self, count: int = 1, **kwargs: Any) -> None:
        """SU (``ESC [n S``): the scroll region's lines move up ``count`` rows; the cursor stays."""
        if not kwargs.get("private"):
            self._scroll(max(1, count or 1))

    def scroll_down(self, count: int = 1, *more: int, **kwargs: Any) -> None:
        """SD (``ESC [n T``): the scroll region's lines move down ``count`` rows; the cursor stays (with
        more parameters it is xterm's mouse-tracking request, ignored)."""
        if not kwargs.get("private") and not more:
            self._scroll(-max(1, count or 1))

    def _scroll(self, n: int) -> None:
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        rows = range(top, bottom + 1) if n > 0 else range(bottom, top - 1, -1)
        for y in rows:
            src = y + n
            if top <= src <= bottom:
                self.buffer[y] = self.buffer[src]
            else:
                self.buffer.pop(y, None)
        self.dirty.update(range(self.lines))

    def draw(self, data: str) -> None:
        super().draw(data)
        if data:
            self._last_drawn = data[-1]

    def repeat_last(self, count: int = 1, **kwargs: Any) -> None:
        """REP (``ESC [n b``): the character drawn last, ``count`` more times (ncurses' terminfo ``rep``)."""
        if not kwargs.get("private") and self._last_drawn:
            self.draw(self._last_drawn * min(max(1, count or 1), self.columns * self.lines))

    def save_cursor_sco(self, *params: int, **kwargs: Any) -> None:
        """SCOSC (``ESC [s``): save the cursor, as ``ESC 7`` (not with parameters: ``ESC [>1u``...)."""
        if not kwargs.get("private") and params in ((), (0,)):
            self.save_cursor()

    def restore_cursor_sco(self, *params: int, **kwargs: Any) -> None:
        """SCORC (``ESC [u``): restore the cursor saved by ``ESC [s`` or ``ESC 7``."""
        if not kwargs.get("private") and params in ((), (0,)):
            self.restore_cursor()

    def backward_tab(self, count: int = 1, **kwargs: Any) -> None:
        """CBT (``ESC [n Z``): to the ``count``-th previous tab stop (the first column at most)."""
        if kwargs.get("private"):
            return
        x = min(self.cursor.x, self.columns - 1)
        for _ in range(max(1, count or 1)):
            x = max((t for t in self.tabstops if t < x), default=0)
        self.cursor.x = x

    def report_device_attributes(self, mode: int = 0, **kwargs: bool) -> None:
        # pyte cannot tell a secondary DA request (ESC [>c, sent by vim) from a primary one; a wrong
        # answer is worse than none, and programs go on without one.
        pass

    def write_process_input(self, data: str) -> None:
        self.replies.append(data)

    @property
    def alternate(self) -> bool:
        return self._saved_main is not None


def _ignore_private(method: Any) -> Any:
    @functools.wraps(method)
    def handler(self: _Screen, *args: Any, **kwargs: Any) -> None:
        if kwargs.pop("private", False):
            return  # a DEC private variant (ESC [? ... m, ESC [? ... n...) pyte does not implement
        method(self, *args, **kwargs)

    return handler


# pyte passes private=True to every CSI handler after "ESC [?", but most do not accept it (TypeError).
for _name in set(pyte.Stream.csi.values()):
    _params = inspect.signature(getattr(_Screen, _name)).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD or p.name == "private" for p in _params):
        setattr(_Screen, _name, _ignore_private(getattr(_Screen, _name)))


class _Stream(pyte.ByteStream):
    """pyte's byte stream, with the CSI sequences :class:`_Screen` adds (SU, SD, CBT, REP, SCOSC, SCORC; not CHT, which tmux ignores too)."""

    csi = {
        **pyte.ByteStream.csi,
        "S": "scroll_up",
        "T": "scroll_down",
        "Z": "backward_tab",
        "b": "repeat_last",
        "s": "save_cursor_sco",
        "u": "restore_cursor_sco",
    }


def render_screen(screen: pyte.Screen) -> str:
    """The screen as text: rows joined by newlines, trailing spaces stripped, empty rows below both the
    last non-empty row and the cursor dropped."""
    lines = [line.rstrip() for line in screen.display]
    last = max((i for i, line in enumerate(lines) if line), default=-1)
    return "\n".join(lines[: max(last, screen.cursor.y) + 1])


# A run of bytes pyte treats as plain text, carriage returns and line feeds only (no escape sequence, no
# other control character, ASCII: every character one cell wide).
_PLAIN_RUN = re.compile(rb"[\x20-\x7e\r\n]*")


def feed_screen(stream: pyte.ByteStream, data: bytes) -> None:
    """Feed terminal output to ``stream`` (and so its screen), fast for floods of plain lines.

    Where ``data`` starts with a long run of plain text (printable ASCII, CR, LF) and the screen is in a
    plain state (the parser between sequences, no partial UTF-8 character, full-screen scroll region, no
    insert mode), the part of the run before a carriage return that is followed by at least twice the
    screen's height of line feeds is skipped: every row it could leave on the screen is scrolled away by
    what follows, and that CR puts the cursor in the first column either way, so the resulting screen
    and cursor are the same as if everything had been fed. pyte draws about 0.5 MB/s; ``seq 1 1000000``
    would otherwise keep a terminal busy for seconds.
    """
    screen = stream.listener
    if (
        len(data) > 1024
        and isinstance(screen, pyte.Screen)
        and getattr(stream, "_taking_plain_text", None) is True
        and (not stream.use_utf8 or stream.utf8_decoder.getstate()[0] == b"")
        and screen.margins in (None, (0, screen.lines - 1))
        and pyte.modes.IRM not in screen.mode
    ):
        end = _PLAIN_RUN.match(data).end()  # type: ignore[union-attr]
        pos = end
        for _ in range(2 * screen.lines):
            pos = data.rfind(b"\n", 0, pos)
            if pos < 0:
                break
        else:
            cr = data.rfind(b"\r", 0, pos)
            if cr > 0:
                data = data[cr:]
    stream.feed(data)


# ---------------------------------------------------------------------------------------------- session
@dataclass
class KeysResult:
    """What one keys action produced."""

    output: str
    """Everything the terminal printed since the previous action returned (or since the session started)
    and while this one ran (echo included), ANSI-stripped, head and tail kept within the byte budget."""
    screen: str
    """The rendered screen afterwards (see :meth:`KeysSession.screen`)."""
    wait_s: float
    """How long the terminal was watched after the keys were sent."""
    duration_s: float = 0.0
    truncated_bytes: int = 0
    unsent_bytes: int = 0
    """Keystrokes the terminal did not accept within the write timeout (a program not reading input)."""
    shell_exited: bool = False


_POLL_S = 0.1
"""While an action runs, how often the shell process is asked whether it exited (a terminal other processes
also hold never reports EOF). Never between actions: for Docker each ask is an Engine API call."""
_SETTLE_S = 0.25
"""After the wait, output already on its way is still taken into the action, for this long at most."""
_READ_BATCH = 1 << 16
"""The reader takes at most this many bytes (what is already there) before it feeds the screen (the lock
is held meanwhile: pyte draws about 0.5 MB/s of non-plain output)."""
_MAX_REPLIES = 1 << 16
_HUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


def _ready(fd: int, events: int, timeout: float = 0.0) -> int:
    """``poll(2)`` on one descriptor (any number, unlike ``select``): its returned events, 0 on timeout."""
    p = select.poll()
    p.register(fd, events)
    for _, ev in p.poll(math.ceil(max(0.0, timeout) * 1000)):
        return ev
    return 0


class KeysSession:
    """Keys-mode terminal: an interactive ``bash -i`` (readline, echo, prompt ``root@sandbox:/app#``) on a
    PTY in ``sandbox``, rendered on a ``rows`` x ``cols`` pyte screen of the same size as the PTY.

    Like tmux, the session reads the terminal all the time, not only while an action runs: a daemon
    thread per session (blocked in ``poll(2)`` while nothing is printed) feeds the screen, answers
    terminal queries and keeps what was printed (head and tail within ``max_output_bytes``) for the next
    action's :attr:`KeysResult.output`. Programs printing a lot while the agent thinks run on instead
    of blocking on a full PTY. :meth:`close` stops the thread before the terminal is released.

    Example:
        >>> ks = KeysSession(sandbox); ks.start()                    # doctest: +SKIP
        >>> ks.send(["python3", "Enter"], wait=1.0).screen           # doctest: +SKIP
        'root@sandbox:/app# python3\\nPython 3.11.2 ...\\n>>>'
        >>> ks.send(["6*7", "Enter"]).output                         # doctest: +SKIP
        '6*7\\n42\\n>>> '
    """

    def __init__(
        self,
        sandbox: Sandbox,
        rows: int = 40,
        cols: int = 160,
        *,
        wait: float = DEFAULT_WAIT,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
        write_timeout: float = 10.0,
        term: str = "xterm-256color",
    ):
        if rows < 2 or cols < 10:
            raise ValueError(f"terminal too small: {rows}x{cols} (rows x cols)")
        self.sandbox = sandbox
        self.rows, self.cols = rows, cols
        self.wait = wait
        self.max_output_bytes = max_output_bytes
        self.write_timeout = write_timeout
        self.term = term
        self.pty: PtyProcess | None = None
        # Everything below is shared with the reader thread and guarded by _cond (pyte is not thread-safe).
        self._cond = threading.Condition(threading.RLock())
        self._screen = _Screen(cols, rows)
        self._stream = _Stream(self._screen)
        self._out = HeadTailBuffer(max_output_bytes)  # printed since the last action returned
        self._replies = bytearray()  # answers to terminal queries not written yet
        self._exited = False
        self._stopping = False
        self._reader: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None  # self-pipe that wakes the reader to stop
        self.initial_output = ""
        """What the shell printed while starting (normally just the prompt)."""

    # ------------------------------------------------------------------ lifecycle
    def pty_request(self) -> PtyRequest:
        """The shell this session runs; pass it to ``sandbox.start(pty=...)`` to start both at once."""
        return PtyRequest(
            argv=["bash", "--noprofile", "--norc", "-i"],
            env={
                "PS1": PROMPT,
                "PS2": "> ",
                "PROMPT_COMMAND": "",
                "TERM": self.term,
                "HISTFILE": "/dev/null",
            },
            rows=self.rows,
            cols=self.cols,
            echo=True,
        )

    def start(self, *, timeout: float = 30.0) -> None:
        """Start the shell (or adopt the one the sandbox started), start reading its terminal, and wait
        until its prompt is on screen."""
        if self.pty is not None:
            raise ShellError("the session is already started")
        if self.sandbox.primary_pty is not None:
            self.pty, self.sandbox.primary_pty = self.sandbox.primary_pty, None
        else:
            req = self.pty_request()
            self.pty = self.sandbox.spawn_pty(
                req.argv, env=req.env, rows=req.rows, cols=req.cols, echo=req.echo
            )
        self._start_reader(self.pty.fd)
        try:
            self._wait_for_prompt(self.pty, timeout)
        except BaseException:
            self._stop_reader()  # close() still kills the shell
            raise

    def _wait_for_prompt(self, pty: PtyProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + _POLL_S
        while True:
            with self._cond:
                if self._prompt_shown():
                    self.initial_output = strip_ansi(decode(self._take_output().getvalue()))
                    return
                now = time.monotonic()
                if self._exited or now >= deadline:
                    printed = decode(self._out.getvalue())[-500:]
                    why = "exited while starting" if self._exited else "did not show its prompt"
                    raise ShellError(f"the shell {why}: {printed!r}")
                if now < next_poll:
                    self._cond.wait(min(next_poll, deadline) - now)
                    continue
            next_poll = time.monotonic() + _POLL_S
            if pty.poll() is not None:
                self._settle(pty.fd)
                self._set_exited()

    def _prompt_shown(self) -> bool:
        s = self._screen
        return s.display[s.cursor.y][: s.cursor.x].endswith(("# ", "$ "))

    def close(self) -> None:
        """Stop reading the terminal (the reader thread is joined before the terminal is released), then
        kill the shell and everything it started."""
        self._stop_reader()
        if self.pty is not None:
            self.pty.kill()
            self.pty = None

    @property
    def alive(self) -> bool:
        return self.pty is not None and not self._exited and self.pty.poll() is None

    # ------------------------------------------------------------------ screen
    def screen(self) -> str:
        """The rendered screen: rows joined by ``\\n``, trailing spaces stripped, trailing empty rows below
        the cursor dropped. Programs on the alternate screen (vim, less) show it; after they exit, the
        shell's screen is back. It is the latest state: the terminal is read between actions too."""
        with self._cond:
            return render_screen(self._screen)

    @property
    def cursor(self) -> tuple[int, int]:
        """The cursor's (row, column), 0-based."""
        with self._cond:
            return self._screen.cursor.y, self._screen.cursor.x

    @property
    def alternate(self) -> bool:
        """A full-screen program (vim, less, top) has the alternate screen: what it prints is cursor
        movements, not lines, so only the rendered :meth:`screen` is readable."""
        with self._cond:
            return self._screen.alternate

    @property
    def title(self) -> str:
        with self._cond:
            return self._screen.title

    # ------------------------------------------------------------------ actions
    def send(
        self, keys: Sequence[str] | str = (), wait: float | None = None, *, literal: bool = False
    ) -> KeysResult:
        """Type ``keys`` (see :func:`encode_keys`), then watch the terminal for ``wait`` seconds (default
        :attr:`wait`); returns what was printed since the previous action returned (output while the
        agent was thinking included, within the byte budget) and the screen. Stops early if the shell
        exits; a shell that exited between actions is reported here (nothing is then typed)."""
        if self.pty is None:
            raise ShellError("the session is not started")
        wait = self.wait if wait is None else wait
        if wait < 0:
            raise ValueError(f"wait must be >= 0, got {wait}")
        with self._cond:
            app_cursor = _DECCKM in self._screen.mode
        data = encode_keys(keys, literal=literal, app_cursor=app_cursor)
        t0 = time.monotonic()
        unsent = self._act(self.pty, memoryview(data), wait)
        with self._cond:
            buf = self._take_output()
            screen = render_screen(self._screen)
            exited = self._exited
        return KeysResult(
            output=strip_ansi(decode(buf.getvalue())),
            screen=screen,
            wait_s=wait,
            duration_s=time.monotonic() - t0,
            truncated_bytes=buf.dropped,
            unsent_bytes=unsent,
            shell_exited=exited,
        )

    def _take_output(self) -> HeadTailBuffer:
        buf, self._out = self._out, HeadTailBuffer(self.max_output_bytes)
        return buf

    def _set_exited(self) -> None:
        with self._cond:
            self._exited = True
            self._cond.notify_all()

    def _act(self, pty: PtyProcess, data: memoryview, wait: float) -> int:
        """Write ``data``, then let the reader collect output for ``wait`` more seconds (or until the shell
        exits), asking the shell whether it exited every :data:`_POLL_S` (and at least once). Returns the
        number of bytes that could not be written."""
        fd = pty.fd
        now = time.monotonic()
        write_deadline = now + self.write_timeout
        next_poll, polled = now + _POLL_S, False
        deadline: float | None = None
        unsent = 0
        while not self._exited:
            now = time.monotonic()
            if data and now >= write_deadline:
                unsent, data = len(data), data[:0]
            if not data and deadline is None:
                deadline = now + wait
            if now >= next_poll or (deadline is not None and now >= deadline and not polled):
                # A terminal that other processes also hold never reports EOF: ask the process itself.
                next_poll, polled = now + _POLL_S, True
                if pty.poll() is not None:
                    self._settle(fd)
                    self._set_exited()
                continue
            if deadline is not None:
                if now >= deadline:
                    self._settle(fd)  # past the deadline, output already on its way is still taken
                    break
                with self._cond:
                    if not self._exited:
                        self._cond.wait(min(next_poll, deadline) - now)
                continue
            # Writing; the reader goes on reading meanwhile, so a program echoing its input cannot stall.
            ev = _ready(fd, select.POLLOUT, min(next_poll, write_deadline) - now)
            if ev & select.POLLNVAL:  # the descriptor was closed under us
                self._set_exited()
            elif ev & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                try:
                    # Small writes: on a blocking socket (another backend's terminal) a write that
                    # poll() reported possible then never blocks.
                    n = os.write(fd, data[:4096])
                    data = data[n:]
                except BlockingIOError:
                    pass
                except OSError:  # EIO: every slave end closed
                    self._set_exited()
        return unsent + len(data)

    def _settle(self, fd: int) -> None:
        """Wait (:data:`_SETTLE_S` at most) until the reader has taken what the terminal already holds."""
        end = time.monotonic() + _SETTLE_S
        with self._cond:
            # The reader reads under the lock: while we hold it, nothing read is on its way to the screen.
            while not (self._exited or self._stopping) and self._reader is not None:
                left = end - time.monotonic()
                if left <= 0 or not _ready(fd, select.POLLIN) & (select.POLLIN | _HUP):
                    return
                self._cond.wait(left)  # the reader notifies after each read

    # ------------------------------------------------------------------ the reader thread
    def _start_reader(self, fd: int) -> None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._wake = (r, w)
        self._reader = threading.Thread(
            target=self._read_loop, args=(fd, r), name=f"ltenv-keys-reader-{fd}", daemon=True
        )
        self._reader.start()

    def _stop_reader(self) -> None:
        thread, wake = self._reader, self._wake
        if thread is None or wake is None:
            return
        with self._cond:  # once set, the reader never touches the terminal again (it checks under the lock)
            self._stopping = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            os.write(wake[1], b"x")
        if thread is not threading.current_thread():
            thread.join(timeout=10)
        if thread.is_alive():
            log.warning("the keys-mode terminal reader did not stop; leaving it behind")
            return
        self._reader = self._wake = None
        for fd in wake:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read_loop(self, fd: int, wake: int) -> None:
        """The reader thread: blocks in ``poll`` on the terminal and the wake pipe, never on a timer."""
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        poller.register(fd, select.POLLIN)
        probe = select.poll()  # is more output already there?
        probe.register(fd, select.POLLIN)
        writing = False
        try:
            while True:
                events = dict(poller.poll())
                if wake in events:
                    return
                ev = events.get(fd, 0)
                with self._cond:
                    if self._stopping:
                        return
                    if ev & select.POLLNVAL:  # the descriptor was closed under us
                        self._exited = True
                        return
                    if ev & (select.POLLIN | select.POLLHUP | select.POLLERR) and not self._read(
                        fd, probe, ev
                    ):
                        self._exited = True  # EOF or EIO: every slave end closed, the shell is gone
                        return
                    if self._replies and ev & select.POLLOUT:
                        self._write_replies(fd)
                    if writing != bool(self._replies):
                        writing = bool(self._replies)
                        poller.modify(fd, select.POLLIN | (select.POLLOUT if writing else 0))
        except Exception:  # a bug here must not hang the session: report it as a terminal that ended
            log.warning("the keys-mode terminal reader failed", exc_info=True)
            with self._cond:
                self._exited = True
        finally:
            with self._cond:
                self._cond.notify_all()

    def _read(self, fd: int, probe: Any, events: int) -> bool:
        """Read what the terminal has (without blocking: only after ``poll`` reported it), feed it to the
        screen and the output buffer. Returns False at EOF. Called with the lock held."""
        chunks: list[bytes] = []
        size, eof = 0, False
        while size < _READ_BATCH:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                # A hang-up with nothing to read would wake poll() again at once: the terminal is done.
                eof = not chunks and not events & select.POLLIN
                break
            except OSError:  # EIO
                chunk = b""
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            size += len(chunk)
            if not any(ev & (select.POLLIN | _HUP) for _, ev in probe.poll(0)):
                break
        if chunks:
            self._feed(b"".join(chunks), fd)
            self._cond.notify_all()
        return not eof

    def _feed(self, chunk: bytes, fd: int) -> None:
        self._out.write(chunk)
        try:
            feed_screen(self._stream, chunk)
        except Exception:  # a sequence pyte chokes on must not end the episode; its parser resets itself
            log.debug("pyte could not parse terminal output", exc_info=True)
        if self._screen.replies:
            reply = "".join(self._screen.replies).encode()
            self._screen.replies.clear()
            if len(self._replies) + len(reply) <= _MAX_REPLIES:
                self._replies += reply
        if self._replies:
            self._write_replies(fd)

    def _write_replies(self, fd: int) -> None:
        """Answer terminal queries (a terminal report is never worth failing over; what the terminal does
        not take now is written when it is writable)."""
        if not _ready(fd, select.POLLOUT) & select.POLLOUT:
            return
        try:
            n = os.write(fd, self._replies[:4096])
        except BlockingIOError:
            return
        except OSError:
            n = len(self._replies)
        del self._replies[:n]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self.close()
