"""Sandboxes die with their driver: a watchdog process that cleans up after a driver killed without warning.

The driving process starts one janitor (``python -I -S janitor.py``, stdlib only) the first time it starts a
sandbox, and keeps the write end of a pipe to it. Each sandbox is registered as one JSON line when it starts
and unregistered when it closes. When the pipe reaches end of file — the driver exited, normally or by
SIGKILL — the janitor tears down whatever is still registered: it kills every process in the sandbox's cgroups
and the processes it names (checked by start time, so a reused pid is never touched), removes Docker
containers, unmounts the sandbox's root, deletes its folder and cgroups, then exits.

It runs in a session of its own (a Ctrl-C in the driver's terminal does not reach it) and ignores SIGHUP,
SIGINT and SIGTERM until its work is done.

Messages (one JSON object per line):

* ``{"add": KEY, "procs": [[PID, START], ...], "cgroup": NAME, "mounts": [PATH, ...], "dir": PATH}``
  (mounts are detached in order, before the folder is deleted)
* ``{"add": KEY, "container": ID}`` (a Docker container, removed with ``docker rm -f``)
* ``{"add": KEY, "containers": [ID, ...], "network": NAME}`` (a multi-service episode's services and its
  network: the containers are removed, then the network; the same KEY sent again replaces the entry)
* ``{"del": KEY}``
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time

MNT_DETACH = 2


def proc_start(pid):
    """The start time of process ``pid`` (clock ticks since boot), or ``None`` if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat[stat.rfind(b")") + 2 :].split()[19])
    except (IndexError, ValueError):
        return None


def _cgroups(name):
    """The sandbox's cgroups (every controller), through the sandbox package's own code: this file runs as a
    script, so it is loaded as a sibling module (stdlib only)."""
    if not name:
        return None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from limits import CgroupLimits

    return CgroupLimits.attach(name)


def clean(entry):
    """Tear down one registered sandbox (best effort: each step runs even if an earlier one failed)."""
    cgroups = _cgroups(entry.get("cgroup"))
    if cgroups is not None:
        cgroups.kill_all()
    for pid, start in entry.get("procs", []):
        if start is not None and proc_start(pid) == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    containers = [entry["container"]] if entry.get("container") else list(entry.get("containers") or [])
    if containers:
        _docker("rm", "-f", *containers)
    if entry.get("network"):
        for _ in range(10):  # the engine may still be detaching a container being removed
            if _docker("network", "rm", entry["network"]):
                break
            time.sleep(0.2)
    time.sleep(0.05)  # let the killed processes release the mount
    libc = ctypes.CDLL(None, use_errno=True)
    for mount in [entry["mount"]] if entry.get("mount") else entry.get("mounts", []):
        libc.umount2(mount.encode(), MNT_DETACH)
    if entry.get("dir"):
        shutil.rmtree(entry["dir"], ignore_errors=True)
    if cgroups is not None:
        cgroups.destroy()


def _docker(*args):
    """Run the docker CLI (best effort); whether it succeeded."""
    try:
        return (
            subprocess.run(
                ["docker", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


_client = None  # (pid of the driver that started it, Popen)
_client_lock = None


def _send(msg):
    """Write one message to this process's janitor, starting it first if needed. Best effort: a sandbox
    still works (and ``ltenv gc`` still cleans up) if the janitor cannot run."""
    global _client, _client_lock
    import threading

    if _client_lock is None:
        _client_lock = threading.Lock()
    line = (json.dumps(msg) + "\n").encode()
    with _client_lock:
        if _client is None or _client[0] != os.getpid() or _client[1].poll() is not None:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                return
            _client = (os.getpid(), proc)
        with contextlib.suppress(OSError, ValueError):
            _client[1].stdin.write(line)
            _client[1].stdin.flush()


def register(key, **entry):
    """Have the janitor tear this sandbox down if the driver dies before :func:`unregister`."""
    _send({"add": key, **entry})


def unregister(key):
    _send({"del": key})


def main():
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    live = {}
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "add" in msg:
            live[msg["add"]] = msg
        elif "del" in msg:
            live.pop(msg["del"], None)
    # Networks last: the engine removes one only once every container on it (the agent's too) is gone.
    for entry in sorted(live.values(), key=lambda e: bool(e.get("network"))):
        clean(entry)


if __name__ == "__main__":
    main()
