"""A persistent bash on a real pseudo-terminal inside a sandbox, driven command by command.

Completion is detected exactly: each command is staged as a file and sourced by a shell function that
prints a marker carrying a per-session nonce, the command's sequence number and its exit status. Nothing
ever sleeps to guess that output is over. Because the command is *sourced* by the interactive shell,
``cd``, ``export``, functions, aliases and background jobs persist from one command to the next, and
heredocs and multi-line scripts work unchanged.

A command that outlives its timeout gets Ctrl-C (SIGINT to the terminal's foreground process group),
then SIGKILL for every process the shell started, and as a last resort a fresh shell; the session is
usable afterwards in every case.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from dataclasses import dataclass

from ltenv.errors import ShellError
from ltenv.fdwait import wait_fds
from ltenv.output import HeadTailBuffer, decode, strip_ansi
from ltenv.sandbox.base import PtyProcess, PtyRequest, Sandbox

DEFAULT_TIMEOUT = 180.0
DEFAULT_MAX_OUTPUT = 16 * 1024
_CARRY = 48  # longest marker is well under this


def _quoted_chunks(data: bytes, size: int = 3000) -> list[str]:
    """``data`` as bash ``$'...'`` bodies of at most ``size`` characters; only printable ASCII is sent raw
    (control bytes would be line-editing keys to the terminal; ``!`` is escaped for good measure)."""
    chunks: list[str] = []
    cur: list[str] = []
    n = 0
    for b in data.replace(b"\0", b""):
        tok = chr(b) if 0x20 <= b < 0x7F and b not in (0x27, 0x5C, 0x21) else f"\\x{b:02x}"
        if n + len(tok) > size:
            chunks.append("".join(cur))
            cur, n = [], 0
        cur.append(tok)
        n += len(tok)
    if cur or not chunks:
        chunks.append("".join(cur))
    return chunks


class ShellExited(ShellError):
    """The shell exited (``exit``, ``exec``, killed); the sandbox is still there."""


@dataclass
class CommandResult:
    """What one command did. ``output`` is ANSI-stripped and head+tail truncated to the byte budget."""

    output: str
    exit_code: int | None
    """The command's exit status; ``None`` if it timed out or the shell exited."""
    timed_out: bool = False
    duration_s: float = 0.0
    truncated_bytes: int = 0
    shell_exited: bool = False
    shell_restarted: bool = False


