"""Disk quotas: every sandbox writes into a private ext4 filesystem of its own size, on a loop device.

A runaway write (``dd if=/dev/zero of=/big``) then ends with ``ENOSPC`` ("No space left on device") inside the
sandbox, ``df`` there shows the quota, and the host disk gets at most that much. The same mechanism serves
both backends:

* **bwrap** — :meth:`Scratch.create` mounts the filesystem at a folder of the episode's directory; the
  overlay's ``upper`` and ``work`` go inside it.
* **Docker** — :func:`attach_container`, between ``create`` and ``start``, mounts it over the container's
  layer folder (``/var/lib/docker/overlay2/<id>``, whose ``diff`` is the writable layer) and over the
  container's folder (``/var/lib/docker/containers/<id>``: ``/etc/hosts``, ``/etc/hostname`` and
  ``/etc/resolv.conf`` are writable files from there, and would otherwise let a write escape the quota).

Why this shape (measured on an ext4 host, Linux 6.18, 2 loaded cores): a filesystem per sandbox gives
``ENOSPC`` whatever the host's filesystem, with no quota tools and nothing to configure on the host, and
nothing inside a sandbox can move its files out of it (an XFS/ext4 project quota on one shared filesystem is
cheaper still, but a file owner in the initial user namespace — root in a Docker container — may change a
file's project id with ``FS_IOC_FSSETXATTR``, and ext4 answers ``EDQUOT``). Making it costs a few
milliseconds: ``mke2fs`` runs once per size (into a cached, sparse template of ~230 KB without journal,
resize inode or initialised inode tables); each sandbox copies the template's data extents into a new
sparse file, attaches it to a loop device (``LOOP_CONFIGURE``), **unlinks the file at once**, and mounts it
through the new mount API. Releasing it is one lazy unmount: the kernel drops the filesystem, frees the loop
device (``LO_FLAGS_AUTOCLEAR``) and the backing file's blocks once the last user (the overlay, the
container) is gone. So nothing needs deleting file by file, and a killed driver leaves no file and no loop
device — only mounts, which name their owner (the backing file is ``ltenv-scratch-<pid>-<start>-<hex>.img``,
shown in ``/sys/dev/block/<dev>/loop/backing_file``), and :func:`gc_scratch` detaches those of dead owners.
Measured: ~5 ms to make one (copy 1, loop device 2.5, mount 1.5), ~6 ms to release an empty one.

Closing is cheap too if :meth:`Scratch.discard` runs before the overlay above it is unmounted: unmounting an
overlay syncs its upper filesystem, i.e. writes back to the host everything the agent wrote that is still in
memory (4 s for 1.5 GB here), only to throw it away. ``discard`` shuts the filesystem down
(``EXT4_IOC_SHUTDOWN``, no log flush) so that nothing is written back (0.15 s for the same). Docker
containers are not discarded: the engine reads files of the layer folder while it removes the container.
The usable size is ~98% of ``size_mb`` (ext4's own metadata and reserve).

Stdlib and ctypes only; ``mke2fs`` (e2fsprogs) is run once per size, never on the hot path. Where the
mechanism is unavailable (not root, no loop devices, no ``mke2fs``, an engine on another machine or in
another mount namespace) sandboxes run without a disk limit, after one warning naming the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import os
import re
import secrets
import shutil
import stat
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ltenv.errors import SandboxError
from ltenv.sandbox import janitor, kernel

log = logging.getLogger(__name__)

TEMPLATE_VERSION = 1
"""Bump when the ``mke2fs`` options change: templates are cached on disk under a versioned name."""
IMAGE_PREFIX = "ltenv-scratch-"
MIN_SIZE_MB = 16
"""Smaller quotas are raised to this (ext4's own metadata needs room)."""

_MKE2FS_ARGS = [
    "-q", "-F", "-t", "ext4",
    # No journal (a sandbox's scratch need not survive a crash), no resize inode: the template's data is then
    # ~230 KB for 10 GB, so copying it is cheap.
    "-O", "^has_journal,^resize_inode",
    # Inode tables are left uninitialised (and mounted with noinit_itable, so the kernel never zeroes them).
    "-E", "lazy_itable_init=1,nodiscard",
    "-m", "0",
    "-L", "ltenv-scratch",
]  # fmt: skip
_MOUNT_FLAGS = ("noinit_itable",)

_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LOOP_SET_FD = 0x4C00
_LOOP_CLR_FD = 0x4C01
_LOOP_SET_STATUS64 = 0x4C04
_LO_FLAGS_AUTOCLEAR = 4
_LO_FLAGS_DIRECT_IO = 16
_LOOP_MAJOR = 7
_MNT_DETACH = 2
_FS_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32): EXT4_IOC_SHUTDOWN, XFS_IOC_GOINGDOWN
_SHUTDOWN_NOLOGFLUSH = 2
_LOOP_INFO64_SIZE = 232  # struct loop_info64
_LO_FLAGS_OFFSET = 52  # of lo_flags in struct loop_info64

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()
_templates: dict[int, tuple[Path, list[tuple[int, int]]]] = {}
_warned: set[str] = set()
_IMAGE_RE = re.compile(re.escape(IMAGE_PREFIX) + r"(\d+)-(\d+)-[0-9a-f]+\.img(?: \(deleted\))?$")
_TMP_RE = re.compile(r"\.(\d+)-(\d+)\.tmp$")


