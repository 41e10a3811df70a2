"""Loading Terminal-Bench 1.x task folders (``task.yaml``) into the common :class:`~ltenv.tasks.model.Task`.

A Terminal-Bench 1.x folder::

    <task-name>/
      task.yaml             instruction, author, difficulty, category, tags, parser_name, timeouts...
      Dockerfile            the image (build context: the task folder, or the compose build context)
      docker-compose.yaml   one service (build context / dockerfile / image / environment / working_dir)
      run-tests.sh          the verifier: copied to $TEST_DIR (/tests) with tests/, run after the agent
      tests/                test files (test_outputs.py)
      solution.sh           the oracle as a bash script, or
      solution.yaml         the oracle as keystrokes: [{command, min_timeout_sec, max_timeout_sec, block,
                            append_enter}, ...]

What is refused (a :class:`~ltenv.errors.TaskLoadError` naming folder, file and field): parsers other than
``pytest``, compose volumes of the agent's service other than Terminal-Bench's log mounts,
build contexts outside the task folder, compose build options that would change the image
(``target``, ``dockerfile_inline``, ``secrets``...), and symlinks that lead outside the task folder
(see :mod:`ltenv.tasks.contain`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltenv.errors import TaskLoadError
from ltenv.tasks.compose import ComposeReader, ServiceGraph, agent_service_name
from ltenv.tasks.contain import Escape, build_context_rules, find_escapes, refuse
from ltenv.tasks.model import (
    AgentConfig,
    ComposeService,
    EnvironmentConfig,
    Metadata,
    OracleSpec,
    Task,
    TaskConfig,
    TerminalBenchConfig,
    TerminalCommand,
    VerifierConfig,
    VerifierSpec,
)

TEST_DIR = "/tests"
"""Where Terminal-Bench copies ``run-tests.sh`` and ``tests/`` (``$TEST_DIR``)."""
COMPOSE_FILES = ("docker-compose.yaml", "docker-compose.yml")
SUPPORTED_PARSERS = ("pytest",)

# Compose options of a build section: read, harmless to ignore, or refused (they would change the image).
_BUILD_READ = {"context", "dockerfile", "args"}
_BUILD_IGNORED = {"labels", "cache_from", "cache_to", "network", "shm_size", "extra_hosts", "pull"}
# Service options that do not matter inside one sandbox (names, restart policy, the keep-alive command...).
_SERVICE_IGNORED = {
    "command", "container_name", "hostname", "restart", "init", "tty", "stdin_open", "ports", "expose",
    "networks", "healthcheck", "logging", "labels", "platform", "pull_policy", "deploy", "ulimits",
    "mem_limit", "cpus", "shm_size", "stop_grace_period", "stop_signal",
}  # fmt: skip
_SERVICE_READ = {"build", "image", "environment", "working_dir", "volumes"}


class TaskYaml(BaseModel):
    """The fields of Terminal-Bench's ``task.yaml``; unknown keys are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow")

    instruction: str = Field(min_length=1)
    author_name: str = "unknown"
    author_email: str = "unknown"
    difficulty: Literal["easy", "medium", "hard", "unknown"]
    category: str = "software_engineering"
    tags: list[str] = Field(default_factory=list)
    parser_name: str = "pytest"
    max_agent_timeout_sec: float = Field(default=360.0, gt=0)
    max_test_timeout_sec: float = Field(default=60.0, gt=0)
    run_tests_in_same_shell: bool = False
    disable_asciinema: bool = False
    estimated_duration_sec: float | None = Field(default=None, gt=0)
    expert_time_estimate_min: float | None = Field(default=None, ge=0)
    junior_time_estimate_min: float | None = Field(default=None, ge=0)

    @field_validator("tags", mode="before")
    @classmethod
    def _null_tags(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty")
        return v


# Terminal-Bench / Harbor categories -> the project's domains (ltenv.tasks.model.DOMAINS). Keys are normalized
# (lowercase, '-' and spaces as '_'); an unknown category maps to DEFAULT_DOMAIN and stays in
# [metadata] category.
CATEGORY_DOMAINS: dict[str, str] = {
    "software_engineering": "coding",
    "coding": "coding",
    "programming": "coding",
    "debugging": "coding",
    "algorithms": "coding",
    "algorithm_design": "coding",
    "web": "coding",
    "web_development": "coding",
    "file_operations": "system_admin",
    "system_administration": "system_admin",
    "system_admin": "system_admin",
    "sysadmin": "system_admin",
    "file_system": "system_admin",
    "personal_assistant": "system_admin",
    "security": "security",
    "cybersecurity": "security",
    "forensics": "security",
    "data_science": "data_science",
    "data_processing": "data_science",
    "data_analysis": "data_science",
    "data_querying": "data_science",
    "database": "data_science",
    "scientific_computing": "scientific_computing",
    "mathematics": "scientific_computing",
    "math": "scientific_computing",
    "optimization": "scientific_computing",
    "machine_learning": "ai_ml",
    "model_training": "ai_ml",
    "ai_ml": "ai_ml",
    "ai": "ai_ml",
    "ml": "ai_ml",
    "games": "games",
    "game": "games",
    "networking": "networking",
    "network": "networking",
    "build_tools": "build_tools",
    "build_systems": "build_tools",
    "software_build": "build_tools",
    "version_control": "version_control",
    "git": "version_control",
}
DEFAULT_DOMAIN = "coding"


def domain_for_category(category: str | None) -> str:
    """The project domain of a Terminal-Bench / Harbor ``category`` (``software-engineering`` -> ``coding``);
    a category that names no known domain maps to :data:`DEFAULT_DOMAIN`."""
    key = re.sub(r"[\s/-]+", "_", (category or "").strip().lower())
    return CATEGORY_DOMAINS.get(key, DEFAULT_DOMAIN)


def is_terminal_bench_dir(path: Path) -> bool:
    return (path / "task.yaml").is_file()


def tb_variables(task_name: str) -> dict[str, str]:
    """The ``T_BENCH_*`` variables Terminal-Bench's harness sets for compose interpolation.

    Host paths (the log volumes) are left out: we do not mount host directories.
    """
    prefix = f"tb__{task_name}".replace(".", "-")
    return {
        "T_BENCH_TASK_DOCKER_CLIENT_CONTAINER_NAME": f"{prefix}__container",
        "T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME": f"{prefix}__client",
        "T_BENCH_TASK_DOCKER_NAME_PREFIX": prefix,
        "T_BENCH_CONTAINER_LOGS_PATH": "/logs",
        "T_BENCH_CONTAINER_AGENT_LOGS_PATH": "/agent-logs",
        "T_BENCH_TEST_DIR": TEST_DIR,
    }


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", re.DOTALL)


def interpolate(text: str, variables: dict[str, str], unresolved: list[str]) -> str:
    """Compose-style ``$VAR`` / ``${VAR}`` / ``${VAR:-default}`` (nestable) / ``${VAR:?err}`` / ``$$``.

    Variables not in ``variables`` (the host environment is deliberately not consulted, so a task means the
    same on every machine) become their default or empty, as compose does, and are listed in ``unresolved``.

    Raises:
        ValueError: for ``${VAR:?message}`` / ``${VAR?message}`` with ``VAR`` unset, or an unclosed ``${``.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                depth -= text[j] == "}"
                j += 1
            if depth:
                raise ValueError(f"unclosed '${{' in {text!r}")
            m = _BRACED_RE.fullmatch(text[i + 2 : j - 1])
            if not m:
                raise ValueError(f"invalid substitution {text[i:j]!r}")
            out.append(_substitute(m.group(1), m.group(2), m.group(3) or "", variables, unresolved))
            i = j
            continue
        m = _NAME_RE.match(text, i + 1)
        if m:
            out.append(_substitute(m.group(0), None, "", variables, unresolved))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _substitute(name: str, op: str | None, arg: str, variables: dict[str, str], unresolved: list[str]) -> str:
    value = variables.get(name)
    if op in (":-", "-"):
        if value is None or (op == ":-" and value == ""):
            return interpolate(arg, variables, unresolved)
        return value
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            raise ValueError(f"${{{name}}} is required: {arg or 'not set'}")
        return value
    if value is None:
        if name not in unresolved:
            unresolved.append(name)
        return ""
    return value


def _read_yaml(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskLoadError(folder, name, None, f"not UTF-8 text ({e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TaskLoadError(folder, name, None, f"invalid YAML: {e}") from None


def _loc(loc: tuple, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _raise_validation(folder: Path, file: str, e: ValidationError, prefix: str = "") -> None:
    errs = e.errors()
    first = _loc(tuple(errs[0]["loc"]), prefix)
    detail = "; ".join(f"{_loc(tuple(x['loc']), prefix)}: {x['msg']}" for x in errs)
    raise TaskLoadError(folder, file, first, detail) from None


def _kv_list(value: Any, folder: Path, file: str, field: str) -> dict[str, str | None]:
    """A compose ``environment`` / ``args``: a mapping or a list of ``KEY=VALUE`` / ``KEY`` strings."""
    if value is None:
        return {}
    if isinstance(value, dict):
        out: dict[str, str | None] = {}
        for k, v in value.items():
            if isinstance(v, dict | list):
                raise TaskLoadError(folder, file, f"{field}.{k}", "expected a string, number or null")
            out[str(k)] = None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise TaskLoadError(folder, file, f"{field}[{i}]", "expected a 'KEY=VALUE' string")
            k, eq, v = item.partition("=")
            out[k.strip()] = v if eq else None
        return out
    raise TaskLoadError(folder, file, field, "expected a mapping or a list of 'KEY=VALUE' strings")


def load_compose(folder: Path, task_name: str) -> ComposeService | None:
    """Read the agent's service of the task's compose file (``None`` if there is none)."""
    return load_compose_services(folder, task_name)[0]


def load_compose_services(folder: Path, task_name: str) -> tuple[ComposeService | None, ServiceGraph | None]:
    """Read the task's compose file: the agent's service, and the services beside it (``None`` when it is the
    only one). See :mod:`ltenv.tasks.compose` for the services' supported fields."""
    file = next((n for n in COMPOSE_FILES if (folder / n).is_file()), None)
    if file is None:
        return None, None
    data = _read_yaml(folder, file)
    if not isinstance(data, dict):
        raise TaskLoadError(folder, file, None, "expected a mapping with a 'services' key")
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise TaskLoadError(folder, file, "services", "expected a mapping of one service or more")
    variables = tb_variables(task_name)
    unresolved: list[str] = []
    graph: ServiceGraph | None = None
    if len(services) > 1:
        reader = ComposeReader(folder, file, folder, lambda v, f: _interp(folder, file, v, f, variables, []))
        parsed = reader.services_of(data)
        agent = agent_service_name(parsed)
        if agent is None:
            raise TaskLoadError(
                folder,
                file,
                "services",
                f"{len(services)} services ({', '.join(map(str, services))}) and none is the agent's: name it "
                "'client' (or give it Terminal-Bench's client container_name / image)",
            )
        graph = reader.graph(parsed, agent)
        name, svc = agent, services[agent]
    else:
        name, svc = next(iter(services.items()))
    name = str(name)
    base = f"services.{name}"
    if svc is None:
        svc = {}
    if not isinstance(svc, dict):
        raise TaskLoadError(folder, file, base, "expected a mapping")

    def interp(value: Any, field: str) -> str:
        return _interp(folder, file, value, field, variables, unresolved)

    allowed = _SERVICE_READ | _SERVICE_IGNORED | ({"depends_on"} if graph is not None else set())
    refused = sorted(k for k in svc if k not in allowed and not str(k).startswith("x-"))
    if refused:
        raise TaskLoadError(
            folder, file, f"{base}.{refused[0]}", f"not supported (service options {', '.join(refused)})"
        )

    fields: dict[str, Any] = {"name": name}
    build = svc.get("build")
    if build is not None:
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, dict):
            raise TaskLoadError(folder, file, f"{base}.build", "expected a path or a mapping")
        bad = sorted(k for k in build if k not in _BUILD_READ | _BUILD_IGNORED)
        if bad:
            raise TaskLoadError(
                folder, file, f"{base}.build.{bad[0]}", "not supported: it would change the image we build"
            )
        context = interp(build.get("context", "."), f"{base}.build.context")
        ctx = (folder / context).resolve()
        if "://" in context or context.startswith("git@"):
            raise TaskLoadError(
                folder, file, f"{base}.build.context", "remote build contexts are not supported"
            )
        if not ctx.is_relative_to(folder.resolve()):
            raise TaskLoadError(
                folder, file, f"{base}.build.context", f"{context!r} is outside the task folder"
            )
        if not ctx.is_dir():
            raise TaskLoadError(folder, file, f"{base}.build.context", f"{context!r} is not a directory")
        rel = ctx.relative_to(folder.resolve()).as_posix()
        fields["build_context"] = "." if rel in ("", ".") else rel
        dockerfile = interp(build.get("dockerfile", "Dockerfile"), f"{base}.build.dockerfile")
        lexical = Path(os.path.normpath(ctx / dockerfile))
        if lexical.is_relative_to(folder.resolve()):  # a link out is named as such, not as "not found"
            refuse(folder, find_escapes(folder, lexical.relative_to(folder.resolve())))
        df = (ctx / dockerfile).resolve()
        if not df.is_relative_to(ctx) or not df.is_file():
            raise TaskLoadError(
                folder, file, f"{base}.build.dockerfile", f"{dockerfile!r} not found in the build context"
            )
        fields["dockerfile"] = df.relative_to(ctx).as_posix()
        args = _kv_list(build.get("args"), folder, file, f"{base}.build.args")
        fields["build_args"] = {
            k: interp(v, f"{base}.build.args.{k}") for k, v in args.items() if v is not None
        }
    elif svc.get("image") is not None:
        image = interp(svc["image"], f"{base}.image")
        if not image or unresolved or "T_BENCH_" in str(svc["image"]):
            raise TaskLoadError(
                folder,
                file,
                f"{base}.image",
                f"{svc['image']!r} names no prebuilt image (and the service has no build section)",
            )
        fields["image"] = image
    else:
        raise TaskLoadError(folder, file, base, "the service has neither a build section nor an image")

    env = _kv_list(svc.get("environment"), folder, file, f"{base}.environment")
    environment: dict[str, str] = {}
    for k, v in env.items():
        if v is None:  # `- KEY` passes the host's value: we never read the host environment
            if k not in unresolved:
                unresolved.append(k)
            continue
        environment[k] = interp(v, f"{base}.environment.{k}")
    fields["environment"] = environment
    if svc.get("working_dir") is not None:
        wd = interp(svc["working_dir"], f"{base}.working_dir")
        if not wd.startswith("/"):
            raise TaskLoadError(folder, file, f"{base}.working_dir", f"{wd!r} is not an absolute path")
        fields["working_dir"] = wd

    log_mounts = {"${T_BENCH_CONTAINER_LOGS_PATH}", "${T_BENCH_CONTAINER_AGENT_LOGS_PATH}"}
    for i, vol in enumerate(svc.get("volumes") or []):
        target = vol.split(":")[1] if isinstance(vol, str) and ":" in vol else None
        if isinstance(vol, dict):
            target = vol.get("target")
        if target not in log_mounts and target not in ("/logs", "/agent-logs"):
            raise TaskLoadError(
                folder,
                file,
                f"{base}.volumes[{i}]",
                f"{vol!r}: only Terminal-Bench's log mounts are supported (host directories are not mounted)",
            )
    # Interpolation of the ignored log-volume host paths is not needed; unresolved only counts what we read.
    fields["unresolved_variables"] = unresolved
    return ComposeService.model_validate(fields), graph