class ShellSession:
    """Command-mode terminal: one persistent ``bash -i`` on a PTY in ``sandbox``.

    Example:
        >>> sh = ShellSession(sandbox); sh.start()            # doctest: +SKIP
        >>> sh.run("cd /tmp && export X=1").exit_code         # doctest: +SKIP
        0
        >>> sh.run("pwd; echo $X").output                     # doctest: +SKIP
        '/tmp\\n1\\n'
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
        rows: int = 40,
        cols: int = 160,
    ):
        self.sandbox = sandbox
        self.timeout = timeout
        self.max_output_bytes = max_output_bytes
        self.rows, self.cols = rows, cols
        self.pty: PtyProcess | None = None
        self._nonce = secrets.token_hex(8)
        self._marker = re.compile(rb"\x1e" + self._nonce.encode() + rb":(\d+):(\d+)\x1e")
        self._seq = 0
        self._pending = b""  # output that arrived between commands (background jobs)
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle
    def pty_request(self) -> PtyRequest:
        """The shell this session runs; pass it to ``sandbox.start(pty=...)`` to start both at once."""
        return PtyRequest(
            argv=["bash", "--noprofile", "--norc", "--noediting", "-i"],
            env={"PS1": "", "PS2": "", "HISTFILE": "/dev/null", "PROMPT_COMMAND": ""},
            rows=self.rows,
            cols=self.cols,
            echo=False,
        )

    def start(self, *, timeout: float = 30.0) -> None:
        """Start the shell (or adopt the one the sandbox started) and wait until it is ready for commands."""
        if self.sandbox.primary_pty is not None and self.restarts == 0 and self.pty is None:
            self.pty, self.sandbox.primary_pty = self.sandbox.primary_pty, None
        else:
            req = self.pty_request()
            self.pty = self.sandbox.spawn_pty(
                req.argv, env=req.env, rows=req.rows, cols=req.cols, echo=req.echo
            )
        # One line: silent prompts, and the functions that run a command and print its marker.
        mark = f"builtin printf '\\036{self._nonce}:%s:%d\\036'"
        init = (
            "unset PROMPT_COMMAND; PS1=''; PS2=''; set +H; "
            f'__ltenv_run() {{ . "$1"; {mark} "$2" "$?"; }}; '
            f'__ltenv_eval() {{ . /dev/fd/57 57<<<"$__ltenv_c"; {mark} "$1" "$?"; }}; '
            f"{mark} 0 0\n"
        )
        self._write(init.encode())
        buf = HeadTailBuffer(4096)
        try:
            ok, _ = self._read_until(0, time.monotonic() + timeout, buf)
        except ShellExited:
            raise ShellError(f"the shell exited while starting: {decode(buf.getvalue())[-500:]!r}") from None
        if not ok:
            raise ShellError(f"the shell did not start: {decode(buf.getvalue())[-500:]!r}")

    def close(self) -> None:
        if self.pty is not None:
            self.pty.kill()
            self.pty = None

    def restart(self) -> None:
        """Replace the shell (stuck, or killed: e.g. by the kernel at the sandbox's memory limit) with a fresh
        one in the same sandbox; its working directory, variables and jobs are lost."""
        self.close()
        self.restarts += 1
        self._pending = b""
        self.start()

    def _reap(self, timeout: float = 2.0) -> None:
        # The terminal closes a moment before the process is reaped: wait so `alive` is accurate.
        deadline = time.monotonic() + timeout
        while self.pty is not None and self.pty.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def alive(self) -> bool:
        return self.pty is not None and self.pty.poll() is None

    # ------------------------------------------------------------------ I/O primitives
    def _write(self, data: bytes) -> None:
        assert self.pty is not None
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.pty.fd, view)
                view = view[n:]
            except BlockingIOError:
                wait_fds([], [self.pty.fd], 1.0)
            except OSError as e:
                raise ShellExited(f"the shell's terminal is closed ({e})") from None

    def _read_until(self, seq: int, deadline: float, buf: HeadTailBuffer) -> tuple[bool, int | None]:
        """Read output into ``buf`` until the marker of command ``seq`` (→ ``(True, status)``) or the deadline."""
        assert self.pty is not None
        fd = self.pty.fd
        carry = self._pending
        self._pending = b""
        while True:
            m = None
            for m in self._marker.finditer(carry):
                if int(m.group(1)) == seq:
                    buf.write(carry[: m.start()])
                    self._pending = carry[m.end() :]
                    return True, int(m.group(2))
            if m is not None:  # stale markers of commands abandoned earlier: drop them
                carry = self._marker.sub(b"", carry)
            if len(carry) > _CARRY:
                buf.write(carry[:-_CARRY])
                carry = carry[-_CARRY:]
            wait = deadline - time.monotonic()
            if wait <= 0:
                self._pending = carry
                return False, None
            r, _ = wait_fds([fd], [], min(wait, 0.2))
            if not r:
                # A terminal that other processes also hold never reports EOF: ask the process itself.
                if self.pty.poll() is not None:
                    buf.write(carry)
                    raise ShellExited("the shell exited")
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:  # EIO: every slave end closed, the shell is gone
                chunk = b""
            if not chunk:
                buf.write(carry)
                raise ShellExited("the shell exited")
            carry += chunk

    def _submit(self, text: str) -> int:
        """Send one command for execution; returns its sequence number."""
        self._seq += 1
        seq = self._seq
        data = text.encode("utf-8", errors="surrogateescape")
        path = self.sandbox.stage_file(data)
        if path is not None:
            self._write(f"__ltenv_run {path} {seq}\n".encode())
        else:
            # No file path on this backend: the text travels on the terminal as ANSI-C quoted lines that
            # append to a variable, which is then sourced from a here-string (like the staged file: `eval`
            # would run it as interactive input, with job numbers printed). Only builtins run: no fork.
            # Lines stay far below the terminal's canonical line limit (4095 bytes).
            lines = ["__ltenv_c=''\n"]
            lines += [f"__ltenv_c+=$'{chunk}'\n" for chunk in _quoted_chunks(data)]
            lines.append(f"__ltenv_eval {seq}\n")
            self._write("".join(lines).encode())
        return seq

    # ------------------------------------------------------------------ commands
    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` (any bash: pipelines, heredocs, several lines) and return its output and status."""
        if self.pty is None:
            raise ShellError("the session is not started")
        timeout = self.timeout if timeout is None else timeout
        t0 = time.monotonic()
        buf = HeadTailBuffer(self.max_output_bytes)
        try:
            seq = self._submit(command)
            ok, status = self._read_until(seq, t0 + timeout, buf)
        except ShellExited:
            self._reap()
            return self._result(buf, None, t0, shell_exited=True)
        if ok:
            return self._result(buf, status, t0)
        restarted = self._recover(buf)
        return self._result(buf, None, t0, timed_out=True, shell_restarted=restarted)

    def _recover(self, buf: HeadTailBuffer) -> bool:
        """After a timeout: Ctrl-C, then kill the shell's children, then restart the shell. True if restarted."""
        for action in ("interrupt", "kill", "kill"):
            try:
                if action == "interrupt":
                    self._write(b"\x03")
                    # Let the line discipline deliver SIGINT and flush its input queue before more input
                    # arrives, or the flush could swallow the sync command.
                    self._read_until(-1, time.monotonic() + 0.05, buf)
                else:
                    assert self.pty is not None
                    self.pty.kill_children()
                seq = self._submit("true")
                ok, _ = self._read_until(seq, time.monotonic() + (1.0 if action == "interrupt" else 2.0), buf)
            except ShellExited:
                break
            if ok:
                return False
        # The shell itself is stuck (e.g. a trapped SIGINT in a builtin loop) or gone: start a new one.
        self.restart()
        buf.write(b"\n[ltenv: the shell was unresponsive and has been restarted; shell state was reset]\n")
        return True

    def _result(
        self,
        buf: HeadTailBuffer,
        status: int | None,
        t0: float,
        *,
        timed_out: bool = False,
        shell_exited: bool = False,
        shell_restarted: bool = False,
    ) -> CommandResult:
        return CommandResult(
            output=strip_ansi(decode(buf.getvalue())),
            exit_code=status,
            timed_out=timed_out,
            duration_s=time.monotonic() - t0,
            truncated_bytes=buf.dropped,
            shell_exited=shell_exited,
            shell_restarted=shell_restarted,
        )

    def drain(self, wait: float = 0.0) -> str:
        """Output that arrived since the last command (background jobs), without running anything."""
        if self.pty is None:
            return ""
        deadline = time.monotonic() + wait
        data = self._pending
        self._pending = b""
        while True:
            r, _ = wait_fds([self.pty.fd], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            try:
                chunk = os.read(self.pty.fd, 1 << 16)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            data += chunk
            if len(data) > self.max_output_bytes * 4:
                data = data[-self.max_output_bytes * 4 :]
        data = self._marker.sub(b"", data)
        return strip_ansi(decode(data))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self.close()
