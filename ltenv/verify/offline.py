"""Offline verification: what a test script would download (test dependencies, test files), so the task's
test files can run with the image's own pytest when the script cannot reach a network."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from ltenv.sandbox.base import Sandbox
from ltenv.tasks.model import Task

TESTS_DIR = "/tests"


@dataclass(frozen=True)
class TestDependency:
    """A Python package a test script installs (``uv add X``, ``pip install X``, ``uvx -w X``...)."""

    name: str
    requirement: str
    """As written, e.g. ``pytest==8.4.1``."""
    command: str
    """The script line that installs it."""


# Reporting plugins: offline mode does not pass their options, so the tests do not need them.
REPORTING_PLUGINS = frozenset(
    {"pytest-json-ctrf", "pytest-json-report", "pytest-html", "pytest-cov", "pytest-sugar"}
)
_REQ_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(\[[^\]]*\])?\s*(?:[=<>!~;@ ].*)?$")
_VALUE_OPTS = {
    "-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f",
    "--find-links", "-p", "--python", "-t", "--target", "--prefix", "--root", "--index", "--default-index",
    "--optional", "--group", "--extra", "--package", "--project", "--directory", "--from", "-e", "--editable",
}  # fmt: skip


def _commands(script: str) -> list[tuple[str, list[str]]]:
    """Simple commands of a shell script as token lists (continuations joined, split at ; && || |)."""
    text = re.sub(r"\\\n", " ", script)
    out = []
    for line in text.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            continue
        cmd: list[str] = []
        for tok in [*tokens, ";"]:
            if tok and set(tok) <= set(";&|"):
                if cmd:
                    out.append((line.strip(), cmd))
                cmd = []
            else:
                cmd.append(tok)
    return out


def script_test_dependencies(script: str, tests_dir: Any = None) -> list[TestDependency]:
    """Python packages a test script installs: ``uv add``, ``uv pip install``, ``pip[3] install``,
    ``python -m pip install``, ``uvx`` / ``uv run`` / ``uv tool run`` ``--with`` / ``-w``.

    ``-r FILE`` requirements files are read when ``FILE`` is in ``tests_dir`` (a host path). Paths, URLs
    and VCS requirements are not Python package names and are skipped.
    """
    deps: dict[str, TestDependency] = {}

    def add(req: str, line: str) -> None:
        if "/" in req or req.startswith((".", "git+")) or req.endswith((".whl", ".tar.gz", ".zip")):
            return
        m = _REQ_NAME_RE.match(req.strip())
        if m and m.group(1).lower() not in deps:
            deps[m.group(1).lower()] = TestDependency(m.group(1), req, line)

    def add_file(path: str, line: str) -> None:
        if tests_dir is None:
            return
        from pathlib import Path

        name = path.replace("${TEST_DIR}", TESTS_DIR).replace("$TEST_DIR", TESTS_DIR)
        name = name.removeprefix(TESTS_DIR + "/")
        f = Path(tests_dir) / name
        if f.is_file():
            for req in f.read_text(encoding="utf-8", errors="replace").splitlines():
                req = req.split("#", 1)[0].strip()
                if req and not req.startswith("-"):
                    add(req, line)

    for line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        install_args: list[str] | None = None
        for i in range(len(base) - 1):
            pair = (base[i], base[i + 1])
            if pair in (("pip", "install"), ("pip3", "install"), ("uv", "add")):
                install_args = tokens[i + 2 :]
                break
        if install_args is not None:
            skip = False
            for j, tok in enumerate(install_args):
                if skip:
                    skip = False
                    continue
                if tok in ("-r", "--requirement"):
                    if j + 1 < len(install_args):
                        add_file(install_args[j + 1], line)
                    skip = True
                elif tok in _VALUE_OPTS:
                    skip = True
                elif not tok.startswith("-"):
                    add(tok, line)
        if "uvx" in base or ("uv" in base and ("run" in base or "tool" in base)):
            for j, tok in enumerate(tokens):
                if tok in ("-w", "--with") and j + 1 < len(tokens):
                    for req in tokens[j + 1].split(","):
                        add(req, line)
                elif tok.startswith("--with="):
                    for req in tok.split("=", 1)[1].split(","):
                        add(req, line)
            # `uvx pytest ...` / `uv tool run pytest`: the tool itself is a dependency.
            if "uvx" in base:
                k = base.index("uvx") + 1
                while k < len(tokens) and tokens[k].startswith("-"):
                    k += (
                        1
                        if "=" in tokens[k] or tokens[k] not in ("-w", "--with", "-p", "--python", "--from")
                        else 2
                    )
                if k < len(tokens):
                    add(tokens[k], line)
    return list(deps.values())


_CHECK_DEPS = """
import importlib.metadata as md, importlib.util, json, sys
missing = []
for name in json.loads(sys.argv[1]):
    try:
        md.distribution(name)
        continue
    except Exception:
        pass
    try:
        if importlib.util.find_spec(name.replace("-", "_").lower()) is not None:
            continue
    except Exception:
        pass
    missing.append(name)
