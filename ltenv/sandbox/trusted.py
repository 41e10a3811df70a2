"""Run a trusted program (the verifier) in a private view of a running sandbox, on the image's pristine
toolchain.

Executed as a standalone script by the host (``python -I -S trusted.py``), never imported by the package:
it switches namespaces, which a multi-threaded caller must not do. Stdlib only.

What the program sees:

* ``/`` is a fresh, read-only tmpfs whose top-level entries are bind mounts of the sandbox's own (the agent's
  final filesystem, live: files, services' sockets, ``/proc`` of the sandbox's pid namespace), except:
  ``/tests``, ``/logs/verifier`` and ``$TMPDIR`` (``/.ltenv-verifier/tmp``) are fresh, empty, writable tmpfs
  mounts (what the agent planted there is not visible), ``/etc`` is rebuilt entry by entry without ``ld.so.preload``, and ``/.ltenv-verifier/image``
  is the task image *as built* (a read-only overlay of its layers, which the agent never had access to).
* The program is started with the image's own dynamic loader and libraries from ``/.ltenv-verifier/image``,
  never through a path the agent could have changed. Shell functions (in ``/.ltenv-verifier/prelude.sh``)
  route ``bash``, ``sh``, ``python*``, ``pytest`` and ``py.test`` to the pristine copies, and Python starts
  through ``boot.py``, which puts only pristine site directories on ``sys.path``.
* It runs in the sandbox's pid, network, ipc and uts namespaces (it sees the agent's processes and loopback
  services) with a capability set the agent's processes lack, so they cannot open its ``/proc/PID/root``.

The host passes a JSON job on the descriptor named by the first argument and a tar of files on stdin; the program's stdout and stderr are
this process's. When the program ends (or its time runs out) every process left in the private view is
killed, then a JSON result goes to the descriptor named by the second argument: exit status, the files under the collected directories,
and the test runner's reports.
"""

import ctypes
import glob
import io
import json
import os
import signal
import stat
import struct
import sys
import tarfile
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
CLONE_NEWNS = 0x20000
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429  # the same numbers on every architecture (generic syscall table)
SYS_PIDFD_SEND_SIGNAL = 424
OPEN_TREE_CLONE, AT_RECURSIVE, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, 4
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER = 1, 4, 24, 36
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid")
VIEW = "/.ltenv-verifier"
IMAGE = VIEW + "/image"
MAX_FILE = 16 << 20

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off sys.path
from kernel import become_root, idmapped_tree, load_seccomp, overlay  # noqa: E402  (sibling, stdlib only)
from nsexec import LINUX_CAPABILITY_VERSION_3, _CapData, _CapHeader  # noqa: E402  (its sibling, stdlib only)

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class SetupError(Exception):
    pass


def _check(ret, what):
    if ret is None or ret < 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")
    return ret


def _mount(src, target, fstype, flags, data=None):
    _check(
        libc.mount(
            src.encode() if src else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {src or fstype} on {target}",
    )


# ------------------------------------------------------------------------------------------- the private view


def _bind_entry(src, dst):
    """Bind ``src`` (a path in the sandbox) at ``dst`` (in the view); symlinks are recreated, not followed."""
    try:
        st = os.lstat(src)
    except OSError:
        return
    _stat = stat
    if _stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        return
    if _stat.S_ISDIR(st.st_mode):
        os.mkdir(dst)
    else:
        os.close(os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644))
    try:
        _mount(src, dst, None, MS_BIND | MS_REC)
    except SetupError:
        # A socket or fifo at the top level, or an entry the agent removed meanwhile: leave it out.
        if _stat.S_ISDIR(st.st_mode):
            os.rmdir(dst)
        else:
            os.unlink(dst)


def _build_view(top, skip, composite):
    """Populate the view rooted at ``top`` (a path reaching the fresh tmpfs) from the sandbox's root."""
    for entry in sorted(os.listdir("/")):
        if entry in skip:
            continue
        src, dst = "/" + entry, f"{top}/{entry}"
        if entry in composite and os.path.isdir(src) and not os.path.islink(src):
            os.mkdir(dst)
            for sub in sorted(os.listdir(src)):
                if sub not in composite[entry]:
                    _bind_entry(f"{src}/{sub}", f"{dst}/{sub}")
        else:
            _bind_entry(src, dst)


# ------------------------------------------------------------------------------ the pristine toolchain (in IMAGE)


