"""Dataset entries and registry files: which published task suites exist, where they come from, and at
which revision.

A registry file is TOML, one ``[[dataset]]`` table per (name, version)::

    [[dataset]]
    name = "terminal-bench-core"
    version = "0.1.1"
    format = "terminal-bench"            # or "harbor"
    tasks = 80                           # task count, where known
    description = "..."
    requires = ["an image map ..."]      # what a user must provide to run it

    [dataset.source]
    type = "git"                         # or "hf" (repo, revision, subdir)
    url = "https://github.com/laude-institute/terminal-bench.git"
    commit = "91e10457b5410f16c44364da1a34cb6de8c488a5"
    ref = "dataset/terminal-bench-core/v0.1.x"
    subdir = "tasks"

The built-in registry (``registry.toml`` beside this module) is read first; a user file
(``$LTENV_DATASETS`` or ``--registry FILE``) adds entries or replaces those with the same name and version,
so a cluster can point every dataset at its own mirror.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltenv.errors import LtenvError

BUILTIN_REGISTRY = Path(__file__).with_name("registry.toml")
_NAME = r"[a-z0-9][a-z0-9._-]*"
_SHA1 = re.compile(r"[0-9a-f]{40}")


class DatasetError(LtenvError):
    """A dataset is unknown, its registry file is malformed, or it could not be pulled or verified."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceBase(_Strict):
    subdir: str = ""
    """Folder inside the repository that holds the task folders ("" for the root)."""

    @field_validator("subdir")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or ".." in Path(v).parts:
            raise ValueError("must be a relative path inside the source, without '..'")
        return v.strip("/")


class GitSource(_SourceBase):
    """Tasks in a git repository, fetched with the ``git`` CLI."""

    type: Literal["git"]
    url: str = Field(min_length=1)
    """Clone URL (https://, ssh, file:// or a local path: anything ``git fetch`` accepts)."""
    commit: str | None = None
    """Full 40-hex commit id the dataset is pinned to; ``None`` when no pin is known (see ``ref``)."""
    ref: str | None = None
    """Branch or tag holding ``commit``; fetched when the server refuses a fetch by commit id, or, without
    ``commit``, resolved at pull time (the commit it gave is recorded in the manifest)."""

    @field_validator("commit")
    @classmethod
    def _full_sha(cls, v: str | None) -> str | None:
        if v is not None and not _SHA1.fullmatch(v):
            raise ValueError("must be a full 40-character lowercase hex commit id")
        return v

    @property
    def location(self) -> str:
        return self.url + (f" ({self.subdir}/)" if self.subdir else "")

    @property
    def pinned(self) -> str | None:
        return self.commit


class HFSource(_SourceBase):
    """Tasks in a Hugging Face dataset repository, downloaded with ``huggingface_hub.snapshot_download``."""

    type: Literal["hf"]
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    """Dataset repo id, ``owner/name``."""
    revision: str | None = None
    """Commit id the dataset is pinned to, or a branch/tag (resolved at pull time and recorded)."""
    endpoint: str | None = None
    """Hub URL for this entry (a mirror); default ``$HF_ENDPOINT``, else https://huggingface.co."""

    @property
    def location(self) -> str:
        return f"hf://datasets/{self.repo}" + (f"/{self.subdir}" if self.subdir else "")

    @property
    def pinned(self) -> str | None:
        return self.revision if self.revision and _SHA1.fullmatch(self.revision) else None


Source = Annotated[GitSource | HFSource, Field(discriminator="type")]


