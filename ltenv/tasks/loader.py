"""Loading task folders (Harbor / Terminal-Bench 2.0 ``task.toml``, Terminal-Bench 1.x ``task.yaml``) and
discovering them in a suite."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ltenv.errors import SuiteLoadError, TaskLoadError
from ltenv.tasks.compose import load_harbor_services
from ltenv.tasks.contain import Escape, find_escapes, refuse
from ltenv.tasks.discovery import discover
from ltenv.tasks.model import FOLDER_NAME_RE, OracleSpec, Task, TaskConfig, TerminalCommand, VerifierSpec


def _format_loc(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in {"task", "metadata", "agent", "verifier", "environment", "solution"}:
        return f"[{parts[0]}] " + ".".join(parts[1:])
    return ".".join(parts) or "(top level)"


def load_task(path: Path | str) -> Task:
    """Load and validate one task folder: Harbor / TB 2.0 (``task.toml``) or Terminal-Bench 1.x (``task.yaml``).

    A folder with both files is read as Harbor (``task.toml`` wins). A path of the folder that leads outside it
    (a symlink, at any depth) is refused before anything is read (see :mod:`ltenv.tasks.contain`).

    Raises:
        TaskLoadError: naming the folder, the file and the field that is wrong.
    """
    folder = Path(path).resolve() if not Path(path).is_absolute() else Path(path)
    if not folder.is_dir():
        raise TaskLoadError(folder, ".", None, "not a directory")
    name = folder.name
    if not FOLDER_NAME_RE.match(name):
        raise TaskLoadError(
            folder,
            ".",
            "name",
            "folder name must start with a letter or digit and hold only letters, "
            "digits, '.', '_' or '-' (it becomes the Gymnasium id)",
        )

    toml_path = folder / "task.toml"
    if not toml_path.is_file():
        if (folder / "task.yaml").is_file():
            from ltenv.tasks.terminal_bench import load_terminal_bench_task

            return load_terminal_bench_task(folder)
        raise TaskLoadError(folder, "task.toml", None, "missing (and no Terminal-Bench task.yaml either)")
    escapes = find_escapes(folder)
    refuse(folder, [e for e in escapes if e.rel == "task.toml"])  # before reading it
    try:
        raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise TaskLoadError(folder, "task.toml", None, f"not UTF-8 text ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise TaskLoadError(folder, "task.toml", None, f"invalid TOML: {e}") from None
    try:
        config = TaskConfig.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        first = _format_loc(tuple(errs[0]["loc"]))
        detail = "; ".join(f"{_format_loc(tuple(x['loc']))}: {x['msg']}" for x in errs)
        raise TaskLoadError(folder, "task.toml", first, detail) from None
    _check_contained(folder, config, escapes)
    meta = config.metadata
    if meta.domain is None and meta.category:
        from ltenv.tasks.terminal_bench import domain_for_category

        config = config.model_copy(
            update={"metadata": meta.model_copy(update={"domain": domain_for_category(meta.category)})}
        )

    instr_path = folder / "instruction.md"
    if not instr_path.is_file():
        raise TaskLoadError(folder, "instruction.md", None, "missing")
    try:
        instruction = instr_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskLoadError(folder, "instruction.md", None, f"not UTF-8 text ({e})") from None
    if not instruction.strip():
        raise TaskLoadError(folder, "instruction.md", None, "empty")

    if config.environment.docker_image is None and not (folder / "environment" / "Dockerfile").is_file():
        raise TaskLoadError(
            folder,
            "environment/Dockerfile",
            None,
            "missing (and task.toml sets no [environment] docker_image)",
        )
    if not (folder / "tests" / "test.sh").is_file():
        raise TaskLoadError(folder, "tests/test.sh", None, "missing (the verifier entry point)")
    solve = folder / "solution"
    if solve.exists() and not (solve / "solve.sh").is_file() and not (solve / "keys.json").is_file():
        raise TaskLoadError(
            folder, "solution/solve.sh", None, "missing (solution/ exists without it or solution/keys.json)"
        )
    _check_commands(folder)
    load_keys_json(folder)
    _check_setup(folder, config)

    services = load_harbor_services(folder)
    return Task(name=name, path=folder, instruction=instruction, config=config, services=services)


def _inside(folder: Path, rel: str) -> Path | None:
    """``folder / rel`` when ``rel`` is a relative path that stays inside ``folder``, else ``None``."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        return None
    return folder / p


