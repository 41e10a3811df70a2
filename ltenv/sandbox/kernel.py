"""Kernel interfaces the sandboxes need that Python's standard library lacks: idmapped mounts, overlay mounts
built from descriptors (the new mount API), becoming root of a user namespace, and loading a seccomp filter.

Stdlib and ctypes only: the package imports it, and so do ``nsexec.py`` and ``trusted.py``, which run as
standalone scripts (``python -I -S``) and load it as their sibling.
"""

import ctypes
import os
import struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# The generic syscall table: the same numbers on every architecture.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 428, 429, 430, 431, 432
SYS_MOUNT_SETATTR = 442
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, O_CLOEXEC = 1, 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_IDMAP = 0x1, 0x2, 0x4, 0x100000
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_SET_FD, FSCONFIG_CMD_CREATE = 0, 1, 5, 6
FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC = 1, 1
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def idmapped_tree(path: str, userns_fd: int, *, readonly: bool = True) -> int:
    """A detached copy of the mount at ``path`` whose file owners are seen through ``userns_fd``'s id map
    (host uid 0 appears as the namespace's root). Returns its descriptor (close-on-exec)."""
    fd = _check(
        libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | O_CLOEXEC),
        f"open_tree({path})",
    )
    attr = _MountAttr(MOUNT_ATTR_IDMAP | (MOUNT_ATTR_RDONLY if readonly else 0), 0, 0, userns_fd)
    try:
        _check(
            libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
            f"idmapping {path}",
        )
    except OSError:
        os.close(fd)
        raise
    return fd


def overlay(lower_fds: list[int], upper: str = "", work: str = "", *, readonly: bool = False) -> int:
    """A detached overlay mount over ``lower_fds`` (top first) with an optional upper and work directory.
    Returns the mount's descriptor: attach it with :func:`attach` or carry it into another namespace."""
    fs = _check(libc.syscall(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC), "fsopen(overlay)")
    try:
        for fd in lower_fds:
            _check(
                libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_FD, b"lowerdir+", None, fd), "overlay lowerdir+"
            )
        if upper:
            _check(
                libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, b"upperdir", upper.encode(), 0),
                "overlay upperdir",
            )
            _check(
                libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, b"workdir", work.encode(), 0),
                "overlay workdir",
            )
        _check(libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0), "creating the overlay")
        flags = MOUNT_ATTR_RDONLY if readonly else 0
        return _check(libc.syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, flags), "fsmount(overlay)")
    finally:
        os.close(fs)


def attach(mount_fd: int, target: str) -> None:
    """Attach a detached mount at ``target`` (a path in the caller's mount namespace)."""
    _check(
        libc.syscall(SYS_MOVE_MOUNT, mount_fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
        f"move_mount({target})",
    )


def become_root() -> None:
    """After joining a user namespace: take its uid and gid 0 (and no supplementary groups). Joining leaves
    the host ids, which a namespace that maps root elsewhere shows as the overflow id."""
    _check(libc.setresgid(0, 0, 0), "setresgid(0)")
    if libc.setgroups(0, None) != 0 and ctypes.get_errno() != 1:
        # EPERM: the namespace denies setgroups (unprivileged bwrap writes "deny" before its gid map); then
        # the joining process's groups are unmapped ones, which grant nothing inside.
        _check(-1, "setgroups([])")
    _check(libc.setresuid(0, 0, 0), "setresuid(0)")


def load_seccomp(program: bytes) -> None:
    """Install a compiled seccomp filter (classic BPF, as libseccomp exports it) on the calling thread; it is
    inherited by every child and survives ``execve``. Sets no_new_privs first, as the kernel requires."""
    if not program or len(program) % 8:
        raise OSError(22, "seccomp filter: not a BPF program")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp filter")


def bpf_instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    """The (code, jt, jf, k) instructions of a classic BPF program (for inspection and tests)."""
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
