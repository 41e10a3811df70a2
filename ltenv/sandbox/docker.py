"""The Docker backend: one container per episode, driven through the Engine API (``docker`` SDK).

Per episode:

* a container starts from the task image with the task's cpus / memory / pids limits, no network unless
  the task allows internet, an init process that reaps orphans, and a keeper (``sleep <lifetime>``) as its
  command, so an abandoned container stops by itself when the episode's lifetime is over;
* the agent's shell is *one* exec with a TTY whose attached socket is read and written directly: a command
  costs a round trip on that socket, never an API call;
* other programs (the verifier, file copies) run as exec's with stdin / stdout / stderr multiplexed on
  the attached socket, bounded output and a timeout that kills the program's whole process tree;
* every container carries ``ltenv.*`` labels naming its owner process, so :func:`gc_containers`
  (``ltenv gc``) removes the containers of processes that died without closing them;
* between create and start, the container's writable layer and its engine-managed files (``/etc/hosts``...)
  move onto a filesystem of the task's ``storage_mb`` (:func:`ltenv.sandbox.disk.attach_container`), so a
  runaway write ends with ``ENOSPC`` inside instead of filling the engine's disk. That needs the engine on
  this machine, in our mount namespace, with the overlay2 driver, and this process as root; elsewhere the
  container runs without a disk limit, after one warning.

Works against any Engine-API compatible socket (``DOCKER_HOST``), e.g. Podman's
``unix:///run/podman/podman.sock``. Nothing here assumes the engine runs on this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import shlex
import signal
import socket
import struct
import tarfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltenv.errors import SandboxError
from ltenv.fdwait import wait_fds
from ltenv.output import HeadTailBuffer
from ltenv.sandbox import disk, janitor, netguard
from ltenv.sandbox.base import DEFAULT_ENV, ExecResult, PtyProcess, PtyRequest, Sandbox, SandboxSpec

if TYPE_CHECKING:
    from ltenv.sandbox.compose import ServiceGroup
    from ltenv.sandbox.images import ImageConfig

log = logging.getLogger(__name__)

LABEL = "ltenv.managed"
_HOST = socket.gethostname()
_live: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()
_client_lock = threading.Lock()
_api = None
# File mode bits of Go's os.FileMode, as the archive API reports them.
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)

# Kill a process tree inside the container using only a POSIX shell and /proc (no procps in many images).
# $1: root pid; $2: "children" to spare the root. Prints how many processes it killed. The tree is stopped
# first (a stopped process cannot fork) and walked again until nothing new shows up, then killed.
_KILL_TREE = r"""
root=$1 mode=$2 stopped= spared= round=0
while [ $round -lt 8 ]; do
  round=$((round + 1)) map=
  for d in /proc/[0-9]*; do
    read -r l 2>/dev/null <"$d/stat" || continue
    r=${l##*) }; r=${r#* }; map="$map ${d#/proc/}:${r%% *}"
  done
  todo=$root found= level=0
  while [ -n "$todo" ]; do
    next=
    for p in $todo; do
      for e in $map; do
        [ "${e#*:}" = "$p" ] || continue
        case " $root $found $next " in *" ${e%%:*} "*) ;; *) next="$next ${e%%:*}" ;; esac
      done
    done
    level=$((level + 1))
    # a shell's own children are killed, never stopped (job control would report a stopped job)
    if [ $level = 1 ] && [ "$mode" = children ]; then
      for p in $next; do case " $spared " in *" $p "*) ;; *) spared="$spared $p" ;; esac; done
    fi
    found="$found $next"; todo=$next
  done
  [ "$mode" = children ] || found="$root $found"
  new=
  for p in $found; do case " $stopped $spared " in *" $p "*) ;; *) new="$new $p" ;; esac; done
  [ -n "${new# }" ] || [ $round = 1 ] || break
  [ -z "${new# }" ] || kill -STOP $new 2>/dev/null
  stopped="$stopped $new"