class DiskQuotaError(SandboxError):
    """Making or attaching a sandbox's size-limited filesystem failed where it should have worked."""


# --------------------------------------------------------------------------- availability
def scratch_dir() -> Path:
    """Where templates live and where per-sandbox images are made (then unlinked at once): the cache folder,
    on the disk the quota protects (``LTENV_SCRATCH_DIR`` overrides it)."""
    env = os.environ.get("LTENV_SCRATCH_DIR")
    if env:
        return Path(env)
    from ltenv.sandbox.images import cache_dir

    return cache_dir() / "scratch"


@functools.cache
def unavailable() -> str | None:
    """Why size-limited sandbox filesystems cannot be made here, or ``None`` if they can (checked once)."""
    if not os.path.exists("/proc/self/mountinfo"):
        return "disk quotas need Linux"
    if os.geteuid() != 0:
        return "disk quotas need root (loop devices and mounts); the driver runs unprivileged"
    if not os.path.exists("/dev/loop-control"):
        return "disk quotas need loop devices (/dev/loop-control is missing: modprobe loop)"
    if _mke2fs() is None:
        return "disk quotas need mke2fs (apt-get install e2fsprogs)"
    try:
        os.close(os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC))
        os.close(
            _check(kernel.libc.syscall(kernel.SYS_FSOPEN, b"ext4", kernel.FSOPEN_CLOEXEC), "fsopen(ext4)")
        )
    except OSError as e:
        return f"disk quotas need loop devices and mounts of ext4 through the new mount API (Linux 5.2+): {e}"
    return None


def warn_unlimited(why: str) -> None:
    """Log, once per process and reason, that sandboxes run without a disk limit."""
    with _lock:
        if why in _warned:
            return
        _warned.add(why)
    log.warning("sandboxes run WITHOUT a disk quota (storage_mb is not enforced): %s", why)


def _mke2fs() -> str | None:
    return shutil.which("mke2fs") or next(
        (p for p in ("/sbin/mke2fs", "/usr/sbin/mke2fs") if os.access(p, os.X_OK)), None
    )


# --------------------------------------------------------------------------- owners
def _start_time(pid: int) -> str | None:
    start = janitor.proc_start(pid)
    return None if start is None else str(start)


def _owner() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _owner_alive(pid: str, start: str) -> bool:
    return _start_time(int(pid)) == start