def resolve(path, limit=40):
    """``path`` resolved inside the pristine image (absolute symlinks stay inside it); ``None`` if missing."""
    parts = [p for p in path.split("/") if p and p != "."]
    done = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        cur = IMAGE + "/" + "/".join([*done, part])
        if os.path.islink(cur):
            hops += 1
            if hops > limit:
                return None
            target = os.readlink(cur)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if not os.path.lexists(cur):
            return None
        done.append(part)
    return IMAGE + "/" + "/".join(done)


def elf_interpreter(path):
    """The PT_INTERP of an ELF file ('' for a static one), or ``None`` if it is not ELF."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return None
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, phentsize, phnum = (
                struct.unpack(end + "Q", head[32:40])[0],
                *struct.unpack(end + "HH", head[54:58]),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack(end + "I", head[28:32])[0],
                *struct.unpack(end + "HH", head[42:46]),
            )
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            ptype = struct.unpack(end + "I", ph[:4])[0]
            if ptype == 3:  # PT_INTERP
                off, size = (
                    struct.unpack(end + "QQQQ", ph[8:40])[0::3]
                    if is64
                    else struct.unpack(end + "IIII", ph[4:20])[0::3]
                )
                f.seek(off)
                return f.read(size).rstrip(b"\0").decode()
    return ""


def library_dirs():
    """The pristine image's library directories: its ld.so.conf, then the standard ones."""
    dirs = []

    def read_conf(conf, depth=0):
        real = resolve(conf)
        if real is None or depth > 8 or not os.path.isfile(real):
            return
        with open(real, errors="replace") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                if line.startswith("include"):
                    pattern = line.split(None, 1)[1] if len(line.split()) > 1 else ""
                    if not pattern.startswith("/"):
                        pattern = os.path.dirname(conf) + "/" + pattern
                    base = resolve(os.path.dirname(pattern))
                    if base:
                        for inc in sorted(glob.glob(base + "/" + os.path.basename(pattern))):
                            read_conf(inc[len(IMAGE) :], depth + 1)
                else:
                    dirs.append(line)

    read_conf("/etc/ld.so.conf")
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    out = []
    for d in dirs:
        real = resolve(d)
        if real and os.path.isdir(real) and real not in out:
            out.append(real)
    return out


def find_on_path(name, path):
    for d in path.split(":"):
        if d.startswith("/"):
            real = resolve(d + "/" + name)
            if real and os.path.isfile(real) and os.access(real, os.X_OK):
                return d + "/" + name, real
    return None, None


def shebang(script, path):
    """The pristine interpreter a ``#!`` script runs with: (path as named, path in the image, its arguments),
    following ``/usr/bin/env NAME`` along ``path``; ``None`` if there is none or it is not a program."""
    with open(script, "rb") as f:
        first = f.readline(512).decode(errors="replace")
    words = first[2:].split() if first.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        if not words:
            return None
        shown, real = find_on_path(words[0], path)
    elif words:
        shown, real = words[0], resolve(words[0])
    else:
        return None
    if real is None or elf_interpreter(real) is None:
        return None
    return shown, real, words[1:]


def python_for(name, path):
    """How to run pristine ``name`` (python3, pytest...): (exe, prefix, venv_dir, venv_system, module) or None."""
    shown, real = find_on_path(name, path)
    if real is None:
        return None
    module = ""
    interp = elf_interpreter(real)
    if interp is None:  # a script: follow its shebang
        found = shebang(real, path)
        if found is None:
            return None
        shown, real, _args = found
        module = "pytest" if name in ("pytest", "py.test") else ""
    return python_at(shown, real, module)


def python_at(shown, real, module=""):
    """How to run the pristine interpreter ``real`` (named ``shown``, e.g. in a ``#!`` line): (exe, prefix,
    venv_dir, venv_system, module) or None when it is not a Python installation of the image."""
    venv, venv_system = "", "0"
    for d in (os.path.dirname(os.path.dirname(shown)), os.path.dirname(shown)):
        cfg = resolve(d + "/pyvenv.cfg")
        if cfg and os.path.isfile(cfg):
            venv = resolve(d) or ""
            with open(cfg, errors="replace") as f:
                for line in f:
                    key, _, value = line.partition("=")
                    if key.strip() == "include-system-site-packages" and value.strip().lower() == "true":
                        venv_system = "1"
            break
    prefix = os.path.dirname(os.path.dirname(real))
    while prefix.startswith(IMAGE):
        if glob.glob(prefix + "/lib/python*/os.py"):
            return real, prefix, venv, venv_system, module
        if prefix == IMAGE:
            break
        prefix = os.path.dirname(prefix)
    return None


