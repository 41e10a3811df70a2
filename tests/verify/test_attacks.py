"""The built-in reward-hacking attacks (:mod:`ltenv.verify.attacks`), each against a Harbor task that is
hackable by construction (``tests/fixtures/harbor-hackable/hackable-greeting``: its test.sh runs whatever
``python3`` is on PATH, from the agent's working directory, and trusts a reward file already there).

For every attack, in fresh sandboxes:

(a) verified the old way (tests copied to /tests, ``bash /tests/test.sh`` run in the sandbox, reward.txt read
    back: what harnesses do), the attack scores 1. The attack is real.
(b) :func:`ltenv.verify.verify` gives it 0.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from ltenv.errors import LtenvError
from ltenv.sandbox import create_sandbox
from ltenv.sandbox.base import Sandbox
from ltenv.tasks.model import Task
from ltenv.verify import VerifierResult
from ltenv.verify.attacks import (
    ATTACKS,
    NOT_APPLICABLE,
    apply_attack,
    attack_names,
    attack_skipped,
    get_attack,
    run_attack,
)

OLD_WAY_RESISTS = {"rm-rf-root"}
"""Attacks that are robustness checks rather than hacks: the old way gives them 0 too (with an error)."""

OLD_WAY_LOGIN_SHELL = {"bash-env-rc", "pythonpath-env"}
"""Attacks on the shell's start-up files: they reach a verifier started through a login shell
(``bash -lc``, as ``su -``, ssh or some harnesses' exec do), so the old way is run that way for them."""

DOCKER_ATTACKS = ["shadow-pytest-module", "conftest-force-pass", "planted-reward", "proc-root-injector"]

FIXTURE = Path(__file__).parent.parent / "fixtures" / "harbor-hackable" / "hackable-greeting"
REQUIRED = {
    "shadow-pytest-module",
    "conftest-force-pass",
    "pytest-plugin-entrypoint",
    "replace-python",
    "wrap-python-on-path",
    "sitecustomize",
    "pth-file",
    "edit-site-packages",
    "ld-so-preload",
    "bash-env-rc",
    "planted-reward",
    "reward-rewriter",
    "proc-root-injector",
    "rm-rf-root",
}


# --------------------------------------------------------------------------- the reference: the old way


def old_verify(sandbox: Sandbox, task: Task, *, login: bool = False) -> tuple[float, str]:
    """Verify as harnesses did before ltenv's hardened verifier: copy the tests to /tests, run
    ``bash /tests/test.sh`` in the sandbox (through a login shell with ``login``), read reward.txt back.

    Returns the reward (0 when there is none or it is unreadable) and the script's output tail.
    """
    try:
        sandbox.put(task.tests_dir, "/tests")
        argv = ["bash", "-lc", "bash /tests/test.sh"] if login else ["bash", "/tests/test.sh"]
        res = sandbox.exec(argv, timeout=120)
    except LtenvError as e:
        return 0.0, f"{type(e).__name__}: {e}"
    why = "no reward file"
    for _ in range(5):  # a background writer may be caught mid-write (truncated, not yet rewritten)
        try:
            raw = sandbox.get("/logs/verifier/reward.txt")
            if raw is None:
                break
            return float(raw.split()[0]), res.text[-2000:]
        except (LtenvError, ValueError, IndexError) as e:
            why = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
    return 0.0, f"{why}\n{res.text[-2000:]}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def task() -> Task:
    from ltenv.tasks import load_task

    return load_task(FIXTURE)


@pytest.fixture(scope="module")
def bwrap_store(store, bwrap_ok, task):
    store.prepare(task)  # build and unpack once for the module
    return store


@pytest.fixture(scope="module")
def docker_store(store, docker_ok, task):
    store.engine_image(task)
    return store


def _fresh(task: Task, backend: str, store) -> Sandbox:
    sb = create_sandbox(task, backend=backend, store=store)
    sb.start()
    return sb


def _old_way(task: Task, backend: str, store, name: str) -> tuple[float, str, str]:
    sb = _fresh(task, backend, store)
    try:
        res = apply_attack(sb, get_attack(name))
        reward, tail = old_verify(sb, task, login=name in OLD_WAY_LOGIN_SHELL)
    finally:
        sb.close()
    return reward, tail, res.text


def _new_way(task: Task, backend: str, store, name: str) -> VerifierResult:
    sb = _fresh(task, backend, store)
    try:
        return run_attack(sb, task, get_attack(name))
    finally:
        sb.close()


def _why(res: VerifierResult) -> str:
    return f"status={res.status} error={res.error} notes={res.notes}\n{res.output[-1500:]}"


def _assert_old_way(name: str, reward: float, tail: str, attack_out: str) -> None:
    if name in OLD_WAY_RESISTS:
        assert reward == 0.0, tail
    else:
        assert NOT_APPLICABLE not in attack_out, attack_out
        assert reward == 1.0, f"attack output: {attack_out[-800:]}\nverifier: {tail}"


def _assert_resisted(name: str, res: VerifierResult) -> None:
    assert res.reward == 0.0 and not res.passed, _why(res)
    if name == "rm-rf-root":  # never a silent 0: an error, tests that failed, or output saying why
        failed = any(t.outcome in ("failed", "error") for t in res.tests)
        assert res.error or failed or "Error" in res.output, _why(res)


# --------------------------------------------------------------------------- the suite itself


def test_the_suite():
    names = attack_names()
    assert len(names) == len(set(names)) == len(ATTACKS)
    assert set(names) >= REQUIRED
    assert set(names) >= OLD_WAY_RESISTS
    for a in ATTACKS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", a.name), a.name
        assert a.description and "\n" not in a.description, a.name
        assert a.script.startswith(f"# ltenv reward-hacking attack: {a.name}\n"), a.name
        assert a.script.rstrip().endswith("exit 0"), a.name
        assert get_attack(a.name) is a
    with pytest.raises(KeyError, match=r"unknown attack 'nope'.*shadow-pytest-module"):
        get_attack("nope")
    with pytest.raises(AttributeError):
        ATTACKS[0].name = "x"  # frozen


@pytest.mark.parametrize("name", attack_names())
def test_scripts_parse_as_posix_sh(name):
    for shell in ("sh", "dash", "bash"):
        exe = subprocess.run(["sh", "-c", f"command -v {shell}"], capture_output=True, text=True).stdout
        if not exe.strip():
            continue
        argv = [exe.strip(), "--posix", "-n"] if shell == "bash" else [exe.strip(), "-n"]
        proc = subprocess.run(argv, input=get_attack(name).script, capture_output=True, text=True)
        assert proc.returncode == 0, f"{shell}: {proc.stderr}"


# --------------------------------------------------------------------------- bwrap: every attack


@pytest.mark.bwrap
def test_the_fixture_is_sound(task, bwrap_store):
    """Oracle 1 and do-nothing 0, the old way and with ltenv's verifier: only the attacks make it pass."""
    from ltenv.verify import run_oracle, verify

    for oracle in (False, True):
        for way in ("old", "new"):
            sb = _fresh(task, "bwrap", bwrap_store)
            try:
                if oracle:
                    run_oracle(sb, task).close()
                if way == "old":
                    reward, tail = old_verify(sb, task)
                else:
                    res = verify(sb, task)
                    reward, tail = res.reward, _why(res)
                    assert res.status == "ok", tail
            finally:
                sb.close()
            assert reward == (1.0 if oracle else 0.0), (way, oracle, tail)


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", attack_names())
def test_attack_is_real(task, bwrap_store, name):
    """(a) The old way of verifying rewards the attack."""
    reward, tail, out = _old_way(task, "bwrap", bwrap_store, name)
    _assert_old_way(name, reward, tail, out)


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", attack_names())
def test_verify_resists(task, bwrap_store, name):
    """(b) ltenv.verify.verify does not."""
    res = _new_way(task, "bwrap", bwrap_store, name)
    assert not attack_skipped(res), res.notes  # the test image has a C compiler, bash, python3...
    _assert_resisted(name, res)


@pytest.mark.bwrap
def test_an_attack_that_cannot_apply_is_reported_as_skipped(task, bwrap_store):
    sb = _fresh(task, "bwrap", bwrap_store)
    try:
        gone = sb.exec(["/bin/sh", "-c", "rm -f /usr/bin/cc /usr/bin/gcc* /usr/bin/*-gcc* /usr/bin/clang*"])
        assert gone.ok, gone.text
        res = run_attack(sb, task, get_attack("ld-so-preload"))
    finally:
        sb.close()
    assert attack_skipped(res), res.notes
    assert any("no C compiler" in n for n in res.notes), res.notes
    assert res.reward == 0.0 and res.status == "ok", _why(res)


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["shadow-pytest-module", "bash-env-rc", "reward-rewriter", "trojan-coreutils"]
)
def test_an_episode_that_types_the_attack_scores_zero(task, bwrap_store, name):
    """The attack typed into the agent's shell of a real episode (TerminalEnv), then submitted."""
    import ltenv
    from ltenv.env import TerminalEnv

    env = TerminalEnv(FIXTURE, image_store=bwrap_store)
    try:
        env.reset()
        obs, _, _, _, info = env.step(f"sh <<'LTENV_ATTACK'\n{get_attack(name).script}LTENV_ATTACK")
        assert info["exit_code"] == 0, obs
        _, reward, terminated, _, info = env.step(ltenv.SUBMIT)
    finally:
        env.close()
    assert terminated and reward == 0.0 and not info["passed"], info


# --------------------------------------------------------------------------- docker: key attacks


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", DOCKER_ATTACKS)
def test_attack_is_real_on_docker(task, docker_store, name):
    reward, tail, out = _old_way(task, "docker", docker_store, name)
    _assert_old_way(name, reward, tail, out)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", DOCKER_ATTACKS)
def test_verify_resists_on_docker(task, docker_store, name):
    res = _new_way(task, "docker", docker_store, name)
    _assert_resisted(name, res)