# --------------------------------------------------------------------------- images and loop devices
def _template(size_mb: int) -> tuple[Path, list[tuple[int, int]]]:
    """The cached empty filesystem of ``size_mb`` and its data extents (offset, length)."""
    with _lock:
        cached = _templates.get(size_mb)
    if cached is not None and cached[0].exists():
        return cached
    d = scratch_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / f"ext4-{size_mb}m-v{TEMPLATE_VERSION}.img"
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{_owner()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.truncate(size_mb << 20)
            proc = subprocess.run(
                [_mke2fs() or "mke2fs", *_MKE2FS_ARGS, str(tmp)], capture_output=True, text=True, timeout=120
            )
            if proc.returncode != 0:
                raise DiskQuotaError(
                    f"mke2fs failed for a {size_mb} MB sandbox filesystem: {proc.stderr.strip()}"
                )
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    extents = []
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        end, pos = os.fstat(fd).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, stop - start))
            pos = stop
    finally:
        os.close(fd)
    with _lock:
        _templates[size_mb] = (path, extents)
    return path, extents


def _new_image(size_mb: int) -> tuple[int, Path]:
    """A fresh sparse copy of the template, open read-write. Returns (descriptor, path)."""
    template, extents = _template(size_mb)
    path = template.parent / f"{IMAGE_PREFIX}{_owner()}-{secrets.token_hex(4)}.img"
    dst = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(dst, size_mb << 20)
        src = os.open(template, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for off, length in extents:
                _copy_range(src, dst, off, length)
        finally:
            os.close(src)
    except BaseException:
        os.close(dst)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return dst, path


def _copy_range(src: int, dst: int, off: int, length: int) -> None:
    done = 0
    while done < length:
        try:
            n = os.copy_file_range(src, dst, length - done, off + done, off + done)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            n = os.pwrite(dst, os.pread(src, min(length - done, 1 << 20), off + done), off + done)
        if n <= 0:
            raise OSError(errno.EIO, "short copy of the sandbox filesystem template")
        done += n


def _loop_attach(backing_fd: int) -> tuple[int, str]:
    """Attach ``backing_fd`` to a free loop device that detaches itself when its last user goes.
    Returns (open descriptor of the device, its path)."""
    for _ in range(32):  # another process may take the free device between GET_FREE and CONFIGURE
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            n = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        dev = f"/dev/loop{n}"
        if not os.path.exists(dev):  # a static /dev (e.g. in a container): make the node
            with contextlib.suppress(FileExistsError):
                os.mknod(dev, stat.S_IFBLK | 0o660, os.makedev(_LOOP_MAJOR, n))
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
        try:
            _loop_configure(fd, backing_fd)
            return fd, dev
        except OSError as e:
            os.close(fd)
            if e.errno != errno.EBUSY:
                raise
    raise OSError(errno.EBUSY, "no free loop device")


def _loop_configure(fd: int, backing_fd: int) -> None:
    for flags in (_LO_FLAGS_AUTOCLEAR | _LO_FLAGS_DIRECT_IO, _LO_FLAGS_AUTOCLEAR):
        cfg = bytearray(8 + _LOOP_INFO64_SIZE + 64)  # struct loop_config
        struct.pack_into("=II", cfg, 0, backing_fd, 0)
        struct.pack_into("=I", cfg, 8 + _LO_FLAGS_OFFSET, flags)
        try:
            fcntl.ioctl(fd, _LOOP_CONFIGURE, bytes(cfg))
            return
        except OSError as e:
            if e.errno == errno.EINVAL and flags & _LO_FLAGS_DIRECT_IO:
                continue  # a backing filesystem without direct I/O
            if e.errno not in (errno.ENOTTY, errno.EINVAL):
                raise
        # Kernels before 5.8: two steps (a kill in between leaves the device bound; gc_scratch clears it).
        fcntl.ioctl(fd, _LOOP_SET_FD, backing_fd)
        info = bytearray(_LOOP_INFO64_SIZE)
        struct.pack_into("=I", info, _LO_FLAGS_OFFSET, _LO_FLAGS_AUTOCLEAR)
        try:
            fcntl.ioctl(fd, _LOOP_SET_STATUS64, bytes(info))
        except OSError:
            fcntl.ioctl(fd, _LOOP_CLR_FD, 0)
            raise
        return


def _fs_mount(dev: str) -> int:
    """A detached mount of the ext4 filesystem on ``dev`` (new mount API). Returns its descriptor."""
    fs = _check(kernel.libc.syscall(kernel.SYS_FSOPEN, b"ext4", kernel.FSOPEN_CLOEXEC), "fsopen(ext4)")
    try:
        _check(
            kernel.libc.syscall(
                kernel.SYS_FSCONFIG, fs, kernel.FSCONFIG_SET_STRING, b"source", dev.encode(), 0
            ),
            "ext4 source",
        )
        for key in _MOUNT_FLAGS:
            _check(
                kernel.libc.syscall(kernel.SYS_FSCONFIG, fs, kernel.FSCONFIG_SET_FLAG, key.encode(), None, 0),
                f"ext4 {key}",
            )
        _check(
            kernel.libc.syscall(kernel.SYS_FSCONFIG, fs, kernel.FSCONFIG_CMD_CREATE, None, None, 0),
            "creating the ext4 filesystem",
        )
        return _check(kernel.libc.syscall(kernel.SYS_FSMOUNT, fs, kernel.FSMOUNT_CLOEXEC, 0), "fsmount(ext4)")
    finally:
        os.close(fs)


def _new_filesystem(size_mb: int) -> int:
    """A fresh, empty, detached filesystem of ``size_mb`` whose backing file is already unlinked: when the last
    mount of it goes, the kernel frees everything. Returns the detached mount's descriptor."""
    backing, path = _new_image(size_mb)
    loop_fd = -1
    try:
        loop_fd, dev = _loop_attach(backing)
        os.unlink(path)
        return _fs_mount(dev)
    except OSError as e:
        raise DiskQuotaError(f"making a {size_mb} MB sandbox filesystem failed: {e}") from None
    finally:
        os.close(backing)
        if loop_fd >= 0:
            os.close(loop_fd)  # the mount holds the device now; without one, autoclear detaches it here
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _subtree(mount_fd: int, sub: str) -> int:
    """A detached clone of folder ``sub`` of a detached mount."""
    return _check(
        kernel.libc.syscall(
            kernel.SYS_OPEN_TREE, mount_fd, sub.encode(), kernel.OPEN_TREE_CLONE | kernel.O_CLOEXEC
        ),
        f"open_tree({sub})",
    )


def _discard(path: Path, dev: int) -> None:
    """Shut down the filesystem mounted at ``path`` without writing back what is dirty in memory, so that its
    last unmount costs nothing whatever the sandbox wrote. Only if ``path`` is on device ``dev`` (a loop
    device): never a filesystem of the host."""
    if os.major(dev) != _LOOP_MAJOR:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if os.fstat(fd).st_dev == dev:  # the same descriptor is shut down: no race with a mount change
            fcntl.ioctl(fd, _FS_IOC_SHUTDOWN, struct.pack("=I", _SHUTDOWN_NOLOGFLUSH))
    except OSError as e:
        log.debug("shutting down the sandbox filesystem at %s failed: %s", path, e)
    finally:
        os.close(fd)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _detach(path: Path) -> None:
    """Lazily unmount ``path`` if something is mounted there."""
    if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            log.warning("unmounting the sandbox filesystem at %s failed: %s", path, os.strerror(err))


def _size(size_mb: int) -> int:
    return max(MIN_SIZE_MB, int(size_mb))


# --------------------------------------------------------------------------- the two uses
@dataclass
class Scratch:
    """A folder whose contents live on a size-limited filesystem of their own (or, where quotas are
    unavailable, a plain folder after one warning).

    Example:
        >>> scratch = Scratch.create(episode_dir / "disk", 10240)  # doctest: +SKIP
        >>> (scratch.path / "upper").mkdir(); (scratch.path / "work").mkdir()  # doctest: +SKIP
        >>> ...                                 # the overlay's upper and work inside it; the episode runs
        >>> scratch.discard()                   # processes gone: drop what they wrote, before...
        >>> ...                                 # ...unmounting the overlay
        >>> scratch.release()
    """

    path: Path
    size_mb: int | None = None
    """The size in effect, or ``None`` when nothing limits the folder."""
    mounts: list[Path] = field(default_factory=list)
    """What :meth:`release` unmounts."""
    dev: int = 0
    """Device number of the filesystem (0 when there is none)."""

    @classmethod
    def create(cls, path: Path, size_mb: int | None) -> Scratch:
        """Make folder ``path`` (it must not exist) and mount a fresh ``size_mb`` filesystem there.

        ``size_mb=None`` means no limit. Raises :class:`DiskQuotaError` when quotas are available here but
        making this one failed (e.g. no free loop device).
        """
        path.mkdir(mode=0o755)
        if size_mb is None:
            return cls(path)
        why = unavailable()
        if why:
            warn_unlimited(why)
            return cls(path)
        size_mb = _size(size_mb)
        mnt = _new_filesystem(size_mb)
        try:
            kernel.attach(mnt, str(path))
        except OSError as e:
            raise DiskQuotaError(f"mounting the sandbox filesystem at {path} failed: {e}") from None
        finally:
            os.close(mnt)
        scratch = cls(path, size_mb, [path], os.stat(path).st_dev)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path / "lost+found")
        return scratch

    def discard(self) -> None:
        """Make the filesystem refuse all further writes (``EIO``) and drop what is still unwritten in memory,
        so that its last unmount is instant however much the sandbox wrote. Only once its contents are no
        longer wanted: the sandbox is closing."""
        if self.dev and self.mounts:
            _discard(self.mounts[0], self.dev)

    def release(self) -> None:
        """Discard the contents and unmount (lazily: whatever still uses the filesystem keeps it until it lets
        go; then the kernel frees it, its loop device and its backing file). The folder stays, empty.
        Idempotent."""
        self.discard()
        mounts, self.mounts = self.mounts, []
        for m in reversed(mounts):
            _detach(m)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def attach_container(layer_dir: Path, container_dir: Path | None, size_mb: int) -> Scratch:
    """Put a created, not yet started Docker container's writable layer (``layer_dir``, the parent of its
    overlay2 ``UpperDir``) and its folder of engine-managed files (``container_dir``: hosts, hostname,
    resolv.conf, logs) on one fresh ``size_mb`` filesystem, with their current contents.

    The engine must run on this machine, in a mount namespace that sees ours. When the engine removes the
    container it unmounts both (``EnsureRemoveAll``); :meth:`Scratch.release` does it too, for engines that
    do not. Raises :class:`DiskQuotaError` on failure (nothing stays mounted then).
    """
    size_mb = _size(size_mb)
    targets = [("layer", layer_dir)] + ([("container", container_dir)] if container_dir is not None else [])
    trees = {name: _snapshot(path) for name, path in targets}
    mnt = _new_filesystem(size_mb)
    scratch = Scratch(layer_dir, size_mb)
    try:
        for name, path in targets:
            os.mkdir(name, dir_fd=mnt)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=mnt)
            try:
                _restore(sub, trees[name])
            finally:
                os.close(sub)
            tree = _subtree(mnt, name)
            try:
                kernel.attach(tree, str(path))
            finally:
                os.close(tree)
            scratch.mounts.append(path)
        scratch.dev = os.stat(layer_dir).st_dev
    except OSError as e:
        scratch.release()
        raise DiskQuotaError(
            f"moving the container's writable layer onto its own filesystem failed: {e}"
        ) from None
    finally:
        os.close(mnt)
    return scratch


