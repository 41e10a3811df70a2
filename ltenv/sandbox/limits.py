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

    def pids(self) -> list[int]:
        d = self.dirs.get("unified") or self.dirs.get("pids")
        if d is None:
            return []
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for exceeding its memory limit."""
        try:
            if self.version == 2:
                text = (self.dirs["unified"] / "memory.events").read_text()
            else:
                text = (self.dirs["memory"] / "memory.oom_control").read_text()
        except (OSError, KeyError):
            return False
        for line in text.splitlines():
            key, _, val = line.partition(" ")
            if key == "oom_kill" and int(val or 0) > 0:
                return True
        return False

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