def _interp(
    folder: Path, file: str, value: Any, field: str, variables: dict[str, str], unresolved: list[str]
) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise TaskLoadError(folder, file, field, "expected a string")
    try:
        return interpolate(str(value), variables, unresolved)
    except ValueError as e:
        raise TaskLoadError(folder, file, field, str(e)) from None


def load_solution_yaml(folder: Path) -> list[TerminalCommand]:
    data = _read_yaml(folder, "solution.yaml")
    if not isinstance(data, list) or not data:
        raise TaskLoadError(folder, "solution.yaml", None, "expected a non-empty list of commands")
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise TaskLoadError(folder, "solution.yaml", f"[{i}]", "expected a mapping with a 'command' key")
        try:
            out.append(TerminalCommand.model_validate(entry))
        except ValidationError as e:
            _raise_validation(folder, "solution.yaml", e, prefix=f"[{i}]")
    return out


def _check_contained(folder: Path, compose: ComposeService | None, escapes: list[Escape]) -> None:
    """No path the task uses leads outside the folder (see :mod:`ltenv.tasks.contain`); the image's build
    context may hold links that only the image resolves, outside the files read on the host."""
    host_read: dict[str, str | None] = dict.fromkeys(
        ("task.yaml", *COMPOSE_FILES, "run-tests.sh", "tests", "solution.sh", "solution.yaml")
    )
    context = None
    if compose is None or compose.build_context is not None:
        ctx = folder / compose.build_context if compose is not None and compose.build_context else folder
        dockerfile = ctx / (compose.dockerfile if compose is not None else "Dockerfile")
        context, read = build_context_rules(ctx, dockerfile, folder)
        host_read.update(read)
    refuse(folder, escapes, context=context, host_read=host_read)


