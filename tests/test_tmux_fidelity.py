"""Keys mode against a real tmux: the same keystrokes leave the same screen text.

Terminal-Bench's Terminus-2 types into a tmux pane and reads it with ``capture-pane``; keys mode types
into a PTY rendered by ``pyte``. Inside one sandbox of the ``keys-fidelity`` fixture (tmux, vim-tiny,
less, python3, a curses program) a detached tmux session and a :class:`KeysSession` of the same size run
the same shell with the same environment; every step sends the same key specs to both (tmux through
``send-keys``: ``-l`` for text, key names as keys) and, once both screens are quiet, compares them.
"""

from __future__ import annotations

import dataclasses
import shlex
import time

import pytest

from ltenv.sandbox import create_sandbox
from ltenv.terminal.keys import KeysSession, _encode_key, _Screen, _Stream, render_screen

ROWS, COLS = 24, 80
QUIET_S = 0.3
"""Both screens must stay unchanged this long before they are compared."""


def _normalise(lines: list[str]) -> list[str]:
    # Trailing spaces and the empty rows at the bottom carry no text: capture-pane prints every row of the
    # pane padded with nothing, KeysSession.screen() strips each row and drops empty rows below the cursor.
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


class _Pair:
    """A tmux pane and a keys-mode session in one sandbox, driven in lockstep."""

    def __init__(self, sandbox, keys: KeysSession):
        self.sb = sandbox
        self.keys = keys

    def tmux(self, *args: str) -> str:
        res = self.sb.exec(["tmux", *args], timeout=20)
        assert res.ok, res.text
        return res.text

    def pane(self) -> tuple[list[str], str]:
        """The pane's text and its cursor ``row,col``, from one tmux call."""
        out = self.tmux(
            "capture-pane", "-p", "-t", "S", ";", "display", "-p", "-t", "S", "#{cursor_y},#{cursor_x}"
        )
        text, _, cursor = out.rstrip("\n").rpartition("\n")
        return _normalise(text.split("\n")), cursor

    def screen(self) -> tuple[list[str], str]:
        return _normalise(self.keys.screen().split("\n")), "{},{}".format(*self.keys.cursor)

    def send(self, *specs: str, until: str | None = None, timeout: float = 15.0) -> list[str]:
        """Send ``specs`` to both, wait until both screens are quiet (and show ``until``), compare them:
        the text and the cursor (where the next character lands is part of what the agent sees)."""
        argv: list[str] = []
        for spec in specs:
            is_key = _encode_key(spec, app_cursor=False) is not None
            argv += [";"] if argv else []
            argv += ["send-keys", "-t", "S", spec] if is_key else ["send-keys", "-t", "S", "-l", spec]
        self.tmux(*argv)
        self.keys.send(list(specs), wait=0.05)
        deadline = time.monotonic() + timeout
        last = None
        since = time.monotonic()
        while True:
            now = (self.pane(), self.screen())
            if now != last:
                last, since = now, time.monotonic()
            ready = until is None or all(until in "\n".join(lines) for lines, _ in now)
            if ready and time.monotonic() - since >= QUIET_S:
                break
            assert time.monotonic() < deadline, f"screens not quiet after {specs!r}: {now}"
            time.sleep(0.05)
        (pane, pane_cursor), (screen, cursor) = last
        assert screen == pane, (
            f"after {specs!r} keys mode and tmux differ:\n"
            + "\n".join(pane)
            + "\n---- keys mode:\n"
            + "\n".join(screen)
        )
        assert cursor == pane_cursor, (
            f"after {specs!r}: cursor (row,col) {cursor} in keys mode, {pane_cursor} in tmux"
        )
        return screen


@pytest.fixture
def pair(backend, store, fixture_task):
    task = fixture_task("keys-fidelity")
    sb = create_sandbox(task, backend=backend, store=store, memory_mb=512, pids_limit=256)
    keys = KeysSession(sb, rows=ROWS, cols=COLS, wait=0.1)
    req = keys.pty_request()
    # The two shells share the sandbox, so each gets a home of its own (vim's swap file, python's
    # history, the files typed below); the first step `cd`s there and the prompt shows `~` in both.
    req = dataclasses.replace(req, env={**req.env, "HOME": "/root/keys"})
    sb.start(pty=req)
    try:
        tmux_env = {**req.env, "HOME": "/root/tmux"}
        shell = " ".join(shlex.quote(a) for a in req.argv)
        launch = "exec env " + " ".join(shlex.quote(f"{k}={v}") for k, v in tmux_env.items()) + " " + shell
        sb.put_bytes(launch.encode() + b"\n", "/root/pane.sh", mode=0o755)
        res = sb.exec(["mkdir", "-p", "/root/keys", "/root/tmux"])
        assert res.ok, res.text
        # No status line (tmux draws one by default; keys mode has none), so the pane is the whole 80x24.
        session = ["new-session", "-d", "-s", "S", "-x", str(COLS), "-y", str(ROWS), "/root/pane.sh"]
        res = sb.exec(["tmux", "-f", "/dev/null", *session, ";", "set", "-g", "status", "off"], timeout=20)
        assert res.ok, res.text
        keys.start()
        p = _Pair(sb, keys)
        size = p.tmux("display", "-p", "-t", "S", "#{pane_width}x#{pane_height}").strip()
        assert size == f"{COLS}x{ROWS}"
        yield p
    finally:
        keys.close()
        sb.close()


