"""``ltenv procgen`` and ``--tasks procgen:...`` through the real command line.

The families below reach the ``ltenv`` subprocess through ``$LTENV_PROCGEN_PLUGINS`` (this file), so keep
this module's top level importable without pytest fixtures.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from ltenv.procgen.base import Family, Instance, register

THIS = str(Path(__file__).resolve())


@register
class CliEcho(Family):
    name = "cli-echo"
    domain = "coding"
    description = "Write the word to /app/answer.txt."

    def generate(self, rng: random.Random, seed: int) -> Instance:
        w = "".join(rng.choice("bdfgkmnprstvz") for _ in range(9))
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="easy",
            instruction=f"Write the word {w} to /app/answer.txt",
            files={"/app/README.md": "Answers go to /app/answer.txt.\n"},
            commands=(f"echo {w} > /app/answer.txt",),
            check=f'[ "$(cat /app/answer.txt 2>/dev/null)" = "{w}" ]\n',
        )


@register
class CliMulti(Family):
    name = "cli-multi"
    domain = "system_admin"
    difficulty = "medium"
    description = "Read a value the setup hid, then write it."
    multi_turn = True

    def generate(self, rng: random.Random, seed: int) -> Instance:
        n = rng.randint(1000, 9999)
        return Instance(
            family=self.name,
            seed=seed,
            domain=self.domain,
            difficulty="medium",
            instruction="Write the number in /opt/cli/value.txt to /app/answer.txt",
            files={"/opt/cli/run.sh": "#!/bin/sh\ncat /opt/cli/value.txt\n"},
            executable=frozenset({"/opt/cli/run.sh"}),
            setup=f"echo {n} > /opt/cli/value.txt\nchmod 640 /opt/cli/value.txt\n",
            commands=("/opt/cli/run.sh", f"echo {n} > /app/answer.txt"),
            check=f'[ "$(cat /app/answer.txt)" = "{n}" ] && [ "$(stat -c %a /opt/cli/value.txt)" = 640 ]\n',
        )


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("LTENV_PROCGEN_PLUGINS", THIS)


def _run(*args, **kw):
    from tests.support.cli import run_ltenv

    return run_ltenv(*args, **kw)


def test_procgen_list(plugins):
    proc = _run("procgen", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["cli-multi"] == {
        "name": "cli-multi",
        "domain": "system_admin",
        "difficulty": "medium",
        "multi_turn": True,
        "description": "Read a value the setup hid, then write it.",
        "gym_id": "LiteCoder/proc-cli-multi-v0",
    }
    assert "cli-echo" in rows and len(rows) >= 3  # the bundled families too
    table = _run("procgen", "list")
    assert table.returncode == 0 and "cli-multi" in table.stdout and "system_admin" in table.stdout


def test_procgen_show(plugins):
    proc = _run("procgen", "show", "cli-multi", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    inst = CliMulti().instance(3)
    for part in (inst.instruction, "/opt/cli/run.sh", inst.commands[1], "chmod 640", "stat -c %a"):
        assert part in proc.stdout
    as_json = json.loads(_run("procgen", "show", "cli-multi", "--seed", "3", "--json").stdout)
    assert as_json["commands"] == list(inst.commands) and as_json["name"] == "proc-cli-multi-s00003"
    bad = _run("procgen", "show", "no-such-family")
    assert bad.returncode == 2 and "unknown procgen family 'no-such-family'" in bad.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("procgen:no-such-family:0-3", "unknown procgen family 'no-such-family'"),
        ("procgen:cli-echo:3-1", "ends before it starts"),
        ("procgen:cli-echo:x", "cannot read 'x'"),
    ],
)
def test_bad_specs_exit_2(plugins, spec, message):
    proc = _run("list", "--tasks", spec)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = _run("validate", "--tasks", spec)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_list_procgen_tasks(plugins):
    proc = _run("list", "--json", "--tasks", "procgen:cli-echo,cli-multi:0-1")
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)] == [
        "proc-cli-echo-s00000",
        "proc-cli-echo-s00001",
        "proc-cli-multi-s00000",
        "proc-cli-multi-s00001",
    ]


@pytest.mark.bwrap
@pytest.mark.slow
def test_validate_procgen_is_fast(plugins, store, bwrap_ok):
    seeds = 8
    _run("validate", "--tasks", "procgen:cli-echo:0", "--json")  # warm the cache (materialize, image)
    t0 = time.monotonic()
    proc = _run("validate", "--tasks", f"procgen:cli-echo,cli-multi:0-{seeds - 1}", "--json", "-j", "4")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2 * seeds and all(r["valid"] for r in rows), [r["error"] for r in rows]
    assert all(r["oracle_runs"] == [1.0, 1.0] and r["nop_runs"] == [0.0, 0.0] for r in rows)
    # oracle + nop twice per seed on the shared image: about 0.5 s per seed here; the bound leaves room for a loaded machine
    assert elapsed / (2 * seeds) < 1.5, f"{elapsed:.1f}s for {2 * seeds} seeds"


@pytest.mark.bwrap
@pytest.mark.slow
def test_export_portable_validates(plugins, store, bwrap_ok, tmp_path):
    out = tmp_path / "exported"
    proc = _run("procgen", "export", "cli-multi", "--seeds", "0-1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2" and "wrote 2 task folder(s)" in proc.stderr
    folder = out / "proc-cli-multi-s00000"
    assert (folder / "environment" / "Dockerfile").is_file()
    proc = _run("validate", "--tasks", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["valid"] for r in json.loads(proc.stdout)] == [True, True]

    # the same folders again: left alone; edited ones: refused unless --force
    again = _run("procgen", "export", "cli-multi", "--seeds", "0-1", "--out", out)
    assert again.returncode == 0 and again.stdout.strip() == "2" and "2 already up to date" in again.stderr
    (folder / "instruction.md").write_text("edited\n")
    refused = _run("procgen", "export", "cli-multi", "--seeds", "0-1", "--out", out)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (folder / "instruction.md").read_text() == "edited\n"
    forced = _run("procgen", "export", "cli-multi", "--seeds", "0-1", "--out", out, "--force")
    assert forced.returncode == 0 and (folder / "instruction.md").read_text() != "edited\n"


def test_export_fast_format(plugins, tmp_path):
    from ltenv.tasks import load_suite

    proc = _run("procgen", "export", "cli-echo", "--seeds", "0-2,7", "--out", tmp_path, "--format", "fast")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "4"
    suite = load_suite(tmp_path)
    assert not suite.errors and len(suite.tasks) == 4
    assert all(t.config.environment.docker_image == "ltenv/base:bookworm" for t in suite.tasks)
    bad = _run("procgen", "export", "cli-echo", "--seeds", "0", "--out", tmp_path / "x", "--format", "zip")
    assert bad.returncode == 2 and "unknown format" in bad.stderr