def load_terminal_bench_task(folder: Path) -> Task:
    """Load a Terminal-Bench 1.x folder (``task.yaml``). The folder name is the task name.

    Raises:
        TaskLoadError: naming the folder, the file and the field that is wrong or unsupported.
    """
    name = folder.name
    escapes = find_escapes(folder)
    refuse(folder, [e for e in escapes if e.rel in ("task.yaml", *COMPOSE_FILES)])  # before reading them
    data = _read_yaml(folder, "task.yaml")
    if not isinstance(data, dict):
        raise TaskLoadError(folder, "task.yaml", None, "expected a mapping of fields")
    try:
        ty = TaskYaml.model_validate(data)
    except ValidationError as e:
        _raise_validation(folder, "task.yaml", e)
    if ty.parser_name not in SUPPORTED_PARSERS:
        raise TaskLoadError(
            folder,
            "task.yaml",
            "parser_name",
            f"parser {ty.parser_name!r} is not supported (only {', '.join(map(repr, SUPPORTED_PARSERS))})",
        )

    compose, services = load_compose_services(folder, name)
    if escapes:
        _check_contained(folder, compose, escapes)
    docker_image = compose.image if compose is not None else None
    if compose is None and not (folder / "Dockerfile").is_file():
        raise TaskLoadError(folder, "Dockerfile", None, "missing (and there is no docker-compose.yaml)")
    if not (folder / "run-tests.sh").is_file():
        raise TaskLoadError(folder, "run-tests.sh", None, "missing (the verifier entry point)")

    solution: Literal["solution.sh", "solution.yaml"] | None = None
    commands: list[TerminalCommand] = []
    if (folder / "solution.sh").is_file():
        solution = "solution.sh"
    elif (folder / "solution.yaml").is_file():
        solution = "solution.yaml"
        commands = load_solution_yaml(folder)

    extra = {k: v for k, v in (ty.model_extra or {}).items() if k not in TerminalBenchConfig.model_fields}
    estimates = {
        k: getattr(ty, k)
        for k in ("expert_time_estimate_min", "junior_time_estimate_min")
        if getattr(ty, k) is not None
    }
    config = TaskConfig(
        version="terminal-bench-1",
        metadata=Metadata(
            domain=domain_for_category(ty.category),
            difficulty=ty.difficulty,
            category=ty.category,
            tags=ty.tags,
            author_name=ty.author_name,
            author_email=ty.author_email,
            **estimates,
        ),
        agent=AgentConfig(timeout_sec=ty.max_agent_timeout_sec),
        verifier=VerifierConfig(timeout_sec=ty.max_test_timeout_sec),
        # Terminal-Bench containers are on Docker's default network: the agent has the internet.
        environment=EnvironmentConfig(docker_image=docker_image, allow_internet=True),
    )
    # Unknown task.yaml keys are kept as extra fields; they never shadow the ones we read.
    tb = TerminalBenchConfig.model_validate(
        {
            **extra,
            "parser_name": "pytest",
            "max_agent_timeout_sec": ty.max_agent_timeout_sec,
            "max_test_timeout_sec": ty.max_test_timeout_sec,
            "run_tests_in_same_shell": ty.run_tests_in_same_shell,
            "disable_asciinema": ty.disable_asciinema,
            "estimated_duration_sec": ty.estimated_duration_sec,
            "expert_time_estimate_min": ty.expert_time_estimate_min,
            "junior_time_estimate_min": ty.junior_time_estimate_min,
            "compose": compose,
            "solution": solution,
            "solution_commands": commands,
        }
    )
    return Task(
        name=name,
        path=folder,
        instruction=ty.instruction,
        config=config,
        format="terminal-bench",
        terminal_bench=tb,
        services=services,
    )