class DatasetEntry(_Strict):
    """One version of a published task suite."""

    name: str = Field(pattern=f"^{_NAME}$")
    version: str = Field(pattern=f"^{_NAME}$")
    format: Literal["harbor", "terminal-bench"]
    """``harbor``: task.toml folders (Harbor / Terminal-Bench 2.0); ``terminal-bench``: TB 1.x task.yaml."""
    source: Source
    description: str = ""
    tasks: int | None = Field(default=None, ge=0)
    """Number of tasks, where known."""
    homepage: str | None = None
    """Paper, dataset card or repository a user reads to learn what the suite is."""
    requires: list[str] = []
    """What a user must provide to run it (image map, --force-build, network access...)."""
    pin_note: str | None = None
    """How the pin was found, or why there is none."""
    origin: str = ""
    """The registry file this entry came from (set when loading)."""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class _RegistryFile(_Strict):
    dataset: list[dict] = []


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"name@version"`` -> ``("name", "version")``; ``"name"`` -> ``("name", None)``."""
    name, sep, version = spec.strip().partition("@")
    if not re.fullmatch(_NAME, name) or (sep and not re.fullmatch(_NAME, version)):
        raise DatasetError(
            f"dataset {spec!r}: expected NAME or NAME@VERSION (e.g. terminal-bench-core@0.1.1)"
        )
    return name, version or None


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("git", "hf") and out.endswith("source"):
            continue  # the discriminator's branch name is noise in a field path
        else:
            out += f".{part}" if out else str(part)
    return out


def read_registry_file(path: Path) -> list[DatasetEntry]:
    """Read and validate one registry file; errors name the file and the field (``dataset[1].source.commit``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetError(f"registry {path}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise DatasetError(f"registry {path}: not valid TOML: {e}") from None
    try:
        top = _RegistryFile.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise DatasetError(f"registry {path}: {_loc(err['loc'])}: {err['msg']}") from None
    entries: list[DatasetEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(top.dataset):
        try:
            entry = DatasetEntry.model_validate({**item, "origin": str(path)})
        except ValidationError as e:
            err = e.errors()[0]
            field = _loc(("dataset", i, *err["loc"]))
            raise DatasetError(f"registry {path}: {field}: {err['msg']}") from None
        if entry.ref in seen:
            raise DatasetError(f"registry {path}: dataset[{i}]: {entry.ref} is listed twice")
        seen.add(entry.ref)
        entries.append(entry)
    return entries


def _version_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.-]", v))


class Registry:
    """The built-in entries plus those of a user registry file (which win on the same name and version).

    Example:
        >>> reg = Registry.load()
        >>> reg.get("terminal-bench-core@0.1.1").source.commit[:8]
        '91e10457'
    """

    def __init__(self, entries: list[DatasetEntry], files: list[Path]):
        self.files = files
        self._entries: dict[str, DatasetEntry] = {}
        for e in entries:
            self._entries[e.ref] = e

    @classmethod
    def load(cls, user_file: Path | str | None = None) -> Registry:
        """Built-in registry, then ``user_file`` (default ``$LTENV_DATASETS``) if given."""
        files = [BUILTIN_REGISTRY]
        if user_file is None and os.environ.get("LTENV_DATASETS"):
            user_file = os.environ["LTENV_DATASETS"]
        if user_file is not None:
            user_file = Path(user_file)
            if not user_file.is_file():
                raise DatasetError(f"registry {user_file}: no such file")
            files.append(user_file)
        entries: list[DatasetEntry] = []
        for f in files:
            entries += read_registry_file(f)
        return cls(entries, files)

    def entries(self) -> list[DatasetEntry]:
        """Every entry, by name then version."""
        return sorted(self._entries.values(), key=lambda e: (e.name, _version_key(e.version)))

    def versions(self, name: str) -> list[str]:
        return [e.version for e in self.entries() if e.name == name]

    def get(self, spec: str) -> DatasetEntry:
        """The entry for ``NAME@VERSION``, or for ``NAME`` its highest version."""
        name, version = parse_spec(spec)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(sorted({e.name for e in self._entries.values()}))
            raise DatasetError(f"unknown dataset {name!r} (known: {known}); see `ltenv datasets list`")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise DatasetError(
                f"dataset {name!r} has no version {version!r} (versions: {', '.join(versions)})"
            )
        return self._entries[f"{name}@{version}"]
