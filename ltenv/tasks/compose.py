"""Multi-service tasks: the services of a task's compose file besides the agent's container.

A Terminal-Bench 1.x ``docker-compose.yaml`` (task folder) or a Harbor ``environment/docker-compose.yaml``
may declare services next to the one the agent works in: a database, a queue, a web server the agent's code
talks to. This module reads the subset of the compose format task suites use into a :class:`ServiceGraph`;
:mod:`ltenv.sandbox.compose` runs it on the docker backend. Anything outside that subset is refused with a
:class:`~ltenv.errors.TaskLoadError` naming the file and the field, never silently ignored when it would
change what runs.

Which service is the agent's: Harbor's ``main`` (absent: the image of ``environment/Dockerfile``, as
always); Terminal-Bench's ``client`` (or the one whose ``container_name`` / ``image`` is Terminal-Bench's
client variable). Supported per service: ``image`` or ``build`` (context inside the task folder,
``dockerfile``, ``args``), ``command``, ``entrypoint``, ``environment``, ``working_dir``, ``user``,
``healthcheck``, ``depends_on`` (list, or mapping with ``condition``), ``expose`` / ``ports`` (recorded,
never published on the host), ``volumes`` (files or folders of the task folder, copied in, never mounted),
``mem_limit`` / ``cpus`` / ``deploy.resources.limits``. Ignored (they change nothing inside one private
network): ``container_name``, ``hostname``, ``restart``, ``init``, ``tty``, ``stdin_open``, ``networks``,
``logging``, ``labels``, ``platform``, ``pull_policy``, ``stop_grace_period``, ``stop_signal``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ltenv.errors import TaskLoadError

SERVICE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

_READ = {
    "build", "image", "command", "entrypoint", "environment", "working_dir", "user", "healthcheck",
    "depends_on", "expose", "ports", "volumes", "mem_limit", "cpus", "deploy",
}  # fmt: skip
_IGNORED = {
    "container_name", "hostname", "restart", "init", "tty", "stdin_open", "networks", "logging", "labels",
    "platform", "pull_policy", "stop_grace_period", "stop_signal",
}  # fmt: skip
_BUILD_READ = {"context", "dockerfile", "args"}
_BUILD_IGNORED = {"labels", "cache_from", "cache_to", "network", "shm_size", "extra_hosts", "pull"}
_TOP_IGNORED = {"version", "name", "networks"}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT_SEC = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.IGNORECASE)
_SIZE_MB = {"": 1 / (1 << 20), "b": 1 / (1 << 20), "k": 1 / 1024, "m": 1, "g": 1024}


class HealthCheck(BaseModel):
    """A service's ``healthcheck``: ``test`` runs in the service's container until it exits 0."""

    model_config = ConfigDict(frozen=True)

    test: tuple[str, ...]
    """``("CMD", prog, arg...)`` or ``("CMD-SHELL", "shell command")``, as the Engine API takes it."""
    interval_sec: float = 1.0
    timeout_sec: float = 5.0
    retries: int = 30
    start_period_sec: float = 0.0

    @property
    def deadline_sec(self) -> float:
        """How long a service may take to become healthy before the episode gives up on it."""
        return self.start_period_sec + (self.interval_sec + self.timeout_sec) * self.retries + 10.0


class ServiceVolume(BaseModel):
    """A file or folder of the task folder copied to ``target`` in the service's container before it starts."""

    model_config = ConfigDict(frozen=True)

    source: str
    """Relative to the task folder."""
    target: str
    read_only: bool = False


class Service(BaseModel):
    """One service of a multi-service task (not the agent's container)."""

    model_config = ConfigDict(frozen=True)

    name: str
    build_context: str | None = None
    """Build context relative to the task folder; ``None``: :attr:`image` is a prebuilt image."""
    dockerfile: str = "Dockerfile"
    """Relative to the build context."""
    build_args: dict[str, str] = Field(default_factory=dict)
    image: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    healthcheck: HealthCheck | None = None
    depends_on: dict[str, str] = Field(default_factory=dict)
    """Service name -> condition (``service_started``, ``service_healthy``, ``service_completed_successfully``)."""
    expose: tuple[str, ...] = ()
    """Ports the service listens on (``80/tcp``): documentation only, never published on the host."""
    volumes: tuple[ServiceVolume, ...] = ()
    memory_mb: int | None = None
    """``None``: the task's ``[environment] memory_mb``."""
    cpus: float | None = None
    """``None``: the task's ``[environment] cpus``."""


