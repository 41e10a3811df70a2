"""The bundled procedural families: registry, determinism, size limits for a tiny model, and real execution
(do-nothing fails, the reference commands pass) in fresh bwrap sandboxes of the base image."""

from __future__ import annotations

import random
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ltenv.procgen.base import BASE_IMAGE, FAMILY_NAME_RE, Family, Instance, families
from ltenv.tasks.model import DOMAINS

FAMILIES = families()
NAMES = sorted(FAMILIES)
MULTI = [n for n in NAMES if FAMILIES[n].multi_turn]
SEEDS = range(200)
RUN_SEEDS = [*range(12), 4242, 123456, 77777, 999_999_998]


def test_registry() -> None:
    assert len(FAMILIES) >= 6
    assert len({f.domain for f in FAMILIES.values()}) >= 5
    assert len(MULTI) >= 2
    for name, fam in FAMILIES.items():
        assert FAMILY_NAME_RE.match(name) and fam.name == name
        assert fam.domain in DOMAINS
        assert fam.difficulty in {"easy", "medium", "hard"}
        assert fam.description and fam.__doc__
    assert {"log-count", "fix-permission", "config-set", "json-field", "git-recover", "find-file"} <= set(
        NAMES
    )


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name: str) -> None:
    fam = FAMILIES[name]
    for seed in (0, 1, 17, 5000, 999_999_999):
        a, b = fam.instance(seed), fam.instance(seed)
        assert a == b
        assert a.name == f"proc-{name}-s{seed:05d}"
    # Fresh registry-independent object, unaffected by the global random state.
    random.seed(1)
    x = type(fam)().instance(3)
    random.seed(2)
    assert type(fam)().instance(3) == x == fam.instance(3)


@pytest.mark.parametrize("name", NAMES)
def test_seeds_differ(name: str) -> None:
    insts = [FAMILIES[name].instance(s) for s in range(100)]
    # the task differs per seed: its instruction or its expected answer (best-checkpoint's instruction is
    # the same for every seed, everything to act on is in the files)
    assert len({(i.instruction, i.check) for i in insts}) >= 95
    assert len({i.commands for i in insts}) >= 95
    assert len({(tuple(sorted(i.files.items())), i.setup) for i in insts}) >= 95


@pytest.mark.parametrize("name", NAMES)
def test_sizes_and_fields(name: str) -> None:
    fam = FAMILIES[name]
    for seed in SEEDS:
        inst = fam.instance(seed)
        assert isinstance(inst, Instance)
        assert (inst.family, inst.seed, inst.domain, inst.difficulty) == (
            name,
            seed,
            fam.domain,
            fam.difficulty,
        )
        assert len(inst.instruction) <= 250, inst.instruction
        assert 1 <= len(inst.commands) <= 3
        assert len(inst.commands) == (2 if fam.multi_turn else 1)
        for cmd in inst.commands:
            assert len(cmd) <= 120 and "\n" not in cmd, cmd
        for path, content in inst.files.items():
            assert path.startswith("/app/") and len(content) < 1000
        assert inst.executable <= set(inst.files)
        assert inst.tags and "answer" in inst.metadata
        assert inst.check.startswith("#!/bin/bash\n")


@pytest.mark.parametrize("name", MULTI)
def test_multi_turn_value_only_in_output(name: str) -> None:
    for seed in SEEDS:
        inst = FAMILIES[name].instance(seed)
        value = str(inst.metadata["answer"])
        hidden = value.rsplit("/", 1)[-1]  # find-file: the directory is given, the file name is not
        assert hidden in inst.commands[-1]  # the last command writes what the first one printed
        assert hidden not in inst.instruction, (seed, inst.instruction)
        assert hidden not in inst.commands[0]


@pytest.mark.parametrize("name", NAMES)
def test_scripts_parse(name: str) -> None:
    for seed in range(5):
        inst = FAMILIES[name].instance(seed)
        for script in (inst.check, inst.setup, *inst.commands):
            proc = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
            assert proc.returncode == 0, (script, proc.stderr)


