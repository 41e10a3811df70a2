"""The reference solution: run ``solve.sh`` / ``solution.sh``, or type ``solution/keys.json``'s or
``solution.yaml``'s keystrokes."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ltenv.fdwait import wait_fds
from ltenv.output import HeadTailBuffer, strip_ansi
from ltenv.sandbox.base import ExecResult, PtyProcess, Sandbox
from ltenv.tasks.model import Task, TerminalCommand

MAX_ORACLE_OUTPUT = 64 * 1024
SOLUTION_DIR = "/solution"
ORACLE_DIR = "/oracle"


@dataclass
class OracleRun(ExecResult):
    """Outcome of :func:`run_oracle`. A keystroke oracle (``solution.yaml``) leaves its shell running, as an
    agent's would be during the tests (background jobs it started survive): call :meth:`close` after
    verifying."""

    pty: PtyProcess | None = None

    def close(self) -> None:
        if self.pty is not None:
            self.pty.kill()
            self.pty = None


def run_oracle(sandbox: Sandbox, task: Task, *, timeout: float | None = None) -> OracleRun:
    """Run the task's reference solution (its :class:`~ltenv.tasks.OracleSpec`) in the sandbox, as an agent.

    A script oracle (Harbor ``solution/solve.sh``, Terminal-Bench ``solution.sh``) is copied in, run with bash
    in its working directory and environment (Harbor's ``[solution] env``), and removed again. A keystroke
    oracle (Harbor ``solution/keys.json``, Terminal-Bench ``solution.yaml``) is typed into an interactive bash
    (see :func:`run_keystrokes`).
    """
    from ltenv.errors import TaskLoadError

    spec = task.oracle_spec()
    if spec is None:
        raise TaskLoadError(task.path, task.solution_label, None, "missing: the task has no oracle")
    timeout = timeout or spec.timeout_sec
    if spec.kind == "keystrokes":
        return run_keystrokes(sandbox, spec.keystrokes, timeout=timeout, env=spec.env, workdir=spec.workdir)
    assert spec.files is not None
    if spec.files.is_file():
        sandbox.put(spec.files, f"{spec.dest}/{spec.files.name}", mode=0o755)
    else:
        sandbox.put(spec.files, spec.dest)
    try:
        res = sandbox.exec(
            ["bash", spec.entry],
            timeout=timeout,
            env=spec.env or None,
            workdir=spec.workdir,
            max_output=MAX_ORACLE_OUTPUT,
        )
    finally:
        sandbox.exec(["rm", "-rf", spec.dest], timeout=60, workdir="/")
    return OracleRun(**{f: getattr(res, f) for f in ExecResult.__dataclass_fields__})


_ENTER_KEYS = frozenset({"Enter", "C-m", "KPEnter", "C-j", "^M", "^J"})


def _executes(key: str) -> bool:
    return key in _ENTER_KEYS or key.endswith(("\n", "\r"))


def _without_execution(keys: list[str]) -> list[str]:
    """``keys`` minus the trailing Enter keys / newlines that would execute the line."""
    keys = list(keys)
    while keys and _executes(keys[-1]):
        if keys[-1] in _ENTER_KEYS:
            keys.pop()
        else:
            stripped = keys[-1].rstrip("\r\n")
            if stripped:
                keys[-1] = stripped
            else:
                keys.pop()
    return keys


def run_keystrokes(
    sandbox: Sandbox,
    commands: Sequence[TerminalCommand],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    workdir: str | None = None,
    rows: int = 40,
    cols: int = 160,
) -> OracleRun:
    """Type Terminal-Bench ``solution.yaml`` entries into an interactive bash on a terminal in the sandbox.

    Each entry's ``command`` is a key (tmux ``send-keys`` names: ``C-c``, ``Escape``, ``Enter``...) or literal
    text; ``append_enter`` adds Enter. With ``block`` and an executing entry, the line gets a completion
    marker appended (as TB appends ``; tmux wait -S done``) and we wait for it up to ``max_timeout_sec``;
    otherwise we wait ``min_timeout_sec`` before the next entry. The terminal is drained throughout.
    The result's output is the terminal transcript (escape sequences stripped); ``timed_out`` is set when a
    blocking entry or the whole run (``timeout``) ran out of time, and later entries are not sent.
    """
    from ltenv.terminal.keys import encode_keys  # the tmux key-name encoder of keys mode

    t0 = time.monotonic()
    deadline = t0 + timeout
    nonce = secrets.token_hex(6)
    transcript = HeadTailBuffer(MAX_ORACLE_OUTPUT)
    start = 'cd "$1" 2>/dev/null; exec bash --login -i' if workdir else "exec bash --login -i"
    argv = ["/bin/sh", "-c", start, "sh", *([workdir] if workdir else [])]
    pty = sandbox.spawn_pty(
        argv, env={"HISTFILE": "/dev/null", **(env or {})}, rows=rows, cols=cols, echo=True
    )
    run = OracleRun(exit_code=0, stdout=b"", stderr=b"", pty=pty)
    pending = bytearray()
    # DECCKM, as the terminal would track it: full-screen programs (curses keypad mode, vim, less) turn on
    # application cursor keys, and then an arrow key must be sent as ESC O A, not ESC [ A.
    cursor = {"app": False, "tail": b""}

    def track_modes(chunk: bytes) -> None:
        data = cursor["tail"] + chunk
        on, off = data.rfind(b"\x1b[?1h"), data.rfind(b"\x1b[?1l")
        if on != off:
            cursor["app"] = on > off
        cursor["tail"] = data[-5:]

    def pump(until: bytes | None, limit: float) -> bool:
        """Drain the terminal until ``until`` appears (True) or ``limit`` passes / the shell exits (False)."""
        while True:
            if until is not None and until in pending:
                idx = pending.index(until) + len(until)
                transcript.write(bytes(pending[:idx]).replace(until, b""))
                del pending[:idx]
                return True
            if len(pending) > 4096:
                cut = len(pending) - 256
                transcript.write(bytes(pending[:cut]))
                del pending[:cut]
            wait = limit - time.monotonic()
            if wait <= 0:
                return False
            r, _ = wait_fds([pty.fd], [], min(wait, 0.1))
            if not r:
                if pty.poll() is not None:
                    return False
                continue
            try:
                chunk = os.read(pty.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return False
            if not chunk:
                return False
            track_modes(chunk)
            pending.extend(chunk)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(pty.fd, view)
                view = view[n:]
            except BlockingIOError:
                pump(None, time.monotonic() + 0.05)

    seq = 0

    def marker_keys() -> tuple[list[str], bytes]:
        nonlocal seq
        seq += 1
        token = f"ltenv-{nonce}-{seq}"
        # The echoed line shows the octal escapes; only the command's output holds the raw marker bytes.
        return [f"; printf '\\036%s\\036' {token}", "Enter"], b"\x1e" + token.encode() + b"\x1e"

    try:
        keys, mark = marker_keys()
        write(encode_keys([keys[0].removeprefix("; "), "Enter"]))
        if not pump(mark, deadline):
            run.exit_code, run.timed_out = (124, True) if pty.poll() is None else (1, False)
            transcript.write(b"\n[ltenv: the oracle shell did not start]\n")
        for i, cmd in enumerate(commands if not run.timed_out and run.exit_code == 0 else []):
            keys = [cmd.command, "Enter"] if cmd.append_enter else [cmd.command]
            if cmd.block and _executes(keys[-1]):
                extra, mark = marker_keys()
                write(encode_keys(_without_execution(keys) + extra, app_cursor=cursor["app"]))
                limit = min(deadline, time.monotonic() + cmd.max_timeout_sec)
                if not pump(mark, limit):
                    if pty.poll() is not None:
                        transcript.write(
                            f"\n[ltenv: the shell exited during solution.yaml entry {i}]\n".encode()
                        )
                        break
                    run.exit_code, run.timed_out = 124, True
                    transcript.write(
                        f"\n[ltenv: solution.yaml entry {i} did not finish within "
                        f"{min(cmd.max_timeout_sec, max(0.0, deadline - time.monotonic())):g}s]\n".encode()
                    )
                    break
            else:
                sent = time.monotonic()
                write(encode_keys(keys, app_cursor=cursor["app"]))
                pump(None, min(deadline, sent + cmd.min_timeout_sec))
            if time.monotonic() >= deadline:
                run.exit_code, run.timed_out = 124, True
                transcript.write(f"\n[ltenv: the oracle ran out of its {timeout:g}s]\n".encode())
                break
        pump(None, time.monotonic() + 0.05)
        transcript.write(bytes(pending))
    except BaseException:
        run.close()
        raise
    run.stdout = strip_ansi(transcript.getvalue().decode("utf-8", errors="replace")).encode()
    run.duration_s = time.monotonic() - t0
    return run
