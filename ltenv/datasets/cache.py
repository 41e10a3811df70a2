"""The local dataset cache: ``<cache root>/datasets/<name>/<version>/`` holding ``tasks/`` and
``manifest.json`` (source, resolved revision, file count, sha256, pulled-at time).

A pull downloads into a temporary sibling folder, checks and hashes it, writes the manifest, then renames it
into place, so a reader sees either the old complete copy or the new one, never half a download.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ltenv.datasets.registry import DatasetEntry, DatasetError

MANIFEST = "manifest.json"
TASKS = "tasks"


def datasets_root() -> Path:
    """``$LTENV_CACHE_DIR/datasets`` (default ``~/.cache/ltenv/datasets``)."""
    from ltenv.sandbox.images import cache_dir

    return cache_dir() / "datasets"


def offline_default() -> bool:
    """``LTENV_OFFLINE=1``: use only the cache, never download."""
    return os.environ.get("LTENV_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def entry_dir(entry: DatasetEntry, root: Path | None = None) -> Path:
    return (root or datasets_root()) / entry.name / entry.version


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` of a cached dataset records."""

    dataset: str
    source: dict
    revision: str
    files: int
    sha256: str
    pulled_at: str

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: unreadable manifest ({e}); pull the dataset again") from None


def tree_digest(root: Path) -> tuple[int, str]:
    """(file count, sha256) over the sorted relative paths and contents of every file below ``root``.

    Each file adds ``path NUL kind NUL sha256(content)``; a symlink adds its target instead of its content
    (never followed). Permission bits are not part of the digest (Hugging Face does not keep them).
    """
    entries: list[tuple[str, str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                entries.append((rel, "link", hashlib.sha256(os.readlink(p).encode()).hexdigest()))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(chunk)
                entries.append((rel, "file", h.hexdigest()))
    total = hashlib.sha256()
    for rel, kind, digest in sorted(entries):
        total.update(f"{rel}\0{kind}\0{digest}\n".encode())
    return len(entries), total.hexdigest()


def _check_links(root: Path) -> None:
    """Refuse symlinks that point outside the dataset: a task folder is copied into sandboxes and build
    contexts, and a link to a host path would carry host files with it."""
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = Path(dirpath, name)
            if p.is_symlink():
                target = Path(os.readlink(p))
                resolved = (p.parent / target).resolve() if not target.is_absolute() else target
                if target.is_absolute() or not resolved.is_relative_to(real_root):
                    rel = p.relative_to(root)
                    raise DatasetError(f"{rel}: symlink to {target} points outside the dataset; refused")


@contextlib.contextmanager
def _locked(folder: Path):
    """One pull of a dataset version at a time on this machine (concurrent jobs wait, then hit the cache)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of pulls that were killed (called under the lock, so none is in progress)."""
    for stale in folder.parent.iterdir():
        if stale.name.startswith((f".{folder.name}.pull-", f".{folder.name}.old-")) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


@dataclass(frozen=True)
class CacheStatus:
    """A cached copy and whether it matches its manifest."""

    path: Path
    manifest: Manifest | None
    ok: bool
    problem: str | None = None

    @property
    def tasks(self) -> Path:
        return self.path / TASKS


def check_cache(entry: DatasetEntry, *, root: Path | None = None, verify: bool = True) -> CacheStatus | None:
    """The cached copy of ``entry``, or ``None`` if there is none. With ``verify`` its files are re-hashed
    and compared with the manifest (and the manifest with the entry's pin)."""
    folder = entry_dir(entry, root)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        man = Manifest.read(folder)
    except DatasetError as e:
        return CacheStatus(folder, None, False, str(e))
    pinned = entry.source.pinned
    if pinned and man.revision != pinned:
        return CacheStatus(folder, man, False, f"cached revision {man.revision} is not the pinned {pinned}")
    if not verify:
        return CacheStatus(folder, man, True)
    files, digest = tree_digest(folder / TASKS)
    if (files, digest) != (man.files, man.sha256):
        return CacheStatus(
            folder,
            man,
            False,
            f"checksum mismatch: {files} file(s) sha256 {digest[:12]}, manifest says {man.files} file(s) "
            f"sha256 {man.sha256[:12]} (the cache was modified or corrupted)",
        )
    return CacheStatus(folder, man, True)


@dataclass(frozen=True)
class PullResult:
    path: Path
    """The cached folder holding ``tasks/`` and ``manifest.json``."""
    manifest: Manifest
    cached: bool
    """True if the cache already held a verified copy and nothing was downloaded."""

    @property
    def tasks(self) -> Path:
        return self.path / TASKS


def pull(
    entry: DatasetEntry,
    *,
    offline: bool | None = None,
    force: bool = False,
    root: Path | None = None,
) -> PullResult:
    """Make sure ``entry`` is in the cache and verified; download it unless it already is.

    Offline (``offline=True`` or ``LTENV_OFFLINE=1``) nothing is downloaded: a missing or corrupted cache is
    a :class:`DatasetError` saying how to fill it. ``force`` downloads again even over a good copy.
    """
    from ltenv.datasets.fetch import fetch

    offline = offline_default() if offline is None else offline
    folder = entry_dir(entry, root)
    with _locked(folder):
        status = check_cache(entry, root=root)
        if status is not None and status.ok and not force:
            assert status.manifest is not None
            return PullResult(folder, status.manifest, cached=True)
        if offline:
            why = (
                f"its cached copy at {folder} is unusable: {status.problem}" if status else "it is not cached"
            )
            raise DatasetError(
                f"dataset {entry.ref}: offline (--offline / LTENV_OFFLINE=1) and {why}; run "
                f"`ltenv datasets pull {entry.ref}` where {entry.source.location} is reachable, or copy "
                f"{folder} from a machine that has it"
            )
        _remove_leftovers(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.version}.pull-", dir=folder.parent))
        try:
            download = tmp / "download"
            revision = fetch(entry.source, download)
            src = download / entry.source.subdir if entry.source.subdir else download
            src.rename(tmp / TASKS)
            shutil.rmtree(download, ignore_errors=True)
            _check_links(tmp / TASKS)
            files, digest = tree_digest(tmp / TASKS)
            if files == 0:
                raise DatasetError(
                    f"dataset {entry.ref}: {entry.source.location} at {revision} holds no files"
                )
            man = Manifest(
                dataset=entry.ref,
                source=entry.source.model_dump(),
                revision=revision,
                files=files,
                sha256=digest,
                pulled_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            (tmp / MANIFEST).write_text(json.dumps(asdict(man), indent=2) + "\n", encoding="utf-8")
            old = None
            if folder.exists():
                old = folder.with_name(f".{entry.version}.old-{os.getpid()}-{time.monotonic_ns()}")
                folder.rename(old)
            tmp.rename(folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return PullResult(folder, man, cached=False)


def resolve_tasks(spec: str, *, registry_file: Path | str | None = None, offline: bool | None = None) -> Path:
    """``NAME[@VERSION]`` -> the cached ``tasks/`` folder, pulling it first unless offline.

    Example:
        >>> suite = load_suite(resolve_tasks("terminal-bench-core@0.1.1"))
    """
    from ltenv.datasets.registry import Registry

    entry = Registry.load(registry_file).get(spec)
    return pull(entry, offline=offline).tasks
