"""The task model: one validated object per task folder, whatever format it came from."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class AgentConfig(_Section):
    """``[agent]``: the agent's wall-clock budget."""

    timeout_sec: float = Field(default=600.0, gt=0)


class VerifierConfig(_Section):
    """``[verifier]``: how long ``tests/test.sh`` may run and extra environment for it."""

    timeout_sec: float = Field(default=120.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)


class EnvironmentConfig(_Section):
    """``[environment]``: the image and the limits of the sandbox."""

    build_timeout_sec: float = Field(default=600.0, gt=0)
    docker_image: str | None = None
    """A prebuilt image to use instead of ``environment/Dockerfile``."""
    cpus: float = Field(default=1.0, gt=0)
    memory_mb: int = Field(default=2048, gt=0)
    storage_mb: int | None = Field(default=None, gt=0)
    allow_internet: bool = False
    pids_limit: int = Field(default=512, gt=0)

    @field_validator("memory_mb", mode="before")
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
    metadata: Metadata = Field(default_factory=Metadata)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)


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
    format: Literal["harbor"] = "harbor"

    @property
    def domain(self) -> str | None:
        return self.config.metadata.domain

    @property
    def difficulty(self) -> str:
        return self.config.metadata.difficulty

    @property
    def environment_dir(self) -> Path:
        return self.path / "environment"

    @property
    def dockerfile(self) -> Path | None:
        p = self.environment_dir / "Dockerfile"
        return p if p.is_file() else None

    @property
    def solution_dir(self) -> Path:
        return self.path / "solution"

    @property
    def tests_dir(self) -> Path:
        return self.path / "tests"

    @property
    def has_solution(self) -> bool:
        return (self.solution_dir / "solve.sh").is_file()

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