def verifier_spec(task: Task) -> VerifierSpec:
    """Terminal-Bench 1.x: ``tests/`` and ``run-tests.sh`` go to ``$TEST_DIR`` (``/tests``); the script runs in the
    container's working directory (or the agent shell's, with ``run_tests_in_same_shell``) and its pytest output
    is parsed. TB mounts ``/logs`` and ``/agent-logs`` into every container; tests may write there."""
    tb = task.terminal_bench
    assert tb is not None
    return VerifierSpec(
        script=task.path / "run-tests.sh",
        script_dest=f"{TEST_DIR}/run-tests.sh",
        tests_dir=task.tests_dir if task.tests_dir.is_dir() else None,
        env={**task.container_env, "TEST_DIR": TEST_DIR},
        workdir=task.container_workdir,
        outcome="pytest-output",
        timeout_sec=tb.max_test_timeout_sec,
        timeout_label="task.yaml max_test_timeout_sec",
        label="run-tests.sh",
        workdir_from_agent_shell=tb.run_tests_in_same_shell,
        fresh_dirs=("/agent-logs",),
    )


def oracle_spec(task: Task) -> OracleSpec:
    """``solution.yaml``: keystrokes typed into an interactive bash; ``solution.sh``: copied to ``/oracle`` and run
    with bash in the container's working directory and environment, as TB's oracle agent does."""
    tb = task.terminal_bench
    assert tb is not None
    common = dict(
        timeout_sec=tb.max_agent_timeout_sec, env=task.container_env, workdir=task.container_workdir
    )
    if tb.solution == "solution.yaml":
        return OracleSpec(
            kind="keystrokes", label="solution.yaml", keystrokes=tuple(tb.solution_commands), **common
        )
    return OracleSpec(
        kind="script",
        label="solution.sh",
        files=task.path / "solution.sh",
        dest="/oracle",
        entry="/oracle/solution.sh",
        **common,
    )
