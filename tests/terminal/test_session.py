"""Command mode on a real PTY: exact completion, persistence, timeouts, floods and a dying shell."""

from __future__ import annotations

import resource
import time

import pytest

from ltenv.terminal import ShellSession

pytestmark = pytest.mark.bwrap


def test_output_and_exit_code(shell):
    res = shell.run("echo hello; echo to-stderr >&2")
    assert res.output == "hello\nto-stderr\n"
    assert res.exit_code == 0 and not res.timed_out
    assert shell.run("false").exit_code == 1
    assert shell.run("(exit 42)").exit_code == 42


def test_state_persists_between_commands(shell):
    shell.run("cd /tmp && export GREETING=hi && alias ll='ls -la' && f() { echo fn-$1; }")
    assert shell.run("pwd; echo $GREETING; f x").output == "/tmp\nhi\nfn-x\n"
    assert shell.run("type ll").exit_code == 0


def test_heredoc_and_multiline(shell):
    res = shell.run("cat > /app/conf.ini <<'EOF'\n[a]\nkey = $HOME\nEOF\ncat /app/conf.ini")
    assert res.output == "[a]\nkey = $HOME\n"
    res = shell.run("for i in 1 2 3; do\n  echo n$i\ndone\nif true; then\n  echo yes\nfi")
    assert res.output == "n1\nn2\nn3\nyes\n"


def test_long_single_line_beyond_tty_line_limit(shell):
    payload = "x" * 20000
    res = shell.run(f"printf '%s' '{payload}' | wc -c")
    assert res.output.strip() == "20000"


def test_background_jobs_keep_running(shell):
    assert shell.run("sleep 30 & echo started").output.endswith("started\n")
    assert "sleep 30" in shell.run("jobs").output
    shell.run("python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &")
    res = shell.run(
        "for i in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8765/ && break; sleep 0.1; done"
    )
    assert res.output.strip().endswith("200")


def test_timeout_interrupts_and_session_stays_usable(shell):
    t0 = time.monotonic()
    res = shell.run("echo before; sleep 100", timeout=1)
    assert res.timed_out and res.exit_code is None
    assert "before" in res.output
    assert time.monotonic() - t0 < 5
    after = shell.run("echo after")
    assert after.output == "after\n" and after.exit_code == 0


def test_timeout_on_program_waiting_for_input(shell):
    res = shell.run("cat", timeout=1)
    assert res.timed_out
    assert shell.run("echo still-here").output == "still-here\n"


def test_sigint_ignoring_child_is_killed(shell):
    res = shell.run(
        "python3 -c 'import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(100)'",
        timeout=1,
    )
    assert res.timed_out and not res.shell_restarted
    assert shell.run("echo ok").output == "ok\n"


def test_stuck_shell_is_restarted(shell):
    shell.run("export KEEP=1")
    res = shell.run("trap '' INT; while :; do :; done", timeout=1)
    assert res.timed_out and res.shell_restarted
    again = shell.run("echo ${KEEP:-reset}")
    assert again.output == "reset\n" and again.exit_code == 0


def test_flood_is_truncated_with_bounded_memory(shell):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = shell.run("yes", timeout=3)
    assert res.timed_out
    assert res.truncated_bytes > 10_000_000
    assert len(res.output.encode()) <= shell.max_output_bytes + 100
    res = shell.run("head -c 30000000 /dev/urandom | base64 -w0; echo", timeout=60)
    assert not res.timed_out and res.exit_code == 0
    assert "bytes truncated" in res.output
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_after - rss_before < 200_000  # KiB: the flood was not buffered
    assert shell.run("echo fine").output == "fine\n"


def test_ansi_stripped_and_invalid_utf8_replaced(shell):
    res = shell.run("printf '\\033[1;31mred\\033[0m \\xff\\xfe ok\\n'; ls --color=always /app")
    assert res.output.splitlines()[0] == "red \ufffd\ufffd ok"
    assert "\x1b" not in res.output


def test_shell_exit_is_reported(shell):
    res = shell.run("exit 3")
    assert res.shell_exited and res.exit_code is None
    assert not shell.alive


def test_markers_do_not_leak_into_output(shell):
    out = shell.run("echo a; echo b").output + shell.run("true").output
    assert "\x1e" not in out and out == "a\nb\n"


def test_late_background_output_reaches_next_command(shell):
    shell.run("(sleep 0.3; echo late-line) &")
    time.sleep(0.6)
    assert "late-line" in shell.run("echo next").output


def test_start_twice_separate_sessions(sandbox):
    a, b = ShellSession(sandbox), ShellSession(sandbox)
    a.start()
    b.start()
    a.run("cd /tmp")
    assert b.run("pwd").output == "/app\n"
    assert a.run("pwd").output == "/tmp\n"
    a.close()
    b.close()