# A folder's tree as (mode, uid, gid, children-or-content); only what a container's folders hold right after
# create: a few small files, empty folders, maybe links.
_Tree = tuple[int, int, int, "dict[str, _Tree] | bytes | str"]


def _snapshot(path: Path, depth: int = 0) -> _Tree:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return (st.st_mode, st.st_uid, st.st_gid, os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        if st.st_size > 16 << 20:
            raise DiskQuotaError(f"unexpected large file {path} in a new container's folder")
        return (st.st_mode, st.st_uid, st.st_gid, Path(path).read_bytes())
    if not stat.S_ISDIR(st.st_mode) or depth > 8:
        raise DiskQuotaError(f"unexpected entry {path} in a new container's folder")
    return (
        st.st_mode,
        st.st_uid,
        st.st_gid,
        {e.name: _snapshot(Path(e.path), depth + 1) for e in os.scandir(path)},
    )


def _restore(dir_fd: int, tree: _Tree) -> None:
    """Recreate ``tree``'s children inside ``dir_fd`` and give ``dir_fd`` the tree's owner and mode."""
    mode, uid, gid, children = tree
    assert isinstance(children, dict)
    for name, (cmode, cuid, cgid, body) in children.items():
        if isinstance(body, dict):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                _restore(sub, (cmode, cuid, cgid, body))
            finally:
                os.close(sub)
        elif isinstance(body, str):
            os.symlink(body, name, dir_fd=dir_fd)
            os.chown(name, cuid, cgid, dir_fd=dir_fd, follow_symlinks=False)
        else:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dir_fd,
            )
            try:
                os.write(fd, body)
                os.fchown(fd, cuid, cgid)
                os.fchmod(fd, stat.S_IMODE(cmode))
            finally:
                os.close(fd)
    os.fchown(dir_fd, uid, gid)
    os.fchmod(dir_fd, stat.S_IMODE(mode))


