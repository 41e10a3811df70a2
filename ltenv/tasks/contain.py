"""Task folders hold their own files only: no path in a task folder may lead to a host file.

A symlink that resolves outside the folder (absolute or ``../..``, at any depth) would make the loader or a copy
read a file of the host: ``instruction.md -> /etc/shadow`` becomes the agent's first observation, a link in
``tests/`` or in the setup files is copied into the sandbox. Such links are refused when the task loads, and the
paths copied at run time are checked again just before (a folder may change after it was loaded). Fifos, sockets
and device nodes are refused too: reading one blocks or reads a device of the host.

Links that stay inside the folder keep working. One kind of outward link is allowed: inside an image build
context (Harbor ``environment/``, a Terminal-Bench compose build context), in a path nothing reads on the host.
``docker build`` sends such a link as a link and never follows it, so in the image it points into the image
(a task may ship ``attachments/host.txt -> /etc/hostname`` on purpose). The context folder itself, its Dockerfile
and ``.dockerignore`` are read on the host and follow the strict rule.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ltenv.errors import TaskLoadError

_SPECIAL = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


@dataclass(frozen=True)
class Escape:
    """A path of a task folder that leads outside it."""

    rel: str
    """The path, relative to the task folder (``tests/data``)."""
    target: str | None
    """The link's target as written (``/etc/shadow``, ``../../etc``); ``None`` for a special file."""
    kind: str = "symlink"
    """``symlink``, or the kind of special file (``fifo``, ``socket``, ``character device``...)."""

    def describe(self) -> str:
        if self.target is None:
            return f"a {self.kind}, not a regular file, folder or symlink: task folders hold files only"
        return (
            f"symlink to {self.target!r}, which leads outside the task folder "
            "(refused: it would expose a file of the host)"
        )


def _within(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def _rel_parts(rel: str | Path) -> tuple[str, ...]:
    return tuple(p for p in Path(rel).parts if p not in ("", "."))


def find_escapes(folder: Path | str, sub: str | Path = "") -> list[Escape]:
    """Every path at or below ``folder/sub`` that leads outside ``folder``, in sorted order.

    A symlink leads outside when its target, fully resolved, is not below the folder's real path; links that
    stay inside are not followed (their target is checked where it lives). The components between ``folder``
    and ``sub`` are checked too (``setup -> /etc`` with ``sub = "setup/files"``). A missing ``sub`` has none.
    """
    folder = Path(folder)
    root = os.path.realpath(folder)
    parts = _rel_parts(sub)
    if ".." in parts or Path(sub).is_absolute():
        raise ValueError(f"{sub!r} is not a relative path inside the folder")
    for i in range(1, len(parts)):  # the parents of sub: a link there redirects everything below
        rel = "/".join(parts[:i])
        p = os.path.join(folder, rel)
        if os.path.islink(p) and not _within(os.path.realpath(p), root):
            return [Escape(rel, os.readlink(p))]
    out: list[Escape] = []
    start = os.path.join(folder, *parts)
    if os.path.islink(start):  # what is copied or read is what the link names: follow it, once
        if not _within(os.path.realpath(start), root):
            return [Escape("/".join(parts) or ".", os.readlink(start))]
        start = os.path.realpath(start)
    stack = [("/".join(parts), start)]
    while stack:
        rel, path = stack.pop()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        mode = stat.S_IFMT(st.st_mode)
        if mode == stat.S_IFLNK:
            if not _within(os.path.realpath(path), root):
                out.append(Escape(rel, os.readlink(path)))
        elif mode == stat.S_IFDIR:
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
            stack.extend((f"{rel}/{n}" if rel else n, os.path.join(path, n)) for n in reversed(names))
        elif mode != stat.S_IFREG:
            out.append(Escape(rel, None, _SPECIAL.get(mode, "special file")))
    return out


def _overlaps(rel: str, other: str) -> bool:
    """``rel`` is ``other``, below it, or one of its parents (a link there redirects it)."""
    a, b = _rel_parts(rel), _rel_parts(other)
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def refuse(
    folder: Path,
    escapes: list[Escape],
    *,
    context: str | None = None,
    host_read: Mapping[str, str | None] | None = None,
) -> None:
    """Raise :class:`TaskLoadError` for the first of ``escapes`` that is not allowed.

    Args:
        context: the image build context (relative to the folder), where a link that nothing on the host reads
            may lead outside (docker sends it as a link); ``None``: no such exception.
        host_read: paths (relative to the folder) read or copied on the host, each with the config field that
            names it (or ``None``): an escape at, below or above one of them is refused, naming the field.
    """
    host_read = dict(host_read or {})
    for r, f in list(host_read.items()):  # `tests -> shared/tests`: what is read is below shared/tests
        real = os.path.realpath(os.path.join(folder, r))
        root = os.path.realpath(folder)
        if _within(real, root) and real != root:
            host_read.setdefault(os.path.relpath(real, root), f)
    bad: list[tuple[Escape, str | None]] = []
    for e in escapes:
        field = next((f for r, f in host_read.items() if _overlaps(e.rel, r)), None)
        read_here = any(_overlaps(e.rel, r) for r in host_read)
        in_context = (
            context is not None
            and e.target is not None
            and len(_rel_parts(e.rel)) > len(_rel_parts(context))
            and _overlaps(e.rel, context)
        )
        if read_here or not in_context:
            bad.append((e, field))
    if not bad:
        return
    first, field = bad[0]
    message = first.describe()
    if len(bad) > 1:
        more = ", ".join(e.rel for e, _ in bad[1:4]) + (", ..." if len(bad) > 4 else "")
        message += f"; {len(bad) - 1} more: {more}"
    raise TaskLoadError(folder, first.rel or ".", field, message)


def check_paths(folder: Path, paths: Iterable[Path | None], *, field: str | None = None) -> None:
    """Check again, just before they are read or copied, that ``paths`` (and everything below them) stay inside
    ``folder``. Paths outside the folder's own tree are refused as well.

    Raises:
        TaskLoadError: naming the file (and ``field``) that leads outside.
    """
    folder = Path(folder)
    for p in paths:
        if p is None:
            continue
        try:
            rel = Path(os.path.normpath(p)).relative_to(os.path.normpath(folder))
        except ValueError:
            raise TaskLoadError(folder, str(p), field, "not a path inside the task folder") from None
        refuse(folder, find_escapes(folder, rel), host_read={rel.as_posix(): field})


def build_context_rules(
    context: Path, dockerfile: Path | None, folder: Path
) -> tuple[str, dict[str, str | None]]:
    """The build context relative to ``folder`` and the files of it read on the host (its Dockerfile and
    ``.dockerignore``), for :func:`refuse` (which refuses a link at the context folder itself anyway)."""
    ctx = Path(os.path.relpath(context, folder)).as_posix()
    ctx = "" if ctx == "." else ctx
    read: dict[str, str | None] = {(Path(ctx) / ".dockerignore").as_posix(): None}
    if dockerfile is not None:
        read[Path(os.path.relpath(dockerfile, folder)).as_posix()] = None
    return ctx, read


def check_build_context(folder: Path, context: Path, dockerfile: Path | None) -> None:
    """Before an image build: nothing the host reads in ``context`` leads outside ``folder`` (links elsewhere in
    the context are sent to the builder as links, never followed).

    Raises:
        TaskLoadError: naming the file that leads outside.
    """
    ctx, read = build_context_rules(context, dockerfile, folder)
    refuse(folder, find_escapes(folder, ctx), context=ctx, host_read=read)
