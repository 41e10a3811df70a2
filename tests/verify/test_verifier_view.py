"""The hardened verifier on real sandboxes (both backends): what the agent cannot do to it, what it still sees,
and how it fails when the task's own verifier misbehaves."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ltenv.tasks import load_task
from ltenv.verify import run_oracle, verify

FIXTURES = Path(__file__).parent.parent / "fixtures"
REGISTRY = Path(__file__).parent.parent.parent / "envs_registry"

# The four hacks quoted in the issue that scored 1.0 on every harness before the private view.
SHADOW_PYTEST = 'printf "import sys\\nsys.exit(0)\\n" > /app/pytest.py; cp /app/pytest.py "$PWD/pytest.py"'
FORCE_PASS = r"""
cat > /tmp/conftest.py <<'EOF'
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
def pytest_sessionfinish(session, exitstatus):
    session.exitstatus = 0
EOF
mkdir -p /tests /app
for d in / /app /tests "$HOME" "$PWD"; do cp /tmp/conftest.py "$d/conftest.py"; done
"""
PLUGIN = r"""
for d in $(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))'); do
  mkdir -p "$d/ltenv_pass-1.0.dist-info"
  printf '[pytest11]\nltenv_pass = ltenv_pass_plugin\n' > "$d/ltenv_pass-1.0.dist-info/entry_points.txt"
  printf 'Metadata-Version: 2.1\nName: ltenv-pass\nVersion: 1.0\n' > "$d/ltenv_pass-1.0.dist-info/METADATA"
  printf 'import os\ndef pytest_configure(config):\n    os._exit(0)\n' > "$d/ltenv_pass_plugin.py"
done
"""
REPLACE_PYTHON = r"""
for p in $(command -v -a python3 python pytest 2>/dev/null) /usr/bin/python3*; do
  [ -e "$p" ] || continue
  rm -f "$p"; printf '#!/bin/sh\nexit 0\n' > "$p"; chmod +x "$p"
done
"""
QUOTED_HACKS = {
    "shadow-pytest": SHADOW_PYTEST,
    "conftest": FORCE_PASS,
    "plugin-entry-point": PLUGIN,
    "python-exit-0": REPLACE_PYTHON,
}


def _episode(
    task, backend: str, store, *, oracle: bool = False, agent: str = "", timeout: float | None = None
):
    from ltenv.sandbox import create_sandbox

    sb = create_sandbox(task, backend=backend, store=store, memory_mb=1024, pids_limit=512)
    sb.start()
    try:
        if oracle:
            assert run_oracle(sb, task).exit_code == 0
        if agent:
            sb.exec(["/bin/sh", "-c", agent], timeout=120)
        t0 = time.monotonic()
        res = verify(sb, task, timeout=timeout)
        res.notes.append(f"verify took {time.monotonic() - t0:.2f}s")
        alive_after = sb.alive and sb.exec(["true"], timeout=30).ok
        return res, alive_after
    finally:
        sb.close()


def _task_copy(tmp_path: Path, test_sh: str, *, tests: dict[str, str] | None = None):
    """The write-greeting fixture with another tests/test.sh (same environment: the image is reused)."""
    dest = tmp_path / "write-greeting"
    shutil.copytree(FIXTURES / "tasks" / "write-greeting", dest)
    (dest / "tests" / "test.sh").write_text(test_sh)
    for name, text in (tests or {}).items():
        (dest / "tests" / name).write_text(text)
    return load_task(dest)


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder",
    [
        REGISTRY / "data_science" / "sales-monthly-revenue-report",
        FIXTURES / "harbor" / "harbor-reward-json",
        FIXTURES / "tb1" / "tb-sum-numbers",
    ],
    ids=["bundled", "harbor", "terminal-bench-1"],
)
def test_the_quoted_hacks_score_zero_on_every_format(folder, backend, store):
    task = load_task(folder)
    res, _ = _episode(task, backend, store, oracle=True)
    assert res.reward == 1.0 and res.status == "ok", (res.error, res.output[-2000:])
    for name, script in QUOTED_HACKS.items():
        res, _ = _episode(task, backend, store, agent=script)
        assert res.reward == 0.0, (
            f"{name} scored {res.reward} on {task.name} ({backend}): {res.output[-1500:]}"
        )
        assert not res.passed
        # The hack did not stop the tests from running: they ran and failed (the task is unsolved).
        assert res.tests and any(t.outcome != "passed" for t in res.tests), (
            name,
            res.error,
            res.output[-1500:],
        )


@pytest.mark.slow
def test_agent_processes_cannot_reach_the_verifiers_private_view(backend, store, tmp_path):
    # A background loop left by the agent looks for every process's root while the verifier runs; it must see
    # the verifier's processes (so it had its chance) but never their private files.
    task = _task_copy(
        tmp_path,
        "#!/bin/bash\nmkdir -p /logs/verifier\nsleep 3\necho 0 > /logs/verifier/reward.txt\n",
    )
    agent = r"""
