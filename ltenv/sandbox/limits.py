"""Resource limits for sandboxes through cgroups (v2 unified or v1 controllers), as the kernel offers them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PARENT = "ltenv"
_warned = False


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def cgroup_version() -> int:
    """2 for the unified hierarchy, 1 for v1 controllers, 0 when no usable cgroup filesystem is mounted."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return 2
    if (CGROUP_ROOT / "pids" / "cgroup.procs").exists():
        return 1
    return 0


class CgroupLimits:
    """One cgroup (per controller on v1) holding every process of one sandbox.

    ``procs_files`` are the ``cgroup.procs`` files a new process must write its pid to before it forks.
    """

    def __init__(self, dirs: dict[str, Path], version: int):
        self.dirs = dirs
        self.version = version

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    @classmethod
    def create(cls, name: str, *, memory_mb: int, pids: int, cpus: float) -> CgroupLimits | None:
        """Create the cgroup and set its limits; ``None`` (after one warning) where cgroups are not writable."""
        global _warned
        version = cgroup_version()
        try:
            if version == 2:
                return cls._create_v2(name, memory_mb, pids, cpus)
            if version == 1:
                return cls._create_v1(name, memory_mb, pids, cpus)
            raise OSError("no cgroup filesystem mounted at /sys/fs/cgroup")
        except OSError as e:
            if not _warned:
                _warned = True
                log.warning(
                    "sandbox resource limits (memory, pids, cpu) are OFF: cannot write cgroups (%s). "
                    "Run as root or with a delegated cgroup.",
                    e,
                )
            return None

    @classmethod
    def _create_v2(cls, name: str, memory_mb: int, pids: int, cpus: float) -> CgroupLimits:
        parent = CGROUP_ROOT / _PARENT
        parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            _write(CGROUP_ROOT / "cgroup.subtree_control", "+pids +memory +cpu")
        with contextlib.suppress(OSError):
            _write(parent / "cgroup.subtree_control", "+pids +memory +cpu")
        d = parent / name
        d.mkdir()
        self = cls({"unified": d}, 2)
        _write(d / "pids.max", str(pids))
        _write(d / "memory.max", str(memory_mb * 1024 * 1024))
        with contextlib.suppress(OSError):
            _write(d / "memory.swap.max", "0")
        with contextlib.suppress(OSError):
            _write(d / "cpu.max", f"{int(cpus * 100000)} 100000")
        return self

    @classmethod
    def _create_v1(cls, name: str, memory_mb: int, pids: int, cpus: float) -> CgroupLimits:
        dirs: dict[str, Path] = {}
        for ctl in ("pids", "memory", "cpu"):
            base = CGROUP_ROOT / ctl
            if not (base / "cgroup.procs").exists():
                continue
            d = base / _PARENT / name
            d.mkdir(parents=True)
            dirs[ctl] = d
        self = cls(dirs, 1)
        if "pids" not in dirs or "memory" not in dirs:
            self.destroy()
            raise OSError("cgroup v1 pids or memory controller missing")
        _write(dirs["pids"] / "pids.max", str(pids))
        limit = str(memory_mb * 1024 * 1024)
        _write(dirs["memory"] / "memory.limit_in_bytes", limit)
        with contextlib.suppress(OSError):
            _write(dirs["memory"] / "memory.memsw.limit_in_bytes", limit)
        if "cpu" in dirs:
            with contextlib.suppress(OSError):
                _write(dirs["cpu"] / "cpu.cfs_period_us", "100000")
                _write(dirs["cpu"] / "cpu.cfs_quota_us", str(int(cpus * 100000)))
        return self

    @classmethod
    def attach(cls, name: str) -> CgroupLimits | None:
        """The existing cgroup(s) called ``name`` (to clean up after a killed process), if any."""
        v2 = CGROUP_ROOT / _PARENT / name
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            return cls({"unified": v2}, 2) if v2.is_dir() else None
        dirs = {c: CGROUP_ROOT / c / _PARENT / name for c in ("pids", "memory", "cpu")}
        dirs = {c: d for c, d in dirs.items() if d.is_dir()}
        return cls(dirs, 1) if dirs else None

    @classmethod
    def find(cls, paths: list[str]) -> CgroupLimits | None:
        """The first of ``paths`` (relative to each hierarchy's root, e.g. ``docker/<id>``) that exists as a
        cgroup with a memory or pids controller, to read another manager's counters (:meth:`events`); ``None``
        where none exists or cgroups are not mounted here. Never :meth:`destroy` one found this way."""
        version = cgroup_version()
        for rel in paths:
            if version == 2:
                d = CGROUP_ROOT / rel
                if (d / "cgroup.procs").is_file():
                    return cls({"unified": d}, 2)
            elif version == 1:
                dirs = {c: CGROUP_ROOT / c / rel for c in ("pids", "memory")}
                dirs = {c: d for c, d in dirs.items() if (d / "cgroup.procs").is_file()}
                if dirs:
                    return cls(dirs, 1)
        return None

    def pids(self) -> list[int]:
        d = self.dirs.get("unified") or self.dirs.get("pids")
        if d is None:
            return []
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def events(self) -> dict[str, int] | None:
        """How often each limit was hit so far: ``memory``, processes the kernel OOM-killed for the memory
        limit; ``pids``, forks refused at the process limit. Counts only grow; a key is missing where its
        controller is; ``None`` when no counter can be read (the cgroup is gone).

        Memory counts OOM kills, not ``memory.failcnt`` (v1), which also counts every time the kernel
        reclaimed page cache at the limit: a large file write raises it without harming anything.
        """
        if self.version == 2:
            d = self.dirs.get("unified")
            files = {"memory": (d, "memory.events", b"oom_kill"), "pids": (d, "pids.events", b"max")}
        else:
            files = {
                "memory": (self.dirs.get("memory"), "memory.oom_control", b"oom_kill"),
                "pids": (self.dirs.get("pids"), "pids.events", b"max"),
            }
        out: dict[str, int] = {}
        for limit, (d, name, key) in files.items():
            if d is None:
                continue
            try:  # read every step: raw reads cost a tenth of Path.read_text's
                fd = os.open(d / name, os.O_RDONLY)
                try:
                    text = os.read(fd, 4096)
                finally:
                    os.close(fd)
            except OSError:
                continue
            out[limit] = 0
            for line in text.splitlines():
                k, _, val = line.partition(b" ")
                if k == key and val.strip().isdigit():
                    out[limit] = int(val)
        return out or None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for exceeding its memory limit."""
        return bool((self.events() or {}).get("memory"))

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup, retrying while forks race the kill."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs["unified"] / "cgroup.kill", "1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for p in pids:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.005)

    def destroy(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            for _ in range(200):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