def _check_contained(folder: Path, config: TaskConfig, escapes: list[Escape]) -> None:
    """No path the task uses leads outside the folder (see :mod:`ltenv.tasks.contain`); ``environment/``,
    when the image is built from it, may hold links that only the image resolves."""
    if not escapes:
        return
    env = config.environment
    host_read: dict[str, str | None] = {}
    for key in ("setup_files", "setup_script"):
        rel = getattr(env, key)
        if rel is not None and _inside(folder, rel) is not None:
            host_read[rel] = f"[environment] {key}"
    for rel in ("instruction.md", "tests", "solution", "environment/Dockerfile", "environment/.dockerignore"):
        host_read.setdefault(rel, None)
    context = None if env.docker_image else "environment"
    refuse(folder, escapes, context=context, host_read=host_read)


def _check_setup(folder: Path, config: TaskConfig) -> None:
    env = config.environment
    for key, want_dir in (("setup_files", True), ("setup_script", False)):
        rel = getattr(env, key)
        if rel is None:
            continue
        p = _inside(folder, rel)
        if p is None:
            raise TaskLoadError(
                folder, "task.toml", f"[environment] {key}", f"{rel!r} must be a path inside the task folder"
            )
        if want_dir and not p.is_dir():
            raise TaskLoadError(folder, "task.toml", f"[environment] {key}", f"{rel!r} is not a folder")
        if not want_dir and not p.is_file():
            raise TaskLoadError(folder, "task.toml", f"[environment] {key}", f"{rel!r} is not a file")


def _check_commands(folder: Path) -> None:
    p = folder / "solution" / "commands.json"
    if not p.is_file():
        return
    import json

    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TaskLoadError(folder, "solution/commands.json", None, f"not valid JSON ({e})") from None
    if not isinstance(data, list) or not data or not all(isinstance(c, str) and c.strip() for c in data):
        raise TaskLoadError(
            folder,
            "solution/commands.json",
            None,
            "must be a non-empty JSON list of shell commands (strings)",
        )


KEYS_JSON = "solution/keys.json"
KEYS_DEFAULT_DURATION = 1.0
"""Seconds a ``solution/keys.json`` entry without ``duration`` watches the terminal (Terminus-2's default)."""


def load_keys_json(folder: Path) -> list[TerminalCommand] | None:
    """``solution/keys.json``, the keystroke oracle: ``[{"keystrokes": str, "duration": seconds}, ...]`` as
    Terminus-2 sends them, or ``None`` if the task has none.

    ``keystrokes`` is one tmux ``send-keys`` argument (exactly a key name such as ``C-c``, ``Escape`` or
    ``Enter`` is that key; anything else is typed, a newline pressing Enter); ``duration`` (default 1.0,
    ``>= 0``) is how long the terminal is watched before the next entry. Raises
    :class:`~ltenv.errors.TaskLoadError` naming the file and the entry's field.
    """
    import json
    import math

    p = folder / KEYS_JSON
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TaskLoadError(folder, KEYS_JSON, None, f"not valid JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise TaskLoadError(
            folder,
            KEYS_JSON,
            None,
            'must be a non-empty JSON list of {"keystrokes": str, "duration": seconds}',
        )
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise TaskLoadError(
                folder, KEYS_JSON, f"[{i}]", 'expected an object {"keystrokes": ..., "duration": ...}'
            )
        unknown = sorted(set(entry) - {"keystrokes", "duration"})
        if unknown:
            raise TaskLoadError(
                folder,
                KEYS_JSON,
                f"[{i}].{unknown[0]}",
                "unknown field (an entry has keystrokes and duration)",
            )
        keys = entry.get("keystrokes")
        if not isinstance(keys, str) or not keys:
            raise TaskLoadError(folder, KEYS_JSON, f"[{i}].keystrokes", "required: a non-empty string")
        duration = entry.get("duration", KEYS_DEFAULT_DURATION)
        if (
            not isinstance(duration, int | float)
            or isinstance(duration, bool)
            or not math.isfinite(duration)
            or duration < 0
        ):
            raise TaskLoadError(
                folder, KEYS_JSON, f"[{i}].duration", f"expected seconds >= 0, got {duration!r}"
            )
        out.append(TerminalCommand(command=keys, min_timeout_sec=float(duration), append_enter=False))
    return out