done
set -- $spared $stopped
[ $# = 0 ] || kill -9 "$@" 2>/dev/null
echo $#
"""

# Print the exec's pid inside the container (so it can be killed on timeout), then run the program.
_SHIM = 'printf "%s\\n" "$$"; exec "$@"'
# Same for a terminal: echo off while the handshake runs, wait for the go line, restore the echo setting.
_PTY_SHIM = 'stty -echo 2>/dev/null; printf "%s\\n" "$$"; read -r _ltenv_go; {echo}exec "$@"'


def api_client():
    """A low-level Docker API client shared by every sandbox of this process (thread-safe for our use)."""
    global _api
    with _client_lock:
        if _api is None:
            from ltenv.sandbox.images import docker_client

            _api = docker_client().api
        return _api


def _owner_label() -> str:
    """``host:pid:starttime``: identifies this process even after its pid is reused."""
    return f"{_HOST}:{os.getpid()}:{_proc_start(os.getpid())}"


def _proc_start(pid: int) -> str:
    start = janitor.proc_start(pid)
    return "?" if start is None else str(start)


def _owner_alive(owner: str) -> bool | None:
    """Whether the process named by an owner label lives; ``None`` if it belongs to another host."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != _HOST or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_start(int(pid)) == start


def _raw_socket(sockio) -> tuple[socket.socket, bytes]:
    """The socket under an attached exec stream, plus any bytes the HTTP layer already buffered."""
    sock = getattr(sockio, "_sock", sockio)
    buffered = b""
    resp = getattr(sockio, "_response", None)
    fp = getattr(getattr(getattr(resp, "raw", None), "_fp", None), "fp", None)
    if fp is not None and hasattr(fp, "read1"):
        sock.setblocking(False)
        try:
            buffered = fp.read1(1 << 16) or b""
        except (BlockingIOError, OSError, ValueError):
            buffered = b""
        finally:
            sock.setblocking(True)
    return sock, buffered


def _api_error(e: Exception) -> str:
    expl = getattr(e, "explanation", None)
    return str(expl or e).strip()


class DockerPty(PtyProcess):
    """The agent's shell: one exec with a TTY; ``fd`` is its attached socket."""

    def __init__(self, box: DockerSandbox, exec_id: str, sockio, sock: socket.socket, pid: int):
        self.box = box
        self.exec_id = exec_id
        self._sockio = sockio  # keeps the HTTP response (and so the socket) alive
        self.sock = sock
        self.fd = sock.fileno()
        self.pid = pid
        self._status: int | None = None
        self._closed = False

    def poll(self) -> int | None:
        if self._status is not None:
            return self._status
        try:
            info = self.box.api.exec_inspect(self.exec_id)
        except Exception:
            self._status = -1  # the container (and so the exec) is gone
            return self._status
        if info.get("Running"):
            return None
        self._status = int(info.get("ExitCode") or 0)
        return self._status

    def resize(self, rows: int, cols: int) -> None:
        with contextlib.suppress(Exception):
            self.box.api.exec_resize(self.exec_id, height=rows, width=cols)

    def kill_children(self) -> int:
        return self.box._kill_tree(self.pid, children_only=True)

    def kill(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._status is None and self.box.alive:
            self.box._kill_tree(self.pid, children_only=False)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self._sockio.close()


class DockerSandbox(Sandbox):
    """A container for one episode.

    Example:
        >>> tag = ImageStore().build(task)                                   # doctest: +SKIP
        >>> with DockerSandbox(tag, SandboxSpec(), task_name=task.name) as sb:  # doctest: +SKIP
        ...     print(sb.exec(["echo", "hi"]).stdout)
        b'hi\\n'
    """

    def __init__(
        self,
        image: str,
        spec: SandboxSpec | None = None,
        *,
        image_config: ImageConfig | None = None,
        task_name: str = "",
        services: ServiceGroup | None = None,
    ):
        self.image = image
        self.spec = spec or SandboxSpec()
        self.task_name = task_name
        self.services = services
        """The services of a multi-service task (:mod:`ltenv.sandbox.compose`), started before the container."""
        self.image_config = image_config
        self.container_id: str | None = None
        self._init_pid: int | None = None  # the container init's host pid, once looked up
        self.primary_pty: DockerPty | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._exit_reason: str | None = None
        self._disk: disk.Scratch | None = None
        self._limit_cgroup = None  # the container's cgroup, where this machine can read it
        self._limit_events: dict[str, int] = {}
        self.api = api_client()

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, pty: PtyRequest | None = None) -> None:
        if self.container_id is not None:
            return
        _gc_once()
        if self.image_config is None:
            from ltenv.sandbox.images import ImageConfig

            try:
                self.image_config = ImageConfig.from_docker(self.api.inspect_image(self.image).get("Config"))
            except Exception as e:
                raise SandboxError(f"image {self.image} is not available: {_api_error(e)}") from None
        # Defaults go under the image's environment; the spec's extras go over it.
        env = {k: v for k, v in DEFAULT_ENV.items() if k not in self.image_config.env}
        env.update(self.spec.env)
        lifetime = int(self.spec.lifetime_sec or 24 * 3600)
        now = int(time.time())
        labels = {
            LABEL: "1",
            "ltenv.owner": _owner_label(),
            "ltenv.task": self.task_name,
            "ltenv.created": str(now),
            "ltenv.expires": str(now + lifetime + 60),
        }
        host_config: dict[str, Any] = {
            "mem_limit": f"{self.spec.memory_mb}m",
            "memswap_limit": f"{self.spec.memory_mb}m",
            "nano_cpus": int(self.spec.cpus * 1e9),
            "pids_limit": self.spec.pids_limit,
            "network_mode": netguard.internet_network(self.api) if self.spec.allow_internet else "none",
            "init": True,
        }
        ctl = _local_ctl_dir()
        if ctl is not None:  # the verifier's private view mounts its root under it (see run_trusted)
            host_config["binds"] = {str(ctl): {"bind": CTL_MOUNT, "mode": "ro"}}
        _live.add(self)
        try:
            networking = None
            if self.services is not None:  # its services first, on a network of the episode's own
                host_config["network_mode"] = self.services.start(self.api, labels)
                self.services.wait_for_agent()
                networking = self.services.endpoint(self.api)
            self.container_id = self._create(env, labels, host_config, lifetime, networking)
            self._disk = self._limit_disk()
            # The container dies with this process: if it is killed, its janitor removes the container.
            janitor.register(
                self.container_id,
                container=self.container_id,
                mounts=[str(m) for m in (self._disk.mounts if self._disk else [])],
            )
            self.api.start(self.container_id)
            if self._disk is not None:
                self._check_disk()
            if pty is not None:
                self.primary_pty = self.spawn_pty(
                    pty.argv, env=pty.env, rows=pty.rows, cols=pty.cols, echo=pty.echo
                )
        except BaseException:
            self.close()
            raise

    def _limit_disk(self) -> disk.Scratch | None:
        """Move the created container's writable layer and files onto a filesystem of ``storage_mb``
        (``None`` where that cannot be done here, after one warning)."""
        try:
            return limit_container_disk(self.api, str(self.container_id), self.spec.storage_mb)
        except SandboxError as e:
            raise self._dead("inspecting the new container", e.__cause__ or e) from None

    def _check_disk(self) -> None:
        """Once per process: the started container's root must be on the filesystem made for it (an engine in
        another mount namespace would not see it, and the container would write to the engine's disk)."""
        global _disk_verified
        if _disk_verified or self._disk is None:
            return
        pid = self._host_pid()
        try:
            seen, made = os.statvfs(f"/proc/{pid}/root"), os.statvfs(self._disk.path / "diff")
            ok = pid > 0 and (seen.f_blocks, seen.f_files) == (made.f_blocks, made.f_files)
        except OSError:
            ok = False
        if ok:
            _disk_verified = True
            return
        _disk_off.append("the Docker engine does not see this process's mounts (another mount namespace)")
        disk.warn_unlimited(_disk_off[0])

    def _create(
        self, env: dict[str, str], labels: dict[str, str], host_config: dict, lifetime: int, networking=None
    ) -> str:
        workdir = self.spec.workdir or self.image_config.workdir or "/"
        kwargs = dict(
            networking_config=networking,
            image=self.image,
            command=["sleep", str(lifetime)],
            entrypoint=[],
            hostname=self.spec.hostname,
            environment=env,
            working_dir=workdir,
            labels=labels,
            detach=True,
        )
        try:
            try:
                hc = self.api.create_host_config(**host_config)
                return self.api.create_container(host_config=hc, **kwargs)["Id"]
            except Exception as e:
                if "init" not in str(e).lower():
                    raise
                # An engine without an init binary: run without one (the keeper still reaps nothing, so
                # zombies of killed background jobs linger until the episode ends; harmless).
                host_config = {k: v for k, v in host_config.items() if k != "init"}
                hc = self.api.create_host_config(**host_config)
                return self.api.create_container(host_config=hc, **kwargs)["Id"]
        except Exception as e:
            raise SandboxError(f"creating a container from {self.image} failed: {_api_error(e)}") from None

    @property
    def alive(self) -> bool:
        if self._closed or self.container_id is None:
            return False
        try:
            state = self.api.inspect_container(self.container_id)["State"]
        except Exception:
            self._exit_reason = "the container was removed"
            return False
        if state.get("Running") and not state.get("Paused"):
            return True
        self._exit_reason = _describe_exit(state)
        return False

    def exit_reason(self) -> str:
        """Why the container is not running (after :attr:`alive` returned ``False``)."""
        return self._exit_reason or "the container is not running"

    def resource_events(self) -> dict[str, int]:
        """Limit hits so far (see :meth:`Sandbox.resource_events`), from the container's cgroup where this
        machine can read it (cgroupfs or systemd driver). Once the container is gone (its cgroup with it)
        and :attr:`alive` has seen it stop, the engine's ``State.OOMKilled`` counts as one OOM kill, unless
        one was already counted: the flag stays set for a container's whole life, so it cannot tell an old
        kill from the one that ended it."""
        from ltenv.sandbox.limits import CgroupLimits

        cid = self.container_id or ""
        if self._limit_cgroup is None and cid and not self._closed:
            self._limit_cgroup = CgroupLimits.find([f"docker/{cid}", f"system.slice/docker-{cid}.scope"])
        events = self._limit_cgroup.events() if self._limit_cgroup is not None else None
        if events is not None:
            self._limit_events.update(events)
        elif self._exit_reason is not None and not self._limit_events.get("memory"):
            with contextlib.suppress(Exception):
                if self.api.inspect_container(cid)["State"].get("OOMKilled"):
                    return {**self._limit_events, "memory": 1}
        return dict(self._limit_events)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.primary_pty is not None:
            with contextlib.suppress(OSError):
                self.primary_pty.sock.close()
            self.primary_pty = None
        if self.container_id is not None:
            try:
                self.api.remove_container(self.container_id, force=True)
            except Exception as e:
                if "no such container" not in str(e).lower() and "404" not in str(e):
                    log.warning("removing container %s failed: %s", self.container_id[:12], _api_error(e))
        if self._disk is not None:
            self._disk.release()  # the engine unmounted it already; an engine that did not leaves nothing either
            self._disk = None
        if self.container_id is not None:
            janitor.unregister(self.container_id)
        if self.services is not None:
            self.services.close()
        _live.discard(self)

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    @property
    def env(self) -> dict[str, str]:
        """The container's configured environment (defaults, the image's, the spec's), never the agent's."""
        env = dict(DEFAULT_ENV)
        env.update(self.image_config.env if self.image_config else {})
        env.update(self.spec.env)
        return env

    def trusted_unavailable(self) -> str | None:
        if _local_ctl_dir() is None:
            return "the Docker engine is not on this machine, or this process is not root"
        if self.container_id is None:
            return "the container is not running"
        pid = self._host_pid()
        if not pid or not os.path.exists(f"/proc/{pid}/ns/mnt"):
            return "the container's processes are not visible from here (another pid namespace or machine)"
        return None

    def _host_pid(self) -> int:
        try:
            return int(self.api.inspect_container(self.container_id)["State"].get("Pid") or 0)
        except Exception:
            return 0

    def run_trusted(self, job):
        from ltenv.sandbox.images import lower_dirs
        from ltenv.sandbox.trusted_run import CAP_WAKE_ALARM, DOCKER_DEFAULT_CAPS, VIEW_MOUNT, launch

        why = self.trusted_unavailable()
        if why:
            raise SandboxError(f"no private verifier view: {why}")
        layers = _pristine_layers(self.image)
        ctl = _local_ctl_dir()
        assert ctl is not None and self.container_id is not None
        pid = self._host_pid()
        try:
            return launch(
                job,
                pid=pid,
                layers=lower_dirs(layers),
                scratch=ctl.parent / f"docker-view-{self.container_id[:12]}-{os.getpid()}",
                mount_point=f"{CTL_MOUNT}/{VIEW_MOUNT}",
                caps=(*DOCKER_DEFAULT_CAPS, CAP_WAKE_ALARM),
                cgroup_procs=_cgroup_procs(pid),
            )
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(ctl.parent / f"docker-view-{self.container_id[:12]}-{os.getpid()}")

    # ------------------------------------------------------------------ running things inside
    def _dead(self, during: str, e: Exception | None = None) -> SandboxError:
        if not self.alive:
            return SandboxError(f"{during} failed: the sandbox is dead ({self.exit_reason()})")
        return SandboxError(f"{during} failed: {_api_error(e) if e else 'unknown error'}")

    def _exec_start(
        self,
        argv: list[str],
        *,
        tty: bool,
        stdin: bool,
        env: dict[str, str] | None,
        workdir: str | None,
    ) -> tuple[str, Any, socket.socket, bytes]:
        if self._closed or self.container_id is None:
            raise SandboxError("sandbox is closed" if self._closed else "sandbox not started")
        try:
            exec_id = self.api.exec_create(
                self.container_id,
                argv,
                stdin=stdin,
                tty=tty,
                environment=env or None,
                workdir=workdir or self.spec.workdir,
            )["Id"]
            sockio = self.api.exec_start(exec_id, tty=tty, socket=True)
        except Exception as e:
            raise self._dead(f"running {shlex.join(argv)[:200]}", e) from None
        sock, buffered = _raw_socket(sockio)
        return exec_id, sockio, sock, buffered

    def exec(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        max_output: int = 1 << 20,
    ) -> ExecResult:
        t0 = time.monotonic()
        exec_id, sockio, sock, buffered = self._exec_start(
            ["/bin/sh", "-c", _SHIM, "sh", *argv],
            tty=False,
            stdin=stdin is not None,
            env=env,
            workdir=workdir,
        )
        out, err = HeadTailBuffer(max_output), HeadTailBuffer(max(4096, max_output // 4))
        demux = _Demux(buffered)
        pid: int | None = None
        head = b""
        pending = memoryview(stdin or b"")
        writing = stdin is not None
        timed_out = False
        deadline = None if timeout is None else t0 + timeout
        try:
            if writing and not pending:
                sock.shutdown(socket.SHUT_WR)
                writing = False
            eof = False
            while not eof:
                for stream, data in demux.frames():
                    if stream == 2:
                        err.write(data)
                    elif pid is None:  # the shim's first line is its pid
                        head += data
                        if b"\n" in head:
                            line, _, rest = head.partition(b"\n")
                            pid = int(line) if line.strip().isdigit() else -1
                            out.write(rest)
                    else:
                        out.write(data)
                wait = 0.5 if deadline is None else deadline - time.monotonic()
                if wait <= 0:
                    timed_out = True
                    break
                r, w = wait_fds([sock], [sock] if writing else [], min(wait, 0.5))
                if w:
                    try:
                        n = sock.send(pending[:65536])
                        pending = pending[n:]
                    except (BrokenPipeError, ConnectionResetError):
                        pending = pending[:0]
                    if not pending:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)
                        writing = False
                if r:
                    try:
                        chunk = sock.recv(1 << 16)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        demux.feed(chunk)
                    else:
                        eof = True
            for stream, data in demux.frames():
                (err if stream == 2 else out).write(data)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(Exception):
                sockio.close()
        if timed_out:
            if pid and pid > 0:
                self._kill_tree(pid, children_only=False)
            return ExecResult(124, out.getvalue(), err.getvalue(), True, time.monotonic() - t0, out.dropped)
        code = self._exit_code(exec_id)
        if code is None:
            raise self._dead(f"running {shlex.join(argv)[:200]}")
        if pid is None and code == 0:
            out.write(head)
        return ExecResult(code, out.getvalue(), err.getvalue(), False, time.monotonic() - t0, out.dropped)

    def _exit_code(self, exec_id: str) -> int | None:
        for _ in range(200):
            try:
                info = self.api.exec_inspect(exec_id)
            except Exception:
                return None
            if not info.get("Running"):
                code = info.get("ExitCode")
                return None if code is None else int(code)
            time.sleep(0.005)
        return None

    def _kill_tree(self, pid: int, *, children_only: bool) -> int:
        """SIGKILL ``pid``'s descendants (and ``pid`` unless ``children_only``); returns how many.

        ``pid`` is a pid in the container's namespace. With a local engine the tree is found and killed from
        the host (the container's cgroup lists its processes; no ``exec``, nothing the agent can stall); with a
        remote engine a small script runs in the container, bounded by a deadline."""
        if self._closed or self.container_id is None:
            return 0
        if self._init_pid is None:  # fixed for the container's life; checked against its cgroup before use
            self._init_pid = self._host_pid() if _local_ctl_dir() is not None else 0
        host = self._init_pid
        if host > 0:
            killed = _kill_tree_from_host(host, self.container_id, pid, children_only=children_only)
            if killed is not None:
                return killed
        if getattr(_killing, "active", False):
            return 0  # the kill script itself timed out (exec kills on timeout): give up rather than recurse
        _killing.active = True
        try:
            res = self.exec(
                ["/bin/sh", "-c", _KILL_TREE, "sh", str(pid), "children" if children_only else "all"],
                timeout=15.0,
                workdir="/",
            )
        except Exception:
            return 0
        finally:
            _killing.active = False
        m = re.search(rb"(\d+)\s*$", res.stdout)
        return int(m.group(1)) if m else 0

    def spawn_pty(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        rows: int = 40,
        cols: int = 160,
        echo: bool = True,
    ) -> DockerPty:
        shim = _PTY_SHIM.replace("{echo}", "stty echo 2>/dev/null; " if echo else "")
        env = {"COLUMNS": str(cols), "LINES": str(rows), **(env or {})}
        exec_id, sockio, sock, buffered = self._exec_start(
            ["/bin/sh", "-c", shim, "sh", *argv], tty=True, stdin=True, env=env, workdir=None
        )
        try:
            head = buffered
            deadline = time.monotonic() + 30
            while b"\n" not in head:
                wait = deadline - time.monotonic()
                r, _ = wait_fds([sock], [], max(0.0, min(wait, 0.5)))
                if not r:
                    if wait <= 0 or not self.alive:
                        raise self._dead("starting a terminal")
                    continue
                chunk = sock.recv(4096)
                if not chunk:
                    raise self._dead(f"starting {shlex.join(argv)[:200]} on a terminal")
                head += chunk
            line = head.split(b"\n", 1)[0].strip()
            if not line.isdigit():
                raise SandboxError(f"starting a terminal failed: unexpected output {head[:200]!r}")
            pty = DockerPty(self, exec_id, sockio, sock, int(line))
            pty.resize(rows, cols)
            sock.sendall(b"\n")  # go: the program starts on a terminal of the right size
        except BaseException:
            with contextlib.suppress(OSError):
                sock.close()
            raise
        return pty

    # ------------------------------------------------------------------ files (Engine archive API)
    def _untar(self, data: bytes, target_dir: str) -> None:
        res = self.exec(["mkdir", "-p", target_dir], timeout=60, workdir="/")
        if not res.ok:
            raise SandboxError(f"copying into the sandbox at {target_dir} failed: {res.text.strip()[-400:]}")
        try:
            self.api.put_archive(self.container_id, target_dir, data)
        except Exception as e:
            raise self._dead(f"copying into the sandbox at {target_dir}", e) from None

    def get(self, path: str, *, max_bytes: int = 16 << 20) -> bytes | None:
        if self._closed or self.container_id is None:
            raise SandboxError("sandbox is closed")
        try:
            stream, stat = self.api.get_archive(self.container_id, path)
        except Exception as e:
            if getattr(getattr(e, "response", None), "status_code", None) == 404:
                return None
            raise self._dead(f"reading {path} from the sandbox", e) from None
        mode = int(stat.get("mode", 0))
        if mode & _GO_MODE_SYMLINK:  # resolve it inside the container, like every other path
            with contextlib.suppress(Exception):
                stream.close()
            return super().get(path, max_bytes=max_bytes)
        if mode & _GO_MODE_TYPE:  # a directory, device, fifo...: not a regular file
            with contextlib.suppress(Exception):
                stream.close()
            return None
        buf = io.BytesIO()
        for chunk in stream:
            buf.write(chunk)
            if buf.tell() > max_bytes + (1 << 20):
                break
        buf.seek(0)
        try:
            with tarfile.open(fileobj=buf, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        f = tar.extractfile(member)
                        return f.read(max_bytes) if f else b""
        except tarfile.TarError as e:
            raise SandboxError(f"reading {path} from the sandbox failed: {e}") from None
        return None


class _Demux:
    """Splits Docker's multiplexed attach stream (8-byte frame headers) into (stream, data) frames."""

    def __init__(self, initial: bytes = b""):
        self.buf = bytearray(initial)

    def feed(self, data: bytes) -> None:
        self.buf += data

    def frames(self):
        while len(self.buf) >= 8:
            stream, size = struct.unpack(">BxxxL", self.buf[:8])
            if len(self.buf) < 8 + size:
                return
            data = bytes(self.buf[8 : 8 + size])
            del self.buf[: 8 + size]
            yield stream, data


def limit_container_disk(api, container_id: str, storage_mb: int | None) -> disk.Scratch | None:
    """Move a created (not started) container's writable layer and engine-managed files onto a filesystem of
    ``storage_mb`` (:func:`ltenv.sandbox.disk.attach_container`); ``None`` where that cannot be done here (no
    quota asked, a remote engine, another storage driver...), after one warning."""
    if storage_mb is None:
        return None
    why = _disk_unavailable()
    if why:
        disk.warn_unlimited(why)
        return None
    try:
        graph = api.inspect_container(container_id).get("GraphDriver") or {}
    except Exception as e:
        raise SandboxError(f"inspecting container {container_id[:12]} failed: {_api_error(e)}") from e
    upper = (graph.get("Data") or {}).get("UpperDir")
    if graph.get("Name") != "overlay2" or not upper:
        disk.warn_unlimited(f"the Docker storage driver is {graph.get('Name')!r}, not overlay2")
        return None
    layer = Path(upper).parent
    if not layer.is_dir():
        disk.warn_unlimited(f"the Docker engine's layer folders ({layer.parent}) are not on this machine")
        return None
    files = layer.parent.parent / "containers" / container_id
    return disk.attach_container(layer, files if files.is_dir() else None, storage_mb)


CTL_MOUNT = "/run/ltenv"
_disk_verified = False
_disk_off: list[str] = []  # why disk quotas turned out not to work with this engine, once known


def engine_is_local() -> bool:
    """Whether the Docker engine runs on this machine (``DOCKER_HOST`` unset or a unix socket)."""
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


def _disk_unavailable() -> str | None:
    """Why containers of this process cannot get a disk quota, or ``None``."""
    if not engine_is_local():
        return f"the Docker engine is on another machine ({os.environ['DOCKER_HOST']})"
    return _disk_off[0] if _disk_off else disk.unavailable()


_pristine: dict[str, tuple] = {}
_pristine_lock = threading.Lock()


def _local_ctl_dir():
    """The host folder bound read-only at :data:`CTL_MOUNT` in every container, when the engine runs on this
    machine and we are root (what a private verifier view needs); ``None`` otherwise."""
    from pathlib import Path

    from ltenv.sandbox.bwrap import runtime_dir

    if os.geteuid() != 0 or not engine_is_local():
        return None
    ctl = Path(runtime_dir()) / "docker-ctl"
    with contextlib.suppress(FileExistsError):
        (ctl / ".v").mkdir(parents=True, mode=0o755)
    return ctl


def _pristine_layers(image: str) -> tuple:
    """The image's layer directories in the shared layer cache (exported once per image)."""
    with _pristine_lock:
        if image not in _pristine:
            from ltenv.sandbox.images import ImageStore

            _pristine[image] = tuple(ImageStore().export(image).layers)
        return _pristine[image]


def _cgroup_procs(pid: int) -> list[str]:
    """``cgroup.procs`` files of the cgroups process ``pid`` is in (v1: one per hierarchy; v2: one)."""
    out = []
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:
            base = "/sys/fs/cgroup"
        else:
            name = controllers.removeprefix("name=")
            base = f"/sys/fs/cgroup/{name}"
        procs = f"{base}{path}/cgroup.procs"
        if os.path.exists(procs) and procs not in out:
            out.append(procs)
    return out


_killing = threading.local()  # set while this thread runs the in-container kill script


def _kill_tree_from_host(
    init_host_pid: int, container_id: str, pid: int, *, children_only: bool
) -> int | None:
    """Kill the tree of container pid ``pid`` from the host: the container's processes are those of its
    cgroup, each one's pid inside the container is the last ``NSpid`` field of its status. ``None`` when the
    container's cgroup cannot be read (the caller falls back to running a script in the container)."""
    # Only cgroups named after this container: a stale host pid must never lead to another process's cgroup.
    procs_files = [p for p in _cgroup_procs(init_host_pid) if container_id in p]
    if not procs_files:
        return None
    # Stop the tree first (a stopped process cannot fork), walking it again until no new process shows up,
    # then kill what was stopped: a process forked mid-walk cannot escape by being reparented. With
    # ``children_only`` (a shell's command interrupted) the shell's own children are not stopped, only killed
    # at the end: a shell with job control would take a stopped child for a suspended job and report it.
    stopped: list[int] = []
    spared: list[int] = []  # the root's own children, with children_only
    for round_ in range(8):
        root, children = _container_tree(procs_files, pid)
        if round_ == 0 and not children:
            return None  # nothing readable: not this host's container after all
        if root is None:
            break
        direct = children.get(root, []) if children_only else []
        found, stack = [] if children_only else [root], [root]
        while stack:
            for c in children.get(stack.pop(), []):
                if c not in found:
                    found.append(c)
                    stack.append(c)
        spared += [h for h in direct if h not in spared]
        new = [h for h in found if h not in stopped and h not in spared]
        if not new and round_ > 0:
            break
        for h in new:
            with contextlib.suppress(OSError):
                os.kill(h, signal.SIGSTOP)
        stopped += new
    for h in [*spared, *stopped]:
        with contextlib.suppress(OSError):
            os.kill(h, signal.SIGKILL)
    return len(spared) + len(stopped)


def _container_tree(procs_files: list[str], pid: int) -> tuple[int | None, dict[int, list[int]]]:
    """The host pid of container pid ``pid`` and the parent -> children map of the container's processes."""
    members: set[int] = set()
    for path in procs_files:
        try:
            with open(path) as f:
                members.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    root = None
    children: dict[int, list[int]] = {}
    for h in members:
        try:
            with open(f"/proc/{h}/status", "rb") as f:
                status = f.read()
            with open(f"/proc/{h}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        m = re.search(rb"^NSpid:\s*([\d\s]+)$", status, re.M)
        if m and int(m.group(1).split()[-1]) == pid:
            root = h
        children.setdefault(int(stat[stat.rfind(b")") + 2 :].split()[1]), []).append(h)
    return root, children


def _describe_exit(state: dict) -> str:
    if state.get("OOMKilled"):
        return "the container was killed for exceeding its memory limit"
    if state.get("Paused"):
        return "the container is paused"
    status = state.get("Status", "exited")
    code = state.get("ExitCode")
    if status == "exited" and code == 0:
        return "the container exited (its lifetime ended)"
    return f"the container is {status} (exit code {code})"


# --------------------------------------------------------------------------- orphans
_gc_started = False


def _gc_once() -> None:
    """Once per process, remove the containers of dead owners in the background."""
    global _gc_started
    if _gc_started:
        return
    _gc_started = True
    threading.Thread(target=lambda: gc_containers(quiet=True), daemon=True, name="ltenv-docker-gc").start()


def _stale(labels: dict[str, str], now: float) -> bool:
    """Whether the ltenv object with these labels may go: its owner process on this host is gone, or (an
    owner on another host) its lifetime has passed."""
    alive = _owner_alive(labels.get("ltenv.owner", ""))
    expires = labels.get("ltenv.expires", "")
    expired = expires.isdigit() and int(expires) < now
    return not (alive is True or (alive is None and not expired))


def gc_containers(*, verbose: bool = False, quiet: bool = False) -> int:
    """Remove ltenv containers (and multi-service episodes' networks) whose owner process on this host is
    gone, or whose lifetime has passed.

    Containers of live processes are left alone; so are those of other hosts until they expire.
    """
    try:
        api = api_client()
        containers = api.containers(all=True, filters={"label": LABEL})
    except Exception as e:
        if quiet:
            return 0
        raise SandboxError(f"listing containers failed: {_api_error(e)}") from None
    removed = 0
    now = time.time()
    for c in containers:
        labels = c.get("Labels") or {}
        if not _stale(labels, now):
            continue
        try:
            api.remove_container(c["Id"], force=True)
            removed += 1
            if verbose:
                log.info("removed stale container %s (%s)", c["Id"][:12], labels.get("ltenv.task", ""))
        except Exception as e:
            if not quiet:
                log.warning("removing container %s failed: %s", c["Id"][:12], _api_error(e))
    from ltenv.sandbox.compose import gc_networks

    removed += gc_networks(LABEL, _stale, verbose=verbose)  # multi-service episodes' networks
    with contextlib.suppress(OSError):
        disk.gc_scratch(verbose)  # what the engine did not unmount (containers removed by hand, ...)
    return removed


@atexit.register
def _close_all() -> None:
    for sb in list(_live):
        with contextlib.suppress(Exception):
            sb.close()