def test_same_screens_as_tmux(pair):
    p = pair
    p.send("cd", "Enter", until="~#")
    # Plain text and Enter.
    assert p.send("echo hello world", "Enter")[-2:] == ["hello world", "root@sandbox:~#"]
    # C-c interrupts a foreground program.
    p.send("sleep 100", "Enter")
    assert p.send("C-c")[-3:] == ["root@sandbox:~# sleep 100", "^C", "root@sandbox:~#"]
    # Output that scrolls the screen.
    assert p.send("seq 1 30", "Enter")[:2] == ["8", "9"]
    # C-d leaves the python REPL after it evaluated an expression.
    p.send("python3", "Enter", until=">>>")
    assert p.send("6 * 7", "Enter")[-2:] == ["42", ">>>"]
    p.send("C-d")
    # Arrows: history Up, then Left and inserted text.
    p.send("clear", "Enter")
    p.send("echo one", "Enter")
    p.send("Up")
    assert p.send("Left", "Left", "Left", "two ", "Enter")[-2:] == ["two one", "root@sandbox:~#"]
    # Escape as readline's meta prefix: Escape b goes back a word.
    assert p.send("echo abc def", "Escape", "b", "X", "Enter")[-2:] == ["abc Xdef", "root@sandbox:~#"]
    # vim: insert, Escape, :wq.
    p.send("clear", "Enter")
    p.send("vi note.txt", "Enter", until="note.txt")
    assert p.send("i", "hello from vim")[0] == "hello from vim"
    assert p.send("Escape")[-1] == '"note.txt" [New File]'  # vim's own screen, on the alternate screen
    p.send(":wq", "Enter")
    assert "hello from vim" in p.send("cat note.txt", "Enter")
    # A pager: less on a long file, Space for the next page, q.
    p.send("clear", "Enter")
    p.send("seq 1 200 > long.txt", "Enter")
    assert p.send("less long.txt", "Enter", until="long.txt")[0] == "1"
    assert p.send("Space")[::11] == ["24", "35", "46"]
    p.send("q")
    # Sequences pyte lacks or gets wrong, which keys mode adds (ncurses emits SU/SD, REP and CBT for
    # TERM=xterm-256color): scroll up/down, repeat, SCO save/restore, back tab, scroll-region reset.
    p.send("clear", "Enter")
    seqs = r"1\n2\n3\n4\e[2S\e[1Tx\e[4b\e[s\e[8;3Hfar\e[u|\tab\e[2Zz\e[3;6r\e[r@\n"
    screen = p.send(f"printf '{seqs}'", "Enter")
    # (The command line wraps to two rows; ESC [2S scrolls it off; ESC [r sends "@" to the top.)
    assert screen == ["@", "root@sandbox:~#", "2", "3", "4", "zxxxxx| ab", "", "  far"]
    # A curses program: a box with text, left with a key. Its line drawing shows as the DEC graphics
    # letters (lqqk) in both: capture-pane -p prints a cell's character without its charset, and pyte
    # ignores charset designations on a UTF-8 stream.
    p.send("clear", "Enter")
    assert "a box drawn with curses" in "\n".join(p.send("python3 /app/box.py", "Enter", until="any key"))
    assert "box.py got key: 'x'" in p.send("x", until="got key")


@pytest.mark.parametrize(
    ("data", "screen", "cursor"),
    [
        # SU / SD move the lines of the scroll region, the cursor stays.
        (b"1\r\n2\r\n3\r\n4\x1b[2S", "3\n4\n\n", (3, 1)),
        (b"1\r\n2\r\n3\x1b[2;4r\x1b[4;1H\x1b[T", "1\n\n2\n3", (3, 0)),
        # REP repeats the character drawn last.
        (b"ab\x1b[3b|", "abbbb|", (0, 6)),
        # SCOSC / SCORC save and restore the cursor; with parameters (ESC [>1u) they are something else.
        (b"ab\x1b[s\x1b[3;3Hx\x1b[uc\x1b[>1u", "abc\n\n  x", (0, 3)),
        # CBT goes back to the previous tab stops, the first column at most.
        (b"a\tb\tc\x1b[2Z|\x1b[5Z", "|       b  c", (0, 0)),
        # Resetting the scroll region (ESC [r) homes the cursor, as DECALN does.
        (b"\r\n\r\n  x\x1b[r", "\n\n  x", (0, 0)),
        (b"\x1b[3;3H\x1b#8", "\n".join(["E" * 12] * 4), (0, 0)),
    ],
)
def test_screen_sequences_as_tmux(data, screen, cursor):
    """What the tmux comparison above found pyte lacking, one sequence at a time (no sandbox needed)."""
    s = _Screen(12, 4)
    _Stream(s).feed(data)
    assert render_screen(s) == screen
    assert (s.cursor.y, s.cursor.x) == cursor