@dataclass
class Suite:
    """Every task found below a folder, plus every folder that failed to load."""

    root: Path
    tasks: list[Task] = field(default_factory=list)
    errors: list[TaskLoadError] = field(default_factory=list)

    def by_name(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task named {name!r} in {self.root}")

    def raise_errors(self) -> None:
        if self.errors:
            raise SuiteLoadError(self.errors)


def load_suite(root: Path | str, *, strict: bool = False) -> Suite:
    """Load every task below ``root``. Bad folders are collected in ``Suite.errors``, never only the first.

    ``root`` may also be a procgen spec, ``procgen:<family>[,<family>...|all]:<seeds>`` (e.g.
    ``procgen:json-field:0-49``): the instances are materialized (cached) and loaded; an unknown family or
    a bad seed range raises :class:`ltenv.procgen.ProcgenError`.

    Duplicate task names (which would collide as Gymnasium ids) are reported as errors too.
    With ``strict=True`` a :class:`SuiteLoadError` listing every bad folder is raised instead.
    """
    from ltenv.procgen.materialize import is_spec

    folders: list[Path] | None = None
    if is_spec(root):
        from ltenv.procgen.materialize import materialize_spec

        folders = materialize_spec(str(root))
    suite = Suite(root=Path(root))
    seen: dict[str, Path] = {}
    for d in folders if folders is not None else discover(root):
        try:
            task = load_task(d)
        except TaskLoadError as e:
            suite.errors.append(e)
            continue
        if task.name in seen:
            suite.errors.append(
                TaskLoadError(d, ".", "name", f"duplicate task name, also at {seen[task.name]}")
            )
            continue
        seen[task.name] = d
        suite.tasks.append(task)
    if folders is None and not suite.tasks and not suite.errors and not Path(root).exists():
        suite.errors.append(TaskLoadError(Path(root), ".", None, "no such directory"))
    if strict:
        suite.raise_errors()
    return suite


def verifier_spec(task: Task) -> VerifierSpec:
    """Harbor / Terminal-Bench 2.0: ``tests/`` goes to ``/tests``; ``tests/test.sh`` writes the reward file."""
    return VerifierSpec(
        script=task.tests_dir / "test.sh",
        script_dest="/tests/test.sh",
        tests_dir=task.tests_dir,
        env=dict(task.config.verifier.env),
        workdir=None,
        outcome="reward-file",
        timeout_sec=task.config.verifier.timeout_sec,
        timeout_label="[verifier] timeout_sec",
        label="tests/test.sh",
    )


def oracle_spec(task: Task) -> OracleSpec:
    """Harbor: ``solution/keys.json`` is typed into an interactive bash on a terminal (see
    :func:`load_keys_json`); otherwise ``solution/`` goes to ``/solution`` and ``solve.sh`` runs with
    ``[solution] env``."""
    keys = load_keys_json(task.path)
    if keys is not None:
        return OracleSpec(
            kind="keystrokes",
            label=KEYS_JSON,
            timeout_sec=task.config.agent.timeout_sec,
            env=dict(task.config.solution.env),
            workdir=task.container_workdir,
            keystrokes=tuple(keys),
        )
    return OracleSpec(
        kind="script",
        label="solution/solve.sh",
        timeout_sec=task.config.agent.timeout_sec,
        env=dict(task.config.solution.env),
        files=task.solution_dir,
        dest="/solution",
        entry="/solution/solve.sh",
    )