print(json.dumps(missing))
"""


def _missing_dependencies(
    sandbox: Sandbox, names: list[str], *, env: dict[str, str], workdir: str | None
) -> tuple[list[str] | None, str]:
    """Which of ``names`` the image's ``python3`` cannot find; ``(None, why)`` if python3 itself is missing."""
    res = sandbox.exec(
        ["python3", "-c", _CHECK_DEPS, json.dumps(names)], timeout=60, env=env, workdir=workdir
    )
    if not res.ok:
        return None, res.text.strip()[-300:]
    try:
        return list(json.loads(res.stdout.decode().strip().splitlines()[-1])), ""
    except (ValueError, IndexError):
        return None, res.text.strip()[-300:]


def offline_test_files(task: Task) -> list[str]:
    """The test files (paths in the sandbox) the task's test script hands to pytest.

    Read from the script's pytest command (``$TEST_DIR`` / ``${TEST_DIR}`` become ``/tests``; relative paths
    are looked up in ``tests/``); if it names none, every top-level ``tests/test_*.py`` / ``*_test.py``.
    """
    script = task.test_script.read_text(encoding="utf-8", errors="replace")
    found: list[str] = []
    for _line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        if not any(b in ("pytest", "py.test") for b in base):
            continue
        start = next(i for i, b in enumerate(base) if b in ("pytest", "py.test"))
        for tok in tokens[start + 1 :]:
            path = tok.replace("${TEST_DIR}", TESTS_DIR).replace("$TEST_DIR", TESTS_DIR)
            file = path.split("::", 1)[0]
            if not file.endswith(".py"):
                continue
            rel = file.removeprefix(TESTS_DIR + "/") if file.startswith(TESTS_DIR + "/") else file
            if rel.startswith("/") or not (task.tests_dir / rel).is_file():
                continue
            sandbox_path = f"{TESTS_DIR}/{rel}" + (path[len(file) :] if "::" in path else "")
            if sandbox_path not in found:
                found.append(sandbox_path)
    if not found and task.tests_dir.is_dir():
        for p in sorted(task.tests_dir.iterdir()):
            if p.is_file() and p.suffix == ".py" and (p.name.startswith("test_") or p.stem.endswith("_test")):
                found.append(f"{TESTS_DIR}/{p.name}")
    return found


_LOCAL_URL_RE = re.compile(r"^https?://(?:localhost|127\.|0\.0\.0\.0|\[::1\])")


def script_needs_network(script: str) -> bool:
    """Whether a test script fetches tools or packages before testing: it runs ``uv`` / ``uvx``,
    ``pip install``, ``apt(-get) install``, or ``curl`` / ``wget`` on a non-local URL."""
    for _line, tokens in _commands(script):
        base = [os.path.basename(t) for t in tokens]
        if "uv" in base or "uvx" in base:
            return True
        if {("pip", "install"), ("pip3", "install")} & set(itertools.pairwise(base)):
            return True
        if {"apt", "apt-get"} & set(base) and "install" in base:
            return True
        if ("curl" in base or "wget" in base) and any(
            t.startswith(("http://", "https://")) and not _LOCAL_URL_RE.match(t) for t in tokens
        ):
            return True
    return False


def offline_plan(
    sandbox: Sandbox, task: Task, *, env: dict[str, str], workdir: str | None, result: Any
) -> list[str] | None:
    """The test files to run with the image's ``python3 -m pytest -rA`` in place of a script that downloads its
    tools, after checking that the script's test dependencies are in the image.

    Fills ``result.error`` / ``result.notes`` (a :class:`~ltenv.verify.VerifierResult`); returns ``None`` when the
    tests cannot run offline.
    """
    script_name = task.test_script.relative_to(task.path).as_posix()
    script = task.test_script.read_text(encoding="utf-8", errors="replace")
    files = offline_test_files(task)
    result.runner = "offline pytest"
    result.notes.append(
        f"offline mode: {script_name} was not run; ran python3 -m pytest -rA {' '.join(files) or '(nothing)'} "
        "with the image's own Python"
    )
    if not files:
        result.error = (
            f"offline verification: no test files found ({script_name} names none, tests/ has none)"
        )
        return None
    deps = script_test_dependencies(script, task.tests_dir)
    ignored = [d.name for d in deps if d.name.lower() in REPORTING_PLUGINS]
    if ignored:
        result.notes.append(f"offline mode: reporting plugins not needed: {', '.join(ignored)}")
    pinned = [d.requirement for d in deps if d.requirement != d.name]
    if pinned:
        result.notes.append(
            f"offline mode: versions are not enforced ({', '.join(pinned)}); the image's packages are used"
        )
    wanted = ["pytest"] + [d.name for d in deps if d.name.lower() not in REPORTING_PLUGINS | {"pytest"}]
    missing, why = _missing_dependencies(sandbox, wanted, env=env, workdir=workdir)
    if missing is None:
        result.error = f"offline verification needs python3 in the image, and it failed: {why}"
        return None
    if missing:
        by_name = {d.name: d for d in deps}
        detail = "; ".join(
            f"{n} (installed by {script_name}: `{by_name[n].command}`)"
            if n in by_name
            else f"{n} (to run the tests)"
            for n in missing
        )
        result.error = (
            f"offline verification: test dependenc{'y' if len(missing) == 1 else 'ies'} not installed in the "
            f"image: {detail}. Bake {'it' if len(missing) == 1 else 'them'} into an image and map the task's "
            "base image to it with --image-map (offline mode cannot download packages)"
        )
        return None
    return files
