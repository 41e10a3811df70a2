"""Exceptions with messages a user can act on."""

from __future__ import annotations

from pathlib import Path


class LtenvError(Exception):
    """Base class of every error raised by ltenv."""


class TaskLoadError(LtenvError):
    """A task folder is malformed.

    The message names the folder, the file and the field, e.g.
    ``task 'csv-join' (envs_registry/data_science/csv-join): task.toml: [agent] timeout_sec: must be > 0``.
    """

    def __init__(self, folder: Path | str, file: str, field: str | None, message: str):
        self.folder = Path(folder)
        self.file = file
        self.field = field
        self.reason = message
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(f"task '{self.folder.name}' ({self.folder}): {where}{message}")


class SuiteLoadError(LtenvError):
    """Several task folders of a suite are malformed; ``errors`` holds every one of them."""

    def __init__(self, errors: list[TaskLoadError]):
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{len(errors)} malformed task folder(s):\n{lines}")


class SandboxError(LtenvError):
    """The sandbox could not be created, crashed, or was used after it was closed."""


class UnsupportedTaskError(SandboxError):
    """The task needs what this sandbox backend does not provide (a multi-service task on ``bwrap``)."""


class ImageError(LtenvError):
    """A task image could not be built, pulled, bootstrapped or exported."""


class ShellError(LtenvError):
    """The terminal session is unusable (the shell died and could not be recovered)."""


class DomainSpecError(LtenvError):
    """One or more domain specification files (``envs_registry/domains/*.yaml``) are malformed.

    ``problems`` holds every ``(file, field, message)`` found (``field`` is ``None`` when the problem is the
    whole file, or a position such as ``line 3, column 5`` for YAML syntax errors), e.g.
    ``envs_registry/domains/games.yaml: skills: skills[2] 'bfs' duplicates skills[0]``.
    """

    def __init__(self, problems: list[tuple[str, str | None, str]]):
        self.problems = list(problems)
        lines = [
            f"{file}: {field}: {msg}" if field else f"{file}: {msg}" for file, field, msg in self.problems
        ]
        if len(lines) == 1:
            text = f"malformed domain spec: {lines[0]}"
        else:
            files = len({file for file, _, _ in self.problems})
            body = "\n".join(f"  - {line}" for line in lines)
            text = f"{len(lines)} problem(s) in {files} domain spec file(s):\n{body}"
        super().__init__(text)