def _q(s):
    return "'" + s.replace("'", "'\\''") + "'"


def pristine_python(found, run):
    """How a pristine Python (``found``: :func:`python_for` / :func:`python_at`) is started: the environment
    assignments and the command, both as shell words (arguments go after the command). ``run`` is the
    image's dynamic loader with its library path (empty when the interpreter is started directly)."""
    exe, prefix, venv, venv_system, module = found
    mod = f" -m {module}" if module else ""
    assigns = f"PYTHONHOME={_q(prefix)} LTENV_VENV={_q(venv)} LTENV_VENV_SYSTEM={venv_system}"
    return assigns, f"{run} {_q(exe)} -s -S -B {VIEW}/boot.py{mod}".lstrip()


def write_prelude(path_env, loader, libs):
    """Shell functions that route interpreters to the pristine image; returns the runtime bash."""
    bash = resolve("/bin/bash") or resolve("/usr/bin/bash")
    sh = resolve("/bin/sh") or bash
    if bash is None:
        raise SetupError("the task image has no /bin/bash")
    run = f"{_q(loader)} --library-path {_q(':'.join(libs))}" if loader else ""
    lines = [
        "# Generated by ltenv: pristine interpreters for the verifier (see ltenv/sandbox/trusted.py).",
        f'bash() {{ {run} {_q(bash)} "$@"; }}',
        f'sh() {{ {run} {_q(sh)} "$@"; }}',
    ]
    names = ["python3", "python", "pytest", "py.test"]
    for d in path_env.split(":"):
        real = resolve(d) if d.startswith("/") else None
        if real:
            names += sorted(os.path.basename(p) for p in glob.glob(real + "/python3.[0-9]*"))
    defined = ["bash", "sh"]
    for name in dict.fromkeys(names):
        if name.endswith("-config") or name in defined:
            continue
        found = python_for(name, path_env)
        if found is None:
            continue
        assigns, command = pristine_python(found, run)
        lines.append(f'{name}() {{ {assigns} {command} "$@"; }}')
        defined.append(name)
    lines.append("export -f " + " ".join(defined) + " 2>/dev/null")
    with open(VIEW + "/prelude.sh", "w") as f:
        f.write("\n".join(lines) + "\n")
    return bash, [n for n in defined if n not in ("bash", "sh")]


def _shim_command(name, shown, target, path_env, loader, libs, argv0):
    """The busybox-sh line that runs pristine ``target`` for command ``name``; ``None`` to leave it out."""
    q = _q
    run = f"{q(loader)} --library-path {q(':'.join(libs))}"

    def python(found):
        if found is None:
            return None
        assigns, command = pristine_python(found, run)
        return f'export {assigns}\nexec {command} "$@"'

    if name.startswith("python") or name in ("pytest", "py.test"):
        return python(python_for(name, path_env))
    interp = elf_interpreter(target)
    as_name = f"--argv0 {q(name)} " if argv0 else ""
    if interp == "":
        return f'exec {q(target)} "$@"'
    if interp is not None:
        return f'exec {run} {as_name}{q(target)} "$@"' if resolve(interp) == loader else None
    found = shebang(target, path_env)
    if found is None:
        return None
    named, real, args = found
    if os.path.basename(real).startswith("python"):
        # A Python console script (pip, a tool): the interpreter its #! line names, through boot.py, the
        # script first (not the first python3 on PATH: an image may hold two Pythons).
        py = python(python_at(named, real))
        return py.replace('"$@"', f'{q(shown)} "$@"') if py else None
    return " ".join(["exec", run, q(real), *(q(a) for a in args[:1]), q(shown), '"$@"'])


def write_shims(path_env, loader, libs, out_fd):
    """One busybox-sh script per command on the image's PATH, running the pristine program (first on PATH
    wins), written into the directory ``out_fd``. Returns how many were written."""
    with open(loader, "rb") as f:
        argv0 = b"--argv0" in f.read()
    written = 0
    seen = set()
    for d in path_env.split(":"):
        real_dir = resolve(d) if d.startswith("/") else None
        if not real_dir or not os.path.isdir(real_dir):
            continue
        for name in sorted(os.listdir(real_dir)):
            if name in seen or "'" in name or "/" in name:
                continue
            shown = d.rstrip("/") + "/" + name
            target = resolve(shown)
            if not target or not os.path.isfile(target) or not os.access(target, os.X_OK):
                continue
            seen.add(name)
            try:
                cmd = _shim_command(name, shown, target, path_env, loader, libs, argv0)
            except OSError:
                cmd = None
            if cmd is None:
                continue
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755, dir_fd=out_fd)
            os.write(fd, f"#!{VIEW}/busybox sh\n{cmd}\n".encode())
            os.fchmod(fd, 0o755)
            os.close(fd)
            written += 1
    return written


