"""Instances as task folders: the fast (cached) and portable formats, the cache, procgen suite specs."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import stat
import textwrap
import threading
import tomllib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from ltenv.procgen import materialize as mat
from ltenv.procgen.base import BASE_IMAGE, Family, Instance, ProcgenError, register


@register
class MatEcho(Family):
    name = "mat-echo"
    domain = "coding"
    description = "Write a word to a file."
    calls = 0

    def generate(self, rng: random.Random, seed: int) -> Instance:
        type(self).calls += 1
        w = "".join(rng.choice("abcdefgh") for _ in range(8))
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction=f"Write the word {w} to /app/answer.txt",
            files={"/app/README.md": f"write {w}\n", "/app/bin/hello": "#!/bin/sh\necho hello\n"},
            executable=frozenset({"/app/bin/hello"}),
            commands=(f"echo {w} > /app/answer.txt",),
            check=f'[ "$(cat /app/answer.txt 2>/dev/null)" = "{w}" ]\n',
            tags=("echo",),
            metadata={"answer": w},
        )


@register
class MatSetup(Family):
    name = "mat-setup"
    domain = "system_admin"
    difficulty = "medium"
    description = "A file the setup script makes."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        n = rng.randint(100, 999)
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="medium",
            instruction="Copy the number in /app/secret.txt to /app/answer.txt",
            files={"/etc/mat-setup.conf": b"x=1\n"},
            setup=f"echo {n} > /app/secret.txt\nchmod 600 /app/secret.txt\n",
            commands=("cat /app/secret.txt", f"echo {n} > /app/answer.txt"),
            check=f'[ "$(cat /app/answer.txt)" = "{n}" ]\n',
            workdir="/srv",
        )


def _write_fast(tmp_path: Path, name: str = "mat-echo", seed: int = 3) -> Path:
    return mat.materialize(name, seed, root=tmp_path)


def test_fast_layout(tmp_path):
    from ltenv.tasks import load_task

    folder = _write_fast(tmp_path)
    digest = mat.generator_digest(mat.family("mat-echo"))
    assert folder == tmp_path / "mat-echo" / digest / "proc-mat-echo-s00003"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [
        "instruction.md",
        "setup/files/app/README.md",
        "setup/files/app/bin/hello",
        "solution/commands.json",
        "solution/solve.sh",
        "task.toml",
        "tests/check.sh",
        "tests/test.sh",
    ]
    raw = tomllib.loads((folder / "task.toml").read_text())
    assert raw["metadata"]["procgen_family"] == "mat-echo" and raw["metadata"]["procgen_seed"] == 3
    assert raw["metadata"]["tags"] == ["procgen", "mat-echo", "echo"]
    assert raw["environment"]["docker_image"] == BASE_IMAGE
    assert raw["environment"]["setup_files"] == "setup/files"
    assert "setup_script" not in raw["environment"]
    assert raw["agent"]["timeout_sec"] == 120 and raw["verifier"]["timeout_sec"] == 30
    assert os.stat(folder / "setup/files/app/bin/hello").st_mode & 0o777 == 0o755
    assert os.stat(folder / "setup/files/app/README.md").st_mode & 0o777 == 0o644

    task = load_task(folder)
    inst = mat.family("mat-echo").instance(3)
    assert task.name == inst.name == "proc-mat-echo-s00003"
    assert task.domain == "coding" and task.difficulty == "easy"
    assert task.instruction.strip() == inst.instruction
    assert task.oracle_commands == list(inst.commands)
    assert task.setup_files_dir == folder / "setup" / "files" and task.setup_script_path is None
    assert task.container_workdir == "/app"
    assert "set -e" in (folder / "solution/solve.sh").read_text()


def test_fast_layout_with_setup_and_workdir(tmp_path):
    from ltenv.tasks import load_task

    task = load_task(_write_fast(tmp_path, "mat-setup", 1))
    env = task.config.environment
    assert env.setup_script == "setup/setup.sh" and task.setup_script_path.is_file()
    assert "chmod 600 /app/secret.txt" in task.setup_script_path.read_text()
    assert task.container_workdir == "/srv"
    assert json.loads((task.path / "solution/commands.json").read_text())[0] == "cat /app/secret.txt"
    assert (task.path / "setup/files/etc/mat-setup.conf").read_bytes() == b"x=1\n"


def test_portable_layout(tmp_path):
    from ltenv.tasks import load_task

    inst = mat.family("mat-setup").instance(2)
    folder = mat.write_task(inst, tmp_path / inst.name, format="portable")
    task = load_task(folder)
    assert task.config.environment.docker_image is None and task.config.environment.setup_files is None
    dockerfile = (folder / "environment/Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == f"FROM {BASE_IMAGE}"
    assert "COPY files/ /" in dockerfile
    assert "RUN bash /tmp/ltenv-setup.sh && rm -f /tmp/ltenv-setup.sh" in dockerfile
    assert dockerfile.rstrip().endswith("WORKDIR /srv")
    assert (folder / "environment/files/etc/mat-setup.conf").is_file()
    assert (folder / "environment/setup.sh").is_file()
    assert (folder / "solution/commands.json").is_file() and (folder / "tests/check.sh").is_file()

    echo = mat.write_task(mat.family("mat-echo").instance(0), tmp_path / "echo", format="portable")
    text = (echo / "environment/Dockerfile").read_text()
    assert "RUN" not in text and "ltenv-setup" not in text  # the executable bit comes with COPY
    assert (echo / "environment/files/app/bin/hello").stat().st_mode & 0o777 == 0o755
    with pytest.raises(ProcgenError, match="unknown format"):
        mat.write_task(inst, tmp_path / "x", format="zip")


def test_cache_hit_does_not_regenerate(tmp_path):
    first = _write_fast(tmp_path, seed=11)
    mtime = (first / "task.toml").stat().st_mtime_ns
    calls = MatEcho.calls
    assert _write_fast(tmp_path, seed=11) == first
    assert MatEcho.calls == calls
    assert (first / "task.toml").stat().st_mtime_ns == mtime


def test_digest_changes_with_the_generator_source(tmp_path):
    src = tmp_path / "dig_family.py"
    src.write_text(
        textwrap.dedent(
            """
            import random
            from ltenv.procgen.base import Family, Instance, register

            @register
            class DigFamily(Family):
                name = "mat-digest"
                domain = "coding"
                description = "digest test"

                def generate(self, rng: random.Random, seed: int) -> Instance:
                    return Instance(self.name, seed, "coding", "easy", "Do nothing.", {}, ("true",), "exit 0")
            """
        )
    )
    mat.load_plugins(str(src))
    fam = mat.family("mat-digest")
    d1 = mat.generator_digest(fam)
    p1 = mat.materialize(fam, 0, root=tmp_path / "cache")
    src.write_text(src.read_text() + "\n# the generator changed\n")
    mat._digests.clear()
    d2 = mat.generator_digest(fam)
    assert d1 != d2
    p2 = mat.materialize(fam, 0, root=tmp_path / "cache")
    assert p1 != p2 and p2.parent.name == d2 and p1.is_dir()


def _materialize_in_child(root: str, seed: int) -> str:
    return str(mat.materialize("mat-echo", seed, root=Path(root)))


def _assert_complete(folder: Path) -> None:
    assert (folder / "task.toml").is_file() and (folder / "tests/check.sh").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_writers_threads(tmp_path):
    barrier = threading.Barrier(12)

    def work(seed: int) -> Path:
        barrier.wait()
        return mat.materialize("mat-echo", seed, root=tmp_path)

    with ThreadPoolExecutor(12) as pool:
        paths = list(pool.map(work, [5] * 6 + [6] * 6))
    assert len(set(paths)) == 2
    for p in set(paths):
        _assert_complete(p)


def test_concurrent_writers_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(6, mp_context=ctx) as pool:
        paths = list(pool.map(_materialize_in_child, [str(tmp_path)] * 12, [8] * 12))
    assert len(set(paths)) == 1
    _assert_complete(Path(paths[0]))


# ------------------------------------------------------------------------------------------ suites


def test_load_suite_spec():
    from ltenv.tasks import load_suite

    suite = load_suite("procgen:mat-echo:0-4")
    assert not suite.errors
    assert [t.name for t in suite.tasks] == [f"proc-mat-echo-s{i:05d}" for i in range(5)]
    suite = load_suite("procgen:mat-echo,mat-setup:1,3")
    assert [t.name for t in suite.tasks] == [
        "proc-mat-echo-s00001",
        "proc-mat-echo-s00003",
        "proc-mat-setup-s00001",
        "proc-mat-setup-s00003",
    ]
    everything = load_suite("procgen:all:0")
    names = {t.name for t in everything.tasks}
    assert {"proc-mat-echo-s00000", "proc-mat-setup-s00000"} <= names
    # the same instance, every time
    again = load_suite("procgen:mat-echo:3").tasks[0]
    assert again.path == suite.tasks[1].path and again.checksum() == suite.tasks[1].checksum()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("procgen:no-such-family:0-3", "unknown procgen family 'no-such-family'"),
        ("procgen:mat-echo:9-2", "ends before it starts"),
        ("procgen:mat-echo:zero", "cannot read 'zero'"),
        ("procgen:mat-echo:", "empty seed range"),
        ("procgen:mat-echo", "expected procgen:<family>"),
        ("procgen::0-3", "expected procgen:<family>"),
    ],
)
def test_load_suite_spec_errors(spec, message):
    from ltenv.tasks import load_suite

    with pytest.raises(ProcgenError) as e:
        load_suite(spec)
    assert message in str(e.value)


def test_load_instances():
    import ltenv
    from ltenv.procgen import load_instances

    tasks = load_instances("mat-echo", range(3))
    assert [t.name for t in tasks] == ["proc-mat-echo-s00000", "proc-mat-echo-s00001", "proc-mat-echo-s00002"]
    both = ltenv.load_instances(["mat-setup", "mat-echo"], "7")
    assert [t.name for t in both] == ["proc-mat-setup-s00007", "proc-mat-echo-s00007"]
    with pytest.raises(ProcgenError):
        load_instances("mat-echo", [-1])


def test_loader_checks_setup_paths_and_commands(tmp_path):
    from ltenv.errors import TaskLoadError
    from ltenv.tasks import load_task

    folder = mat.materialize("mat-setup", 0, root=tmp_path)
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(folder, broken)
    (broken / "setup/setup.sh").unlink()
    with pytest.raises(TaskLoadError) as e:
        load_task(broken)
    assert "task.toml" in str(e.value) and "setup_script" in str(e.value)
    (broken / "setup/setup.sh").write_text("true\n")
    shutil.rmtree(broken / "setup/files")
    with pytest.raises(TaskLoadError, match="setup_files"):
        load_task(broken)
    (broken / "setup/files").mkdir()
    toml = (broken / "task.toml").read_text()
    (broken / "task.toml").write_text(toml.replace('"setup/setup.sh"', '"../outside.sh"'))
    with pytest.raises(TaskLoadError, match="inside the task folder"):
        load_task(broken)
    (broken / "task.toml").write_text(toml)
    (broken / "solution/commands.json").write_text('{"not": "a list"}')
    with pytest.raises(TaskLoadError, match=r"commands\.json"):
        load_task(broken)
    (broken / "solution/commands.json").write_text('["ls"]')
    assert load_task(broken).oracle_commands == ["ls"]


def test_export_refuses_to_overwrite_unless_forced(tmp_path):
    out = tmp_path / "out"
    assert mat.export("mat-echo", "0-2", out) == (3, 0)
    assert sorted(p.name for p in out.iterdir()) == [f"proc-mat-echo-s0000{i}" for i in range(3)]
    assert mat.export("mat-echo", "0-2", out) == (0, 3)  # identical: left alone
    readme = out / "proc-mat-echo-s00001/environment/files/app/README.md"
    readme.write_text("edited\n")
    with pytest.raises(ProcgenError, match="--force"):
        mat.export("mat-echo", "0-3", out)
    assert readme.read_text() == "edited\n" and not (out / "proc-mat-echo-s00003").exists()
    assert mat.export("mat-echo", "0-3", out, force=True) == (2, 2)
    assert readme.read_text() != "edited\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    mode = (out / "proc-mat-echo-s00000/environment/files/app/bin/hello").stat().st_mode
    assert mode & stat.S_IXUSR