# --------------------------------------------------------------------------- leftovers
def gc_scratch(verbose: bool = False) -> int:
    """Detach the sandbox filesystems of processes that died without releasing them, clear loop devices they
    left bound, and delete their unfinished image files. Returns how many filesystems it detached.

    Safe to run at any time, from any process: filesystems of live owners are left alone, and a loop
    device still in use is only marked to detach itself when its last user goes.
    """
    if os.geteuid() != 0:
        return 0  # nothing of ours to collect: unprivileged drivers never make these filesystems
    detached = 0
    for mount_point, backing in _scratch_mounts():
        m = _IMAGE_RE.search(backing)
        if m is None or _owner_alive(m.group(1), m.group(2)):
            continue
        _detach(Path(mount_point))
        detached += 1
        if verbose:
            log.info("detached a stale sandbox filesystem at %s", mount_point)
    with contextlib.suppress(OSError):
        for entry in os.scandir("/sys/block"):
            if not entry.name.startswith("loop"):
                continue
            try:
                backing = Path(entry.path, "loop", "backing_file").read_text().strip()
            except OSError:
                continue
            m = _IMAGE_RE.search(backing)
            if m is None or _owner_alive(m.group(1), m.group(2)):
                continue
            with contextlib.suppress(OSError):
                fd = os.open(f"/dev/{entry.name}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(fd, _LOOP_CLR_FD, 0)  # a device in use is only marked to autoclear
                finally:
                    os.close(fd)
    d = scratch_dir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(d):
            m = _IMAGE_RE.search(entry.name) or _TMP_RE.search(entry.name)
            if m is not None and not _owner_alive(m.group(1), m.group(2)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    return detached


def _scratch_mounts() -> list[tuple[str, str]]:
    """(mount point, backing file) of every loop-backed mount in this mount namespace."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5 or not fields[2].startswith(f"{_LOOP_MAJOR}:"):
            continue
        try:
            backing = Path(f"/sys/dev/block/{fields[2]}/loop/backing_file").read_text().strip()
        except OSError:
            continue
        out.append((_unescape(fields[4]), backing))
    # Deepest first, so that a mount over another is detached before the one below it.
    out.sort(key=lambda mb: mb[0].count("/"), reverse=True)
    return out


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