def _shims(job, busybox_tree, cache, loader, libs):
    """``/.ltenv-verifier/bin``: the command shims, from the host's cache when this image's are there (one
    mount), else written now and stored in the cache for the next verification. Returns how many there are."""
    os.mkdir(VIEW + "/bin")
    if busybox_tree < 0 or not loader:
        return 0
    image_path = job["env"].get("PATH", "/usr/local/bin:/usr/bin:/bin")
    tree, parent_fd, key = cache
    if tree >= 0:
        _check(
            libc.syscall(SYS_MOVE_MOUNT, tree, b"", -100, (VIEW + "/bin").encode(), MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount(command shims)",
        )
        return len(os.listdir(VIEW + "/bin"))
    out_fd = os.open(VIEW + "/bin", os.O_RDONLY | os.O_DIRECTORY)
    try:
        count = write_shims(image_path, loader, libs, out_fd)
        if parent_fd >= 0:  # store a copy for the next verification of this image (atomically: a rename)
            tmp = f".tmp-{key}-{os.getpid()}"
            try:
                os.mkdir(tmp, 0o755, dir_fd=parent_fd)
                tmp_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent_fd)
                for name in os.listdir(out_fd):
                    with open(name, "rb", opener=lambda p, fl: os.open(p, fl, dir_fd=out_fd)) as f:
                        data = f.read()
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755, dir_fd=tmp_fd)
                    os.write(fd, data)
                    os.fchmod(fd, 0o755)
                    os.close(fd)
                os.close(tmp_fd)
                os.rename(tmp, key, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            except OSError:
                pass
        return count
    finally:
        os.close(out_fd)


# ---------------------------------------------------------------------------------------------- process control


def _set_caps(keep, last_cap):
    for cap in range(last_cap + 1):
        if cap not in keep:
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    data = (_CapData * 2)()
    for cap in keep:
        word, bit = divmod(cap, 32)
        for field in ("effective", "permitted", "inheritable"):
            setattr(data[word], field, getattr(data[word], field) | (1 << bit))
    _check(libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")


def _view_pids(own_mnt):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():  # this process is not in the sandbox's pid namespace: never listed here
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == own_mnt:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _kill_in_view(pid):
    """SIGKILL process ``pid`` of the view's /proc. Its numbers are the sandbox's pid namespace's, not ours (we
    joined it for our children only), so never os.kill: signal the /proc/PID directory (pidfd_send_signal)."""
    try:
        fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        libc.syscall(SYS_PIDFD_SEND_SIGNAL, fd, signal.SIGKILL, None, 0)
    finally:
        os.close(fd)


def _kill_view(own_mnt):
    """SIGKILL every process in this private view but this one (they can only have come from the program)."""
    for _ in range(50):
        pids = _view_pids(own_mnt)
        if not pids:
            return
        for pid in pids:
            _kill_in_view(pid)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.005)


def _collect(paths):
    """The regular files among ``paths`` (files, or folders walked), each up to MAX_FILE bytes."""
    found = []
    for p in paths:
        if os.path.isdir(p) and not os.path.islink(p):
            found += [os.path.join(root, n) for root, _dirs, names in os.walk(p) for n in names]
        else:
            found.append(p)
    files = {}
    for p in found:
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            files[p] = f.read(MAX_FILE).hex()
    return files


def main():
    with os.fdopen(int(sys.argv[1]), "rb") as f:
        job = json.loads(f.read())
    result_fd = int(sys.argv[2])
    os.set_inheritable(result_fd, False)
    payload = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    pid = int(job["pid"])
    # The host's /proc, kept open: once in the sandbox's mount namespace, /proc/self no longer names us.
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        ns = {
            n: os.open(f"/proc/{pid}/ns/{n}", os.O_RDONLY | os.O_CLOEXEC)
            for n in (*NAMESPACES, "user", "mnt")
        }
    except OSError as e:
        return _fail(result_fd, f"the sandbox is gone ({e})", 125)
    try:
        busybox_tree = -1
        if job.get("busybox"):
            busybox_tree = _check(
                libc.syscall(SYS_OPEN_TREE, -100, job["busybox"].encode(), OPEN_TREE_CLONE | os.O_CLOEXEC),
                "open_tree(busybox)",
            )
        cache = (-1, -1, "")
        shims = job.get("shims") or {}
        if shims.get("dir") and os.path.isdir(os.path.join(shims["dir"], shims["key"])):
            tree = libc.syscall(
                SYS_OPEN_TREE,
                -100,
                os.path.join(shims["dir"], shims["key"]).encode(),
                OPEN_TREE_CLONE | os.O_CLOEXEC,
            )
            cache = (tree if tree >= 0 else -1, -1, shims["key"])
        if cache[0] < 0 and shims.get("dir"):
            try:
                cache = (-1, os.open(shims["dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), shims["key"])
            except OSError:
                pass
        for procs in job.get("cgroup_procs", []):
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        filter_prog = b""
        if job.get("seccomp"):
            with open(job["seccomp"], "rb") as f:
                filter_prog = f.read()
        own_userns = os.fstat(ns["user"]).st_ino == os.stat("self/ns/user", dir_fd=host_proc).st_ino
        scratch = job["scratch"]
        layers = job["layers"]
        if not own_userns and job.get("idmap"):
            # The sandbox's user namespace maps its root to unprivileged host ids: the pristine image is an
            # overlay of idmapped layers (made here, as host root), so its files belong to the sandbox's root.
            lowers = [idmapped_tree(layer, ns["user"]) for layer in layers]
            tree = overlay(lowers, readonly=True)
            for fd in lowers:
                os.close(fd)
        else:
            tree = -1
        if not own_userns:
            _check(libc.setns(ns["user"], 0), "joining the sandbox's user namespace")
            become_root()
        if tree < 0:
            # The pristine image: a read-only overlay of its layers, mounted in a namespace of our own and
            # taken along as a detached tree into the sandbox's (its host paths are not visible there).
            _check(libc.unshare(CLONE_NEWNS), "unshare(mount)")
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            if len(layers) == 1:
                _mount(layers[0], scratch, None, MS_BIND | MS_REC)
                _mount(None, scratch, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
            else:
                _mount("overlay", scratch, "overlay", MS_RDONLY, "lowerdir=" + ":".join(layers))
            tree = _check(
                libc.syscall(
                    SYS_OPEN_TREE, -100, scratch.encode(), OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC
                ),
                "open_tree(pristine image)",
            )
        _check(libc.setns(ns["mnt"], 0), "joining the sandbox's mount namespace")
        _check(libc.unshare(CLONE_NEWNS), "unshare(mount) in the sandbox")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        # The view's root: a tmpfs on a mount point under the read-only control mount (the agent can neither
        # move nor remove it); everything after goes through a descriptor of it, not through paths.
        _mount("tmpfs", job["mount_point"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64m")
        top_fd = os.open(job["mount_point"], os.O_RDONLY | os.O_DIRECTORY)
        os.fchdir(top_fd)  # paths below are relative to the view's root (/proc/self is not ours to use here)
        top = "."
        skip = {"tests", "logs", VIEW.lstrip("/")}
        composite = {"etc": {"ld.so.preload"}}
        _build_view(top, skip, composite)
        os.mkdir(top + "/logs")
        if os.path.isdir("/logs") and not os.path.islink("/logs"):
            for sub in sorted(os.listdir("/logs")):
                if sub != "verifier":
                    _bind_entry(f"/logs/{sub}", f"{top}/logs/{sub}")
        for d in ("/tests", "/logs/verifier", VIEW + "/tmp", *job.get("fresh_dirs", [])):
            path = top + d
            if not os.path.isdir(path):
                os.makedirs(path, exist_ok=True)
            mode = "1777" if d == VIEW + "/tmp" else "755"
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=1g")
        os.makedirs(top + IMAGE)
        _check(
            libc.syscall(SYS_MOVE_MOUNT, tree, b"", -100, (top + IMAGE).encode(), MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount(pristine image)",
        )
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
            tar.extractall(top, filter="data")
        for name, text in job.get("view_files", {}).items():
            with open(f"{top}{VIEW}/{name}", "w") as f:
                f.write(text)
        if busybox_tree >= 0:
            os.close(os.open(f"{top}{VIEW}/busybox", os.O_CREAT | os.O_WRONLY, 0o755))
            _check(
                libc.syscall(SYS_MOVE_MOUNT, busybox_tree, b"", -100, f"{top}{VIEW}/busybox".encode(), 4),
                "move_mount(busybox)",
            )
        os.fchdir(top_fd)
        os.chroot(".")
        os.chdir("/")
        os.close(top_fd)
        shell = resolve("/bin/bash") or resolve("/usr/bin/bash") or resolve("/bin/sh")
        interp = elf_interpreter(shell) if shell else None
        if interp is None:
            raise SetupError("the task image as built has no /bin/bash (or it is not a program)")
        loader = resolve(interp) if interp else ""
        if interp and not loader:
            raise SetupError(f"the task image as built has no dynamic loader {interp}")
        libs = library_dirs()
        image_path = job["env"].get("PATH", "/usr/local/bin:/usr/bin:/bin")
        bash, shims = write_prelude(image_path, loader, libs)
        commands = _shims(job, busybox_tree, cache, loader, libs)
        with open(VIEW + "/pytest.ini", "w") as f:
            f.write("[pytest]\n")
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        for name in (*NAMESPACES,):
            if os.fstat(ns[name]).st_ino != os.stat(f"self/ns/{name}", dir_fd=host_proc).st_ino:
                _check(libc.setns(ns[name], 0), f"joining the sandbox's {name} namespace")
    except (SetupError, OSError) as e:
        return _fail(result_fd, f"setting up the verifier's view failed: {e}", 125)

    report_r, report_w = os.pipe()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    env = dict(job["env"])
    env["LTENV_REPORT_FD"] = str(report_w)
    env.setdefault("TMPDIR", VIEW + "/tmp")  # the tests' temporary files: not in a folder the agent prepared
    if commands:
        env["PATH"] = f"{VIEW}/bin:" + env.get("PATH", "")
    argv = [
        bash,
        "--noprofile",
        "--norc",
        "-c",
        f'. {VIEW}/prelude.sh; . "$0" "$@"',
        job["script"],
        *job["args"],
    ]
    if loader:
        argv = [loader, "--library-path", ":".join(libs), *argv]
    child = os.fork()
    if child == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.setsid()
            os.set_inheritable(report_w, True)
            try:
                os.chdir(job["workdir"] or "/")
            except OSError:
                os.chdir("/")
            _set_caps(set(job["caps"]), last_cap)
            libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            if filter_prog:
                load_seccomp(filter_prog)  # the agent's syscall filter: the verifier is confined the same way
            os.execve(argv[0], argv, env)
        except BaseException as e:
            os.write(2, f"ltenv-verifier: cannot start {argv[0]}: {e}\n".encode())
        os._exit(127)
    os.close(report_w)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    own_mnt = os.readlink("self/ns/mnt", dir_fd=host_proc)
    deadline = time.monotonic() + float(job["timeout"])
    timed_out = False

    def _term(signum, frame):
        nonlocal deadline
        deadline = 0.0

    signal.signal(signal.SIGTERM, _term)
    os.set_blocking(report_r, False)
    reports = b""
    status = None
    while status is None:
        try:
            chunk = os.read(report_r, 65536)
            if chunk and len(reports) < MAX_FILE:
                reports += chunk
        except (BlockingIOError, InterruptedError):
            pass
        try:
            done, st = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            done, st = child, 0
        if done == child:
            status = os.waitstatus_to_exitcode(st)
            break
        if time.monotonic() >= deadline:
            timed_out = True
            _kill_view(own_mnt)
        time.sleep(0.002)
    _kill_view(own_mnt)
    while True:
        try:
            chunk = os.read(report_r, 65536)
        except (BlockingIOError, InterruptedError):
            break
        if not chunk:
            break
        reports += chunk
    code = 128 - status if status < 0 else status
    result = {
        "exit_code": code,
        "timed_out": timed_out,
        "files": _collect(job.get("collect", [])),
        "reports": _parse_reports(reports),
        "runtime": {"bash": bash, "loader": loader, "python_shims": shims, "pristine_commands": commands},
    }
    os.write(result_fd, json.dumps(result).encode())
    os._exit(0)


def _parse_reports(raw):
    out = []
    for line in raw.decode(errors="replace").splitlines()[:100]:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def _fail(fd, message, code):
    try:
        os.write(fd, json.dumps({"error": message, "exit_code": code}).encode())
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
