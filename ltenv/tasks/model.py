"""The task model: one validated object per task folder, whatever format it came from."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ltenv.tasks.compose import ServiceGraph

DOMAINS: tuple[str, ...] = (
    "ai_ml",
    "build_tools",
    "coding",
    "data_science",
    "games",
    "networking",
    "scientific_computing",
    "security",
    "system_admin",
    "version_control",
)

TASK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
"""Names of tasks we ship or synthesize."""
FOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Folder names a loaded task may have (Harbor and Terminal-Bench suites use mixed case,
``R_package_dependency_missing_medium``): what a Gymnasium id accepts."""

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MEMORY_UNIT_MB = {"": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


class _Section(BaseModel):
    # Unknown keys are kept (Harbor adds fields over time) but never silently misread.
    model_config = ConfigDict(extra="allow", frozen=True)


class Metadata(_Section):
    """``[metadata]``: who wrote the task and how to file it."""

    domain: str | None = None
    """One of :data:`DOMAINS` for tasks we ship or synthesize; free text for foreign suites."""
    difficulty: Literal["easy", "medium", "hard", "unknown"] = "unknown"
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    author_name: str | None = None
    author_email: str | None = None


class TaskSection(_Section):
    """``[task]``: Harbor's task identity. ``name`` (e.g. ``LiteCoder/<task>``) is the display name; the
    folder name stays the task's id (Gymnasium ids, image tags, file names)."""

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None


class AgentConfig(_Section):
    """``[agent]``: the agent's wall-clock budget."""

    timeout_sec: float = Field(default=600.0, gt=0)


class VerifierConfig(_Section):
    """``[verifier]``: how long ``tests/test.sh`` may run and extra environment for it."""

    timeout_sec: float = Field(default=120.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class Timeouts(BaseModel):
    """How a run scales or replaces the task's own timeouts, as Terminal-Bench and Harbor let a run do.

    The agent's budget is the whole episode's wall-clock time after the sandbox is up (model calls and
    commands alike); the verifier's bounds ``tests/test.sh`` (``run-tests.sh``). A global value replaces the
    task's (Terminal-Bench ``--global-agent-timeout-sec`` / ``--global-test-timeout-sec``); otherwise the
    task's value is scaled by its multiplier times ``multiplier`` (Terminal-Bench
    ``--global-timeout-multiplier``, Harbor ``--timeout-multiplier``, ``--agent-timeout-multiplier``,
    ``--verifier-timeout-multiplier``).

    Example:
        >>> Timeouts(multiplier=2.0).agent_timeout(task)          # doctest: +SKIP
        1200.0
    """

    model_config = ConfigDict(extra="forbid")

    multiplier: float = Field(default=1.0, gt=0)
    """Scales both the agent's and the verifier's timeouts."""
    agent_multiplier: float = Field(default=1.0, gt=0)
    """Scales the agent's timeout (times ``multiplier``)."""
    verifier_multiplier: float = Field(default=1.0, gt=0)
    """Scales the verifier's timeout (times ``multiplier``)."""
    agent_sec: float | None = Field(default=None, gt=0)
    """Replaces every task's agent timeout (no multiplier applies)."""
    verifier_sec: float | None = Field(default=None, gt=0)
    """Replaces every task's verifier timeout (no multiplier applies)."""

    def agent_timeout(self, task: Task) -> float:
        """The agent's wall-clock budget for ``task`` in seconds."""
        if self.agent_sec is not None:
            return self.agent_sec
        return task.config.agent.timeout_sec * self.multiplier * self.agent_multiplier

    def verifier_timeout(self, task: Task) -> float:
        """The verifier's budget for ``task`` in seconds."""
        if self.verifier_sec is not None:
            return self.verifier_sec
        return task.verifier_spec().timeout_sec * self.multiplier * self.verifier_multiplier


class SolutionConfig(_Section):
    """``[solution]``: extra environment for the reference solution (``solution/solve.sh``)."""

    env: dict[str, str] = Field(default_factory=dict)


class EnvironmentConfig(_Section):
    """``[environment]``: the image and the limits of the sandbox.

    Harbor's deprecated ``memory = "2G"`` / ``storage = "10G"`` spellings are read into ``memory_mb`` /
    ``storage_mb`` (never ignored); other Harbor keys (``gpus``, ``env``, ``mcp_servers``, ``healthcheck``,
    ``network_mode``...) are kept as extra fields.
    """

    build_timeout_sec: float = Field(default=600.0, gt=0)
    docker_image: str | None = None
    """A prebuilt image to use instead of ``environment/Dockerfile``."""
    cpus: float = Field(default=1.0, gt=0)
    memory_mb: int = Field(default=2048, gt=0)
    storage_mb: int | None = Field(default=None, gt=0)
    allow_internet: bool = False
    pids_limit: int = Field(default=512, gt=0)
    # ltenv extensions (procedurally generated tasks run on a shared image, set up at sandbox start):
    workdir: str | None = None
    """Working directory of the agent's shell, instead of the image's ``WORKDIR``."""
    setup_files: str | None = None
    """Folder (relative to the task folder) whose tree is copied to ``/`` when the sandbox starts: root-owned,
    modes kept; ``setup_files/etc/x.conf`` becomes ``/etc/x.conf``."""
    setup_script: str | None = None
    """Bash script (relative to the task folder) run once as root, in ``/``, after ``setup_files`` are copied
    and before anything else runs in the sandbox (agent shell, oracle, verifier)."""
    setup_timeout_sec: float = Field(default=120.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _deprecated_sizes(cls, data: Any) -> Any:
        # Harbor's deprecated `memory` / `storage` keys: read them rather than keep them as unread extras.
        if isinstance(data, dict):
            data = dict(data)
            for old, new in (("memory", "memory_mb"), ("storage", "storage_mb")):
                if old in data:
                    value = data.pop(old)
                    if new in data and data[new] != value:
                        raise ValueError(f"both {old} = {value!r} and {new} = {data[new]!r} are set")
                    data[new] = value
        return data

    @field_validator("memory_mb", "storage_mb", mode="before")
    @classmethod
    def _memory_string(cls, v: Any) -> Any:
        # Older Harbor tasks write `memory = "2G"`; accept the same spelling under memory_mb.
        if isinstance(v, str):
            m = _MEMORY_RE.match(v)
            if not m:
                raise ValueError(f"expected megabytes or a size like '2G', got {v!r}")
            return max(1, int(float(m.group(1)) * _MEMORY_UNIT_MB[m.group(2).lower()]))
        return v


class TaskConfig(_Section):
    """The whole ``task.toml``."""

    version: str = "1.0"
    task: TaskSection = Field(default_factory=TaskSection)
    metadata: Metadata = Field(default_factory=Metadata)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    solution: SolutionConfig = Field(default_factory=SolutionConfig)


class TerminalCommand(_Section):
    """One entry of a Terminal-Bench ``solution.yaml`` (or of a Harbor ``solution/keys.json``, read into
    ``append_enter=False`` entries with ``min_timeout_sec`` = its ``duration``): keystrokes typed into the
    agent's terminal.

    ``command`` follows tmux ``send-keys`` semantics (a key name such as ``C-c`` or ``Escape`` is that key,
    anything else is typed literally). ``append_enter`` adds Enter. ``block`` waits until the command has
    finished (only when it is executed, i.e. ends with Enter), up to ``max_timeout_sec``; otherwise the
    next entry is sent after ``min_timeout_sec``.
    """

    command: str
    min_timeout_sec: float = Field(default=0.0, ge=0)
    max_timeout_sec: float = Field(default=180.0, gt=0)
    block: bool = False
    append_enter: bool = True


class ComposeService(_Section):
    """The single service of a Terminal-Bench ``docker-compose.yaml``, variables already interpolated."""

    name: str
    build_context: str | None = None
    """Build context relative to the task folder (``None``: no ``build`` section, ``image`` is prebuilt)."""
    dockerfile: str = "Dockerfile"
    """Dockerfile path relative to the build context."""
    build_args: dict[str, str] = Field(default_factory=dict)
    image: str | None = None
    """A prebuilt image, only when the service has no ``build`` section."""
    environment: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = None
    unresolved_variables: list[str] = Field(default_factory=list)
    """``${VAR}`` references no Terminal-Bench variable resolves (interpolated as empty, like compose)."""


class TerminalBenchConfig(_Section):
    """Terminal-Bench 1.x settings of a ``task.yaml`` folder that have no place in :class:`TaskConfig`.

    The common ones are mapped: difficulty, category, tags, authors go to ``[metadata]``,
    ``max_agent_timeout_sec`` to ``[agent] timeout_sec``, ``max_test_timeout_sec`` to
    ``[verifier] timeout_sec``. Unknown task.yaml keys are kept here as extra fields.
    """

    parser_name: Literal["pytest"] = "pytest"
    max_agent_timeout_sec: float = Field(default=360.0, gt=0)
    max_test_timeout_sec: float = Field(default=60.0, gt=0)
    run_tests_in_same_shell: bool = False
    """TB runs the tests in the agent's shell session; we run them in the same sandbox, in that shell's
    working directory (see :func:`ltenv.verify.verify`)."""
    disable_asciinema: bool = False
    estimated_duration_sec: float | None = None
    expert_time_estimate_min: float | None = None
    junior_time_estimate_min: float | None = None
    compose: ComposeService | None = None
    solution: Literal["solution.sh", "solution.yaml"] | None = None
    solution_commands: list[TerminalCommand] = Field(default_factory=list)
    """The parsed ``solution.yaml`` (empty for ``solution.sh``)."""


@dataclass(frozen=True)
class VerifierSpec:
    """How to verify a task, in no format's terms: each loader describes its verifier with one, and
    :func:`ltenv.verify.verify` runs every format through the same path."""

    script: Path
    """The entry script on the host (``tests/test.sh``, ``run-tests.sh``)."""
    script_dest: str
    """Where the entry script is placed for the verifier (under ``/tests``)."""
    tests_dir: Path | None
    """A host folder copied to ``/tests`` first (the task's ``tests/``), if any."""
    env: dict[str, str]
    """Environment for the script, over the sandbox's own."""
    workdir: str | None
    """Working directory; ``None``: the sandbox's."""
    outcome: Literal["reward-file", "pytest-output"]
    """``reward-file``: the script writes ``/logs/verifier/reward.txt`` or ``reward.json`` (Harbor);
    ``pytest-output``: its output is parsed as Terminal-Bench's pytest parser does."""
    timeout_sec: float
    timeout_label: str
    """Where the timeout comes from, for messages (``[verifier] timeout_sec``)."""
    label: str
    """How the entry script is named in messages and results (``tests/test.sh``)."""
    workdir_from_agent_shell: bool = False
    """Terminal-Bench ``run_tests_in_same_shell``: run in the agent shell's working directory."""
    fresh_dirs: tuple[str, ...] = ()
    """Directories that start empty for the verifier besides ``/tests`` and ``/logs/verifier``."""


@dataclass(frozen=True)
class OracleSpec:
    """The reference solution, in no format's terms: a script to run, or keystrokes to type."""

    kind: Literal["script", "keystrokes"]
    label: str
    """How the oracle file is named in messages (``solution/solve.sh``)."""
    timeout_sec: float
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    files: Path | None = None
    """Host folder or file copied to :attr:`dest` before the script runs (and removed after)."""
    dest: str = ""
    """Where :attr:`files` go in the sandbox."""
    entry: str = ""
    """The script to run with bash, in the sandbox."""
    keystrokes: tuple[TerminalCommand, ...] = ()


class Task(BaseModel):
    """A loaded, validated task folder.

    Example:
        >>> task = load_task("envs_registry/coding/fix-off-by-one")  # doctest: +SKIP
        >>> task.name, task.config.metadata.domain                   # doctest: +SKIP
        ('fix-off-by-one', 'coding')
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    path: Path
    instruction: str
    config: TaskConfig
    format: Literal["harbor", "terminal-bench"] = "harbor"
    """``harbor``: Harbor / Terminal-Bench 2.0 (task.toml); ``terminal-bench``: Terminal-Bench 1.x (task.yaml)."""
    terminal_bench: TerminalBenchConfig | None = None
    """Terminal-Bench 1.x settings (``format == "terminal-bench"`` only)."""
    services: ServiceGraph | None = None
    """The services the compose file runs beside the agent's container (a database, a queue...), or ``None``
    for a single-container task. Multi-service tasks run on the docker backend only."""

    @property
    def display_name(self) -> str:
        """How the task is shown (``ltenv list``, trajectories): ``[task] name`` of ``task.toml`` when set
        (e.g. ``LiteCoder/fix-the-build``), else :attr:`name`, the folder name, which stays the id."""
        return self.config.task.name or self.name

    @property
    def domain(self) -> str | None:
        return self.config.metadata.domain

    @property
    def difficulty(self) -> str:
        return self.config.metadata.difficulty

    @property
    def environment_dir(self) -> Path:
        """The image's build context: ``environment/`` (Harbor) or the compose build context (TB 1.x)."""
        compose = self.terminal_bench.compose if self.terminal_bench else None
        if self.format == "terminal-bench":
            return (self.path / compose.build_context) if compose and compose.build_context else self.path
        return self.path / "environment"

    @property
    def dockerfile(self) -> Path | None:
        compose = self.terminal_bench.compose if self.terminal_bench else None
        name = compose.dockerfile if compose else "Dockerfile"
        p = self.environment_dir / name
        if not p.is_file():
            return None
        self._check_inside([p])  # read on the host (FROM lines, docker build)
        return p

    @property
    def solution_dir(self) -> Path:
        """Harbor: ``solution/`` (copied to /solution for the oracle). TB 1.x: the task folder."""
        return self.path if self.format == "terminal-bench" else self.path / "solution"

    @property
    def solution_path(self) -> Path | None:
        """The oracle: ``solution/keys.json`` (keystrokes, preferred) or ``solution/solve.sh``, or TB's
        ``solution.sh`` / ``solution.yaml``; ``None`` if absent."""
        if self.terminal_bench is not None:
            return self.path / self.terminal_bench.solution if self.terminal_bench.solution else None
        keys = self.solution_dir / "keys.json"
        if keys.is_file():
            return keys
        p = self.solution_dir / "solve.sh"
        return p if p.is_file() else None

    @property
    def solution_label(self) -> str:
        """How the oracle file is named in messages."""
        if self.terminal_bench is not None:
            return self.terminal_bench.solution or "solution.sh"
        return "solution/keys.json" if (self.solution_dir / "keys.json").is_file() else "solution/solve.sh"

    @property
    def keystroke_oracle(self) -> bool:
        """Whether the oracle is keystrokes typed on a terminal (``solution/keys.json``, TB ``solution.yaml``)
        rather than a script."""
        p = self.solution_path
        return p is not None and p.name in ("keys.json", "solution.yaml")

    @property
    def tests_dir(self) -> Path:
        return self.path / "tests"

    @property
    def test_script(self) -> Path:
        """The verifier entry: ``tests/test.sh`` (Harbor) or ``run-tests.sh`` (TB 1.x)."""
        return self.path / "run-tests.sh" if self.format == "terminal-bench" else self.tests_dir / "test.sh"

    @property
    def has_solution(self) -> bool:
        return self.solution_path is not None and self.solution_path.is_file()

    @property
    def container_env(self) -> dict[str, str]:
        """Environment the task's container gets besides the image's (TB: the compose service's)."""
        if self.terminal_bench is not None and self.terminal_bench.compose is not None:
            return dict(self.terminal_bench.compose.environment)
        if self.services is not None:  # Harbor: the compose file's `main` service
            return dict(self.services.agent_environment)
        return {}

    @property
    def container_workdir(self) -> str | None:
        """Working directory set outside the image (TB: compose ``working_dir``; ``[environment] workdir``),
        else ``None``."""
        if self.terminal_bench is not None and self.terminal_bench.compose is not None:
            return self.terminal_bench.compose.working_dir
        if self.services is not None and self.services.agent_working_dir:
            return self.services.agent_working_dir
        return self.config.environment.workdir

    @property
    def setup_files_dir(self) -> Path | None:
        """``[environment] setup_files`` as a path, or ``None``."""
        rel = self.config.environment.setup_files
        if not rel:
            return None
        self._check_inside([self.path / rel], "[environment] setup_files")  # copied into the sandbox
        return self.path / rel

    @property
    def setup_script_path(self) -> Path | None:
        """``[environment] setup_script`` as a path, or ``None``."""
        rel = self.config.environment.setup_script
        if not rel:
            return None
        self._check_inside([self.path / rel], "[environment] setup_script")
        return self.path / rel

    @property
    def oracle_commands(self) -> list[str] | None:
        """``solution/commands.json``: the reference solution as one shell command per agent turn, if any."""
        if self.format != "harbor":
            return None
        p = self.solution_dir / "commands.json"
        if not p.is_file():
            return None
        self._check_inside([p])
        import json

        data = json.loads(p.read_text(encoding="utf-8"))
        return [str(c) for c in data]

    def verifier_spec(self) -> VerifierSpec:
        """How this task is verified (see :class:`VerifierSpec`); format knowledge stays in its loader."""
        if self.format == "terminal-bench":
            from ltenv.tasks.terminal_bench import verifier_spec
        else:
            from ltenv.tasks.loader import verifier_spec
        spec = verifier_spec(self)
        self._check_inside([spec.script, spec.tests_dir])  # about to be read and copied into the sandbox
        return spec

    def oracle_spec(self) -> OracleSpec | None:
        """The reference solution (see :class:`OracleSpec`), or ``None`` if the task has none."""
        if not self.has_solution:
            return None
        if self.format == "terminal-bench":
            from ltenv.tasks.terminal_bench import oracle_spec
        else:
            from ltenv.tasks.loader import oracle_spec
        spec = oracle_spec(self)
        self._check_inside([spec.files])  # about to be copied into the sandbox
        return spec

    def _check_inside(self, paths: list[Path | None], field: str | None = None) -> None:
        """Paths read or copied at run time still stay inside the folder: it may have changed since it loaded
        (see :mod:`ltenv.tasks.contain`). Raises :class:`~ltenv.errors.TaskLoadError` naming the file."""
        from ltenv.tasks.contain import check_paths

        check_paths(self.path, paths, field=field)

    def checksum(self) -> str:
        """sha256 over every file of the task (paths and contents), stable across machines."""
        return tree_digest(self.path)

    def environment_digest(self) -> str:
        """sha256 over ``environment/`` only: what the image is built from."""
        return tree_digest(self.environment_dir)


def tree_digest(root: Path) -> str:
    """Digest of a directory tree: relative paths, file modes (exec bit) and contents, in sorted order."""
    h = hashlib.sha256()
    root = Path(root)
    if not root.exists():
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            rel = p.relative_to(root).as_posix()
            if "__pycache__" in rel:
                continue
            h.update(rel.encode() + b"\0")
            st = p.lstat()
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode() + b"\0")
                continue
            h.update(b"X" if st.st_mode & 0o111 else b"F")
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()