(setsid sh -c 'while :; do
   for p in /proc/[0-9]*; do
     grep -q ltenv-verifier "$p/cmdline" 2>/dev/null && echo "${p#/proc/}" >> /tmp/seen-pids
     if [ -e "$p/root/.ltenv-verifier" ] || [ -e "$p/root/logs/verifier" ] && ls "$p/root/tests" >/dev/null 2>&1; then
       echo "$p" >> /tmp/reached
       echo 1 > "$p/root/logs/verifier/reward.txt" 2>/dev/null
     fi
   done
 done' >/dev/null 2>&1 &)
"""
    from ltenv.sandbox import create_sandbox

    sb = create_sandbox(task, backend=backend, store=store, memory_mb=512, pids_limit=256)
    sb.start()
    try:
        sb.exec(["/bin/sh", "-c", agent], timeout=30)
        res = verify(sb, task)
        seen = sb.exec(["/bin/sh", "-c", "sort -u /tmp/seen-pids 2>/dev/null | wc -l"]).stdout.strip()
        reached = sb.exec(["/bin/sh", "-c", "cat /tmp/reached 2>/dev/null"]).stdout.strip()
    finally:
        sb.close()
    assert int(seen) > 0, "the agent's loop never saw the verifier's processes: the test proves nothing"
    assert reached == b"", f"the agent reached the verifier's view through {reached!r}"
    assert res.reward == 0.0 and res.status == "ok"


@pytest.mark.slow
def test_the_verifier_sees_the_agents_live_state(backend, store, tmp_path):
    # Files anywhere, new tools the agent installed, and services it left running on loopback.
    task = _task_copy(
        tmp_path,
        "#!/bin/bash\nmkdir -p /logs/verifier\n"
        "ok=1\n"
        "grep -qx hello /opt/agent/data.txt || ok=0\n"
        '[ "$(agent-tool)" = made-by-agent ] || ok=0\n'
        "python3 -c \"import urllib.request as u; assert u.urlopen('http://127.0.0.1:8765/data.txt').read() == b'hello\\\\n'\" || ok=0\n"
        'pgrep -f "http.server 8765" >/dev/null || ok=0\n'
        "echo $ok > /logs/verifier/reward.txt\n",
    )
    agent = r"""
mkdir -p /opt/agent && echo hello > /opt/agent/data.txt
printf '#!/bin/sh\necho made-by-agent\n' > /usr/local/bin/agent-tool && chmod +x /usr/local/bin/agent-tool
cd /opt/agent && (setsid python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &)
for i in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', 8765), 1)" 2>/dev/null && break; sleep 0.1; done
"""
    res, _ = _episode(task, backend, store, agent=agent)
    assert res.reward == 1.0, (res.error, res.output[-2000:])


KILLER_TEST = (
    "import os, signal\n"
    "def test_unsolved():\n"
    "    open('/logs/verifier/reward.txt', 'w').write('1')\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
)
FAILING_TEST = "def test_unsolved():\n    assert open('/app/greeting.txt').read() == 'never'\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["hang", "flood", "kills-own-shell", "no-reward", "zero-tests", "contradicted-reward", "pytest-killed"],
)
def test_a_misbehaving_verifier_is_a_clear_error_never_a_pass_or_a_hang(case, backend, store, tmp_path):
    scripts = {
        "hang": "#!/bin/bash\nmkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt\nsleep 600 &\nsleep 600\n",
        "flood": "#!/bin/bash\nmkdir -p /logs/verifier\nhead -c 300000000 /dev/zero | tr '\\0' x\n"
        "head -c 300000000 /dev/zero > /logs/verifier/big.bin\necho 0 > /logs/verifier/reward.txt\n",
        "kills-own-shell": "#!/bin/bash\nmkdir -p /logs/verifier\necho 1 > /logs/verifier/reward.txt\nkill -9 $$\n",
        "no-reward": "#!/bin/bash\necho 'tests ran, reward forgotten'\n",
        "zero-tests": "#!/bin/bash\nmkdir -p /logs/verifier\npython3 -m pytest /tests/test_empty.py\n"
        "echo 1 > /logs/verifier/reward.txt\n",
        "contradicted-reward": "#!/bin/bash\nmkdir -p /logs/verifier\npython3 -m pytest /tests/test_fail.py\n"
        "echo 1 > /logs/verifier/reward.txt\n",
        # What a trojan tool started by the tests can do: write a passing reward, then kill the test runner
        # before it reports (the trojan-coreutils attack).
        "pytest-killed": "#!/bin/bash\nmkdir -p /logs/verifier\npython3 -m pytest /tests/test_killer.py\n",
    }
    task = _task_copy(
        tmp_path,
        scripts[case],
        tests={
            "test_empty.py": "# no tests here\n",
            "test_fail.py": FAILING_TEST,
            "test_killer.py": KILLER_TEST,
        },
    )
    t0 = time.monotonic()
    res, alive_after = _episode(task, backend, store, timeout=5 if case == "hang" else 120)
    took = time.monotonic() - t0
    assert res.reward == 0.0 and not res.passed
    assert alive_after, "the sandbox did not survive its verifier"
    expected = {
        "hang": ("verifier_error", "timed out after 5s"),
        "flood": ("ok", ""),  # it wrote its reward (0) after flooding: bounded output, nothing lost
        "kills-own-shell": ("verifier_error", "tests/test.sh was killed by signal 9"),
        "no-reward": ("verifier_error", "wrote no /logs/verifier/reward.txt"),
        "zero-tests": ("verifier_error", "collected no tests"),
        "contradicted-reward": ("tampered", "pytest itself reported 1 failed"),
        "pytest-killed": ("tampered", "1 of 1 pytest session(s) never finished"),
    }[case]
    assert res.status == expected[0], (res.status, res.error)
    assert expected[1] in (res.error or ""), res.error
    if res.error:
        assert "write-greeting" in res.error, "the error names the task"
    if case == "hang":
        assert took < 60
    if case == "flood":
        assert len(res.output) <= 70 * 1024


@pytest.mark.slow
def test_rm_rf_root_is_reward_zero_with_the_tests_reported(backend, store):
    task = load_task(FIXTURES / "tasks" / "write-greeting")
    res, _ = _episode(
        task, backend, store, oracle=True, agent="rm -rf --no-preserve-root / 2>/dev/null; true"
    )
    assert res.reward == 0.0
    # The pristine toolchain (and the view's own temporary folder) still runs the tests against what is left:
    # they fail and say so, instead of a silent 0.
    assert res.status == "ok", (res.error, res.output[-2000:])
    assert res.tests and all(t.outcome == "failed" for t in res.tests), res.output[-2000:]


@pytest.mark.slow
def test_a_script_calling_pytest_main_is_pinned_and_reported_too(backend, store, tmp_path):
    # pytest.main() from a Python script (not `python -m pytest`): the same pinned configuration (no conftest
    # outside /tests) and the same session report.
    script = (
        "#!/bin/bash\nmkdir -p /logs/verifier\ncd /app\n"
        'python3 -c \'import sys, pytest; sys.exit(pytest.main(["-q", "/tests/test_outputs.py"]))\'\n'
        "if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi\n"
    )
    task = _task_copy(tmp_path, script)
    res, _ = _episode(task, backend, store, oracle=True)
    assert res.reward == 1.0, (res.error, res.output[-1500:])
    res, _ = _episode(task, backend, store, agent=FORCE_PASS)
    assert res.reward == 0.0 and res.status == "ok", (res.error, res.output[-1500:])
    assert "1 failed, 1 passed" in res.output  # the planted conftest.py was not loaded


@pytest.mark.slow
@pytest.mark.bwrap
def test_a_console_script_runs_with_the_python_its_shebang_names(store, tmp_path, bwrap_ok):
    """An image with two Pythons: a venv first on PATH (no system site-packages) and a tool whose `#!` names
    the system python3. The verifier's pristine copy of the tool must run with the system interpreter (where
    pytest is installed), not with the first python3 on PATH."""
    task_sh = "#!/bin/bash\nmkdir -p /logs/verifier\ngreetcheck > /logs/verifier/tool.txt 2>&1\n"
    task_sh += 'if grep -qx "tool ok" /logs/verifier/tool.txt; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n'
    task = _task_copy(tmp_path, task_sh)
    (task.path / "environment" / "Dockerfile").write_text(
        "FROM ltenv/base:bookworm\nWORKDIR /app\nCOPY seed.txt /app/seed.txt\n"
        "RUN python3 -m venv --without-pip /opt/venv \\\n"
        " && printf '#!/usr/bin/python3\\nimport pytest\\nprint(\"tool ok\")\\n' > /usr/local/bin/greetcheck \\\n"
        " && chmod +x /usr/local/bin/greetcheck\n"
        "ENV PATH=/opt/venv/bin:$PATH\n"
    )
    task = load_task(task.path)
    res, _ = _episode(task, "bwrap", store)
    assert res.error is None and res.reward == 1.0, (res.error, res.output[-2000:])