class ServiceGraph(BaseModel):
    """The services a task runs next to the agent's container, read from its compose file."""

    model_config = ConfigDict(frozen=True)

    file: str
    """The compose file, relative to the task folder (for messages)."""
    agent: str
    """The agent's service name: other services reach the agent's container by it."""
    agent_depends_on: dict[str, str] = Field(default_factory=dict)
    agent_environment: dict[str, str] = Field(default_factory=dict)
    """Harbor ``main``'s ``environment`` (Terminal-Bench keeps its client's in ``task.terminal_bench.compose``)."""
    agent_working_dir: str | None = None
    services: tuple[Service, ...]

    def by_name(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def start_order(self) -> list[Service]:
        """Services in dependency order (a service after everything it depends on)."""
        done: list[Service] = []
        seen: set[str] = set()

        def visit(s: Service) -> None:
            if s.name in seen:
                return
            seen.add(s.name)
            for dep in s.depends_on:
                visit(self.by_name(dep))
            done.append(s)

        for s in self.services:
            visit(s)
        return done


Interp = Callable[[Any, str], str]


class ComposeReader:
    """Reads services of one compose file. ``base`` is the folder relative paths start from (the task folder
    for Terminal-Bench, ``environment/`` for Harbor); ``interp`` interpolates one string value."""

    def __init__(self, folder: Path, file: str, base: Path, interp: Interp):
        self.folder = folder
        self.file = file
        self.base = base
        self.interp = interp

    def error(self, field: str | None, message: str) -> TaskLoadError:
        return TaskLoadError(self.folder, self.file, field, message)

    # ---------------------------------------------------------------- the whole file
    def services_of(self, data: Any) -> dict[str, dict]:
        """The ``services`` mapping, after checking the top-level keys."""
        if not isinstance(data, dict):
            raise self.error(None, "expected a mapping with a 'services' key")
        for key, value in data.items():
            key = str(key)
            if key == "services" or key in _TOP_IGNORED or key.startswith("x-"):
                continue
            if value:  # an empty `volumes:` / `secrets:` section declares nothing
                raise self.error(key, "not supported (top-level named volumes, secrets and configs)")
        services = data.get("services")
        if not isinstance(services, dict) or not services:
            raise self.error("services", "expected a mapping of services")
        out: dict[str, dict] = {}
        for name, svc in services.items():
            name = str(name)
            if not SERVICE_NAME_RE.match(name):
                raise self.error(
                    f"services.{name}", "service names must be lowercase letters, digits, '.', '_' or '-'"
                )
            if svc is None:
                svc = {}
            if not isinstance(svc, dict):
                raise self.error(f"services.{name}", "expected a mapping")
            out[name] = svc
        return out

    def graph(
        self,
        services: dict[str, dict],
        agent: str,
        *,
        agent_environment: dict[str, str] | None = None,
        agent_working_dir: str | None = None,
    ) -> ServiceGraph:
        """Every service but ``agent`` read into a :class:`ServiceGraph`, dependencies checked."""
        others = [self.service(n, s) for n, s in services.items() if n != agent]
        agent_deps = self.depends_on(services.get(agent, {}).get("depends_on"), f"services.{agent}")
        graph = ServiceGraph(
            file=self.file,
            agent=agent,
            agent_depends_on=agent_deps,
            agent_environment=agent_environment or {},
            agent_working_dir=agent_working_dir,
            services=tuple(others),
        )
        names = {s.name for s in others}
        for owner, deps in [(agent, agent_deps), *((s.name, s.depends_on) for s in others)]:
            for dep in deps:
                if dep == agent:
                    raise self.error(
                        f"services.{owner}.depends_on.{dep}",
                        "services cannot depend on the agent's container (it starts last)",
                    )
                if dep not in names:
                    raise self.error(f"services.{owner}.depends_on.{dep}", "no such service")
                if deps[dep] == "service_healthy" and graph.by_name(dep).healthcheck is None:
                    raise self.error(
                        f"services.{owner}.depends_on.{dep}.condition",
                        f"service_healthy, but service {dep!r} has no healthcheck",
                    )
        self._check_cycles(graph)
        return graph

    def _check_cycles(self, graph: ServiceGraph) -> None:
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise self.error(f"services.{name}.depends_on", f"dependency cycle: {cycle}")
            state[name] = 1
            for dep in graph.by_name(name).depends_on:
                visit(dep, [*path, name])
            state[name] = 2

        for s in graph.services:
            visit(s.name, [])

    # ---------------------------------------------------------------- one service
    def service(self, name: str, svc: dict) -> Service:
        base = f"services.{name}"
        refused = sorted(str(k) for k in svc if k not in _READ | _IGNORED and not str(k).startswith("x-"))
        if refused:
            raise self.error(
                f"{base}.{refused[0]}",
                f"not supported (service options {', '.join(refused)}): services run with the same "
                "hardening as the agent's container",
            )
        fields: dict[str, Any] = {"name": name}
        build = svc.get("build")
        if build is not None:
            fields.update(self.build(build, f"{base}.build"))
        elif svc.get("image") is not None:
            image = self.interp(svc["image"], f"{base}.image")
            if not image or "T_BENCH_" in str(svc["image"]):
                raise self.error(f"{base}.image", f"{svc['image']!r} names no image")
            fields["image"] = image
        else:
            raise self.error(base, "the service has neither a build section nor an image")
        for key in ("command", "entrypoint"):
            if svc.get(key) is not None:
                fields[key] = self.argv(svc[key], f"{base}.{key}")
        fields["environment"] = self.environment(svc.get("environment"), f"{base}.environment")
        if svc.get("working_dir") is not None:
            fields["working_dir"] = self.absolute(svc["working_dir"], f"{base}.working_dir")
        if svc.get("user") is not None:
            fields["user"] = self.interp(svc["user"], f"{base}.user")
        if svc.get("healthcheck") is not None:
            fields["healthcheck"] = self.healthcheck(svc["healthcheck"], f"{base}.healthcheck")
        fields["depends_on"] = self.depends_on(svc.get("depends_on"), base)
        fields["expose"] = self.ports(svc, base)
        fields["volumes"] = tuple(
            self.volume(v, f"{base}.volumes[{i}]") for i, v in enumerate(svc.get("volumes") or [])
        )
        fields.update(self.limits(svc, base))
        return Service.model_validate(fields)

    def build(self, build: Any, field: str) -> dict[str, Any]:
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, dict):
            raise self.error(field, "expected a path or a mapping")
        bad = sorted(str(k) for k in build if k not in _BUILD_READ | _BUILD_IGNORED)
        if bad:
            raise self.error(f"{field}.{bad[0]}", "not supported: it would change the image we build")
        context = self.interp(build.get("context", "."), f"{field}.context")
        if "://" in context or context.startswith("git@"):
            raise self.error(f"{field}.context", "remote build contexts are not supported")
        root = self.folder.resolve()
        ctx = (self.base / context).resolve()
        if not ctx.is_relative_to(root):
            raise self.error(f"{field}.context", f"{context!r} is outside the task folder")
        if not ctx.is_dir():
            raise self.error(f"{field}.context", f"{context!r} is not a directory")
        dockerfile = self.interp(build.get("dockerfile", "Dockerfile"), f"{field}.dockerfile")
        df = (ctx / dockerfile).resolve()
        if not df.is_relative_to(ctx) or not df.is_file():
            raise self.error(f"{field}.dockerfile", f"{dockerfile!r} not found in the build context")
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(a.split("=", 1) if "=" in a else (a, None) for a in map(str, args))
        if not isinstance(args, dict):
            raise self.error(f"{field}.args", "expected a mapping or a list of 'KEY=VALUE' strings")
        rel = ctx.relative_to(root).as_posix()
        return {
            "build_context": rel if rel else ".",
            "dockerfile": df.relative_to(ctx).as_posix(),
            "build_args": {
                str(k): self.interp(v, f"{field}.args.{k}") for k, v in args.items() if v is not None
            },
        }

    def argv(self, value: Any, field: str) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                return tuple(shlex.split(self.interp(value, field)))
            except ValueError as e:
                raise self.error(field, f"cannot split into words: {e}") from None
        if isinstance(value, list) and value:
            return tuple(self.interp(v, f"{field}[{i}]") for i, v in enumerate(value))
        raise self.error(field, "expected a string or a non-empty list of strings")

    def environment(self, value: Any, field: str) -> dict[str, str]:
        if value is None:
            return {}
        items: list[tuple[str, Any]]
        if isinstance(value, dict):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = []
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise self.error(f"{field}[{i}]", "expected a 'KEY=VALUE' string")
                k, eq, v = item.partition("=")
                items.append((k.strip(), v if eq else None))
        else:
            raise self.error(field, "expected a mapping or a list of 'KEY=VALUE' strings")
        out: dict[str, str] = {}
        for k, v in items:
            if v is None:  # `- KEY` would pass the host's value: the host environment is never read
                continue
            if isinstance(v, dict | list):
                raise self.error(f"{field}.{k}", "expected a string, number or null")
            out[k] = str(v).lower() if isinstance(v, bool) else self.interp(v, f"{field}.{k}")
        return out

    def absolute(self, value: Any, field: str) -> str:
        path = self.interp(value, field)
        if not path.startswith("/"):
            raise self.error(field, f"{path!r} is not an absolute path")
        return path

    def healthcheck(self, value: Any, field: str) -> HealthCheck | None:
        if not isinstance(value, dict):
            raise self.error(field, "expected a mapping")
        bad = sorted(str(k) for k in value if k not in {"test", "interval", "timeout", "retries", "start_period",
                                                          "start_interval", "disable"})  # fmt: skip
        if bad:
            raise self.error(f"{field}.{bad[0]}", "not supported")
        if value.get("disable"):
            return None
        test = value.get("test")
        if isinstance(test, str):
            argv = ("CMD-SHELL", self.interp(test, f"{field}.test"))
        elif isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE"):
            argv = tuple(self.interp(t, f"{field}.test[{i}]") for i, t in enumerate(test))
        else:
            raise self.error(f"{field}.test", "expected a string, or a list starting with CMD or CMD-SHELL")
        if argv[0] == "NONE":
            return None
        if len(argv) < 2:
            raise self.error(f"{field}.test", "names no command")
        out: dict[str, Any] = {"test": argv}
        for key, name in (("interval", "interval_sec"), ("timeout", "timeout_sec"),
                          ("start_period", "start_period_sec")):  # fmt: skip
            if value.get(key) is not None:
                out[name] = self.duration(value[key], f"{field}.{key}")
        if value.get("retries") is not None:
            retries = value["retries"]
            if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
                raise self.error(f"{field}.retries", "expected a positive integer")
            out["retries"] = retries
        return HealthCheck.model_validate(out)

    def duration(self, value: Any, field: str) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        text = str(value).strip()
        parts = _DURATION_RE.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise self.error(field, f"expected a duration such as '5s' or '1m30s', got {value!r}")
        return sum(float(n) * _UNIT_SEC[u] for n, u in parts)

    def depends_on(self, value: Any, base: str) -> dict[str, str]:
        field = f"{base}.depends_on"
        if value is None:
            return {}
        if isinstance(value, list):
            return {str(v): "service_started" for v in value}
        if not isinstance(value, dict):
            raise self.error(field, "expected a list of services or a mapping of service -> {condition}")
        out: dict[str, str] = {}
        for name, spec in value.items():
            cond = (spec or {}).get("condition", "service_started") if isinstance(spec, dict) else None
            if cond not in CONDITIONS:
                raise self.error(f"{field}.{name}.condition", f"expected one of {', '.join(CONDITIONS)}")
            out[str(name)] = cond
        return out

    def ports(self, svc: dict, base: str) -> tuple[str, ...]:
        out: list[str] = []
        for key in ("expose", "ports"):
            value = svc.get(key) or []
            if not isinstance(value, list):
                raise self.error(f"{base}.{key}", "expected a list of ports")
            for i, p in enumerate(value):
                if isinstance(p, dict):
                    p = p.get("target")
                text = str(p).strip() if p is not None else ""
                port, _, proto = text.rpartition(":")[2].partition("/")  # "8080:80/tcp" -> container port
                if not port.isdigit() or not 0 < int(port) < 65536:
                    raise self.error(f"{base}.{key}[{i}]", f"{text!r} is not a port")
                out.append(f"{int(port)}/{proto or 'tcp'}")
        return tuple(dict.fromkeys(out))

    def volume(self, value: Any, field: str) -> ServiceVolume:
        read_only = False
        if isinstance(value, str):
            parts = self.interp(value, field).split(":")
            if len(parts) < 2:
                raise self.error(field, f"{value!r}: anonymous volumes are not supported")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        elif isinstance(value, dict):
            if value.get("type", "bind") != "bind":
                raise self.error(f"{field}.type", "only files of the task folder (type: bind) are supported")
            source = self.interp(value.get("source", ""), f"{field}.source")
            target = self.interp(value.get("target", ""), f"{field}.target")
            read_only = bool(value.get("read_only", False))
        else:
            raise self.error(field, "expected 'SOURCE:TARGET[:ro]' or a mapping")
        if not source.startswith((".", "/")) or source.startswith("/"):
            raise self.error(
                field, f"{source!r}: only relative paths of the task folder are supported (no named volumes, "
                "no host paths)"
            )  # fmt: skip
        src = (self.base / source).resolve()
        if not src.is_relative_to(self.folder.resolve()):
            raise self.error(field, f"{source!r} is outside the task folder")
        if not src.exists():
            raise self.error(field, f"{source!r} does not exist")
        if not target.startswith("/"):
            raise self.error(field, f"{target!r} is not an absolute path")
        return ServiceVolume(
            source=src.relative_to(self.folder.resolve()).as_posix() or ".",
            target=target,
            read_only=read_only,
        )

    def limits(self, svc: dict, base: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        deploy = svc.get("deploy") or {}
        if not isinstance(deploy, dict) or not isinstance(deploy.get("resources") or {}, dict):
            raise self.error(f"{base}.deploy", "expected a mapping (only resources.limits is read)")
        limits = (deploy.get("resources") or {}).get("limits") or {}
        if not isinstance(limits, dict):
            raise self.error(f"{base}.deploy.resources.limits", "expected a mapping")
        memory = svc.get("mem_limit", limits.get("memory"))
        if memory is not None:
            out["memory_mb"] = self.size_mb(memory, f"{base}.mem_limit")
        cpus = svc.get("cpus", limits.get("cpus"))
        if cpus is not None:
            try:
                out["cpus"] = float(cpus)
            except (TypeError, ValueError):
                raise self.error(f"{base}.cpus", f"expected a number, got {cpus!r}") from None
            if out["cpus"] <= 0:
                raise self.error(f"{base}.cpus", "must be greater than 0")
        return out

    def size_mb(self, value: Any, field: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, value >> 20)
        m = _SIZE_RE.match(str(value))
        if not m:
            raise self.error(field, f"expected a size such as '512m' or '1g', got {value!r}")
        return max(1, int(float(m.group(1)) * _SIZE_MB[m.group(2).lower()]))


def load_harbor_services(folder: Path) -> ServiceGraph | None:
    """``environment/docker-compose.yaml`` (or ``.yml``) of a Harbor task, ``None`` if there is none.

    The agent's container is the service ``main`` (built from ``environment/Dockerfile`` or the task's
    ``docker_image``, whatever ``main`` says about its image); its ``environment``, ``working_dir`` and
    ``depends_on`` are read. Variables are interpolated compose-style without reading the host environment.
    """
    import yaml

    from ltenv.tasks.terminal_bench import interpolate

    env_dir = folder / "environment"
    name = next((n for n in ("docker-compose.yaml", "docker-compose.yml") if (env_dir / n).is_file()), None)
    if name is None:
        return None
    file = f"environment/{name}"
    try:
        data = yaml.safe_load((env_dir / name).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise TaskLoadError(folder, file, None, f"not UTF-8 text ({e})") from None
    except yaml.YAMLError as e:
        raise TaskLoadError(folder, file, None, f"invalid YAML: {e}") from None

    def interp(value: Any, field: str) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise TaskLoadError(folder, file, field, "expected a string")
        try:
            return interpolate(str(value), {}, [])
        except ValueError as e:
            raise TaskLoadError(folder, file, field, str(e)) from None

    reader = ComposeReader(folder, file, env_dir, interp)
    services = reader.services_of(data)
    main = services.get("main", {})
    bad = sorted(
        str(k)
        for k in main
        if k not in {"build", "image", "command", "environment", "working_dir", "depends_on"} | _IGNORED
        and k not in {"healthcheck", "expose", "ports"}
        and not str(k).startswith("x-")
    )
    if bad:
        raise reader.error(f"services.main.{bad[0]}", "not supported for the agent's container")
    if len(services) == 1 and "main" in services:
        return None  # only the agent's container: nothing to run beside it
    workdir = None
    if main.get("working_dir") is not None:
        workdir = reader.absolute(main["working_dir"], "services.main.working_dir")
    return reader.graph(
        services,
        "main",
        agent_environment=reader.environment(main.get("environment"), "services.main.environment"),
        agent_working_dir=workdir,
    )


def agent_service_name(services: dict[str, dict]) -> str | None:
    """Terminal-Bench's client service: the one named by the harness's client variables, else ``client``."""
    for name, svc in services.items():
        for key in ("container_name", "image"):
            if "T_BENCH_TASK_DOCKER_CLIENT" in str(svc.get(key, "")):
                return name
    return "client" if "client" in services else None


__all__ = [
    "CONDITIONS",
    "ComposeReader",
    "HealthCheck",
    "Service",
    "ServiceGraph",
    "ServiceVolume",
    "agent_service_name",
    "load_harbor_services",
]