# -- real execution ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_task(tmp_path_factory: pytest.TempPathFactory):
    """A minimal Harbor task folder on the project base image (only its environment is used)."""
    from ltenv.tasks import load_task

    folder: Path = tmp_path_factory.mktemp("procgen") / "proc-harness"
    (folder / "tests").mkdir(parents=True)
    (folder / "task.toml").write_text(f'[environment]\ndocker_image = "{BASE_IMAGE}"\n')
    (folder / "instruction.md").write_text("procgen test harness\n")
    (folder / "tests" / "test.sh").write_text("#!/bin/bash\nexit 0\n")
    return load_task(folder)


def _materialize(sb, inst: Instance) -> None:
    for path, content in inst.files.items():
        data = content.encode() if isinstance(content, str) else content
        sb.put_bytes(data, path, mode=0o755 if path in inst.executable else 0o644)
    if inst.setup:
        res = sb.exec(["bash", "-c", inst.setup], workdir="/", timeout=60)
        assert res.ok, f"{inst.name} setup failed: {res.text}"


def _check(sb, inst: Instance) -> int:
    return sb.exec(["bash", "-c", inst.check], workdir="/", timeout=30).exit_code


def _episode(sb, inst: Instance, *, oracle: bool) -> int:
    _materialize(sb, inst)
    if oracle:
        for i, cmd in enumerate(inst.commands):
            res = sb.exec(["bash", "-c", cmd], workdir=inst.workdir, timeout=30)
            assert res.ok, f"{inst.name}: {cmd!r} failed: {res.text}"
            assert len(res.text) < 400, f"{inst.name}: output of {cmd!r} too long"
            if i == 0 and len(inst.commands) > 1:
                needed = str(inst.metadata["answer"])
                assert needed in res.stdout.decode(), f"{inst.name}: {needed!r} not in output {res.text!r}"
    return _check(sb, inst)


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_nop_fails_and_oracle_passes(name: str, store, bwrap_ok, base_task) -> None:
    from ltenv.sandbox import create_sandbox

    fam: Family = FAMILIES[name]
    for seed in RUN_SEEDS:
        inst = fam.instance(seed)
        for oracle in (False, True):
            with create_sandbox(base_task, backend="bwrap", store=store) as sb:
                code = _episode(sb, inst, oracle=oracle)
            assert (code == 0) == oracle, f"{inst.name} oracle={oracle}: check exited {code}"


@pytest.mark.bwrap
@pytest.mark.slow
def test_wrong_answers_fail(store, bwrap_ok, base_task) -> None:
    """A near miss (an off-by-one count, a neighbour's value, the wrong mode) does not pass the check."""
    from ltenv.sandbox import create_sandbox

    cases = {
        "log-count": lambda i: ("echo {} > /app/answer.txt".format(int(i.metadata["answer"]) + 1),),
        "fix-permission": lambda i: (f"chmod 777 {i.metadata['path']}",),
        "config-set": lambda i: ("sed -i 's/port=.*/port={}/' /app/etc/*.conf".format(i.metadata["answer"]),),
        "json-field": lambda i: ("echo '\"{}\"' > /app/answer.txt".format(i.metadata["answer"]),),
        "find-file": lambda i: ("find /app -maxdepth 2 -type f -perm -2000 > /app/answer.txt",),
        "git-recover": lambda i: ("echo {}x > /app/answer.txt".format(i.metadata["answer"]),),
        "csv-sum": lambda i: ("echo {} > /app/answer.txt".format(int(i.metadata["answer"]) - 1),),
    }
    traps = {"config-set": lambda i: "_port=" in str(i.files), "find-file": lambda i: "2755" in i.setup}
    for name, wrong in cases.items():
        trap = traps.get(name, lambda i: True)
        inst = next(i for i in map(FAMILIES[name].instance, range(100)) if trap(i))
        with create_sandbox(base_task, backend="bwrap", store=store) as sb:
            code = _episode(sb, replace(inst, commands=wrong(inst)), oracle=True)
        assert code != 0, f"{name}: a wrong answer passed"
