"""Multi-service episodes on the docker backend: the services of a task's compose file beside the agent.

Per episode (:class:`ServiceGroup`, started by :class:`~ltenv.sandbox.docker.DockerSandbox` before the agent's
container):

* a private bridge network, ``internal`` unless the task allows internet, with no address on the host side
  of an internal bridge (``inhibit_ipv4``): its containers reach each other, never the host or the outside;
  the agent's container joins it under its service name, every service under its own, so they resolve each
  other by name through the engine's DNS;
* one container per service from its image (built through :class:`~ltenv.sandbox.images.ImageStore`, cached
  by content like task images), started in dependency order; ``depends_on`` conditions are honoured, and the
  agent's container starts once every service it depends on is ready and every service with a health check
  is healthy (so an episode always starts from the same state). A health check that fails, or does not pass
  in time, ends the start with an error naming the service and its last health output;
* every service gets the hardening of the agent's container: the task's memory / cpu limits (or the
  service's own), its pids limit and ``storage_mb`` disk quota, an init process, Docker's default
  capabilities and seccomp profile, never privileged, no host mount at all (``volumes`` of task-folder files
  are *copied* in before it starts), ports never published on the host;
* every container and the network carry ``ltenv.*`` labels naming the owner process and are registered with
  the driver's janitor, so a SIGKILLed driver leaves nothing; ``ltenv gc`` removes what is left of dead
  owners (:func:`gc_networks`). :meth:`ServiceGroup.close` removes the services and the network.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltenv.errors import SandboxError
from ltenv.sandbox import janitor, netguard

if TYPE_CHECKING:
    from ltenv.sandbox.base import SandboxSpec
    from ltenv.sandbox.images import ImageConfig, ImageStore
    from ltenv.tasks.compose import Service, ServiceGraph
    from ltenv.tasks.model import Task

log = logging.getLogger(__name__)

POLL_SEC = 0.1
COMPLETION_TIMEOUT_SEC = 600.0
"""How long a ``service_completed_successfully`` dependency (a one-shot set-up service) may run."""


@dataclass(frozen=True)
class ServiceImage:
    """A service and the engine image it runs."""

    service: Service
    image: str
    config: ImageConfig


def service_task(task: Task, service: Service) -> Task:
    """The task-shaped view of one service that :class:`~ltenv.sandbox.images.ImageStore` builds: its build
    context and Dockerfile, or its prebuilt image, under the name ``<task>.<service>``."""
    from ltenv.tasks.model import ComposeService, EnvironmentConfig, TerminalBenchConfig

    env = task.config.environment
    config = task.config.model_copy(
        update={
            "environment": EnvironmentConfig(
                docker_image=service.image if service.build_context is None else None,
                build_timeout_sec=env.build_timeout_sec,
            )
        }
    )
    compose = ComposeService(
        name=service.name,
        build_context=service.build_context,
        dockerfile=service.dockerfile,
        build_args=dict(service.build_args),
    )
    return task.model_copy(
        update={
            "name": f"{task.name}.{service.name}",
            "format": "terminal-bench",
            "config": config,
            "terminal_bench": TerminalBenchConfig(compose=compose),
            "services": None,
        }
    )


def service_images(task: Task, store: ImageStore) -> list[ServiceImage]:
    """Build (or find in the engine) the image of every service of ``task``."""
    from ltenv.errors import ImageError
    from ltenv.sandbox.images import ImageConfig

    assert task.services is not None
    out = []
    for service in task.services.services:
        try:
            tag = store.build(service_task(task, service))
        except ImageError as e:
            raise ImageError(
                f"task {task.name!r}: service {service.name!r} ({task.services.file}): {e}"
            ) from None
        try:
            attrs = store.client.api.inspect_image(tag)
        except Exception as e:
            raise ImageError(
                f"task {task.name!r}: service {service.name!r}: image {tag} is missing: {e}"
            ) from None
        out.append(ServiceImage(service, tag, ImageConfig.from_docker(attrs.get("Config"))))
    return out


class ServiceGroup:
    """The services and private network of one multi-service episode (see the module docstring)."""

    def __init__(
        self,
        task_name: str,
        task_root: Path,
        graph: ServiceGraph,
        images: list[ServiceImage],
        spec: SandboxSpec,
    ):
        self.task_name = task_name
        self.task_root = task_root
        """The task folder: volumes' sources are relative to it."""
        self.graph = graph
        self.images = {i.service.name: i for i in images}
        self.spec = spec
        self.network: str | None = None
        self.containers: dict[str, str] = {}  # service name -> container id
        self._disks: list = []  # each service's storage_mb filesystem (ltenv.sandbox.disk.Scratch)
        self._key = f"services-{uuid.uuid4().hex[:12]}"
        self._api: Any = None
        self._closed = False

    # ---------------------------------------------------------------- start
    def start(self, api: Any, labels: dict[str, str]) -> str:
        """Create the network and start the services (in dependency order, waiting as ``depends_on`` says);
        returns the network's name, for the agent's container to join."""
        self._api = api
        name = f"ltenv-{self._key.split('-', 1)[1]}"
        options = {"com.docker.network.bridge.enable_icc": "true"}
        if not self.spec.allow_internet:
            # No address on the host's side of the bridge: nothing on the network can reach the host.
            options["com.docker.network.bridge.inhibit_ipv4"] = "true"
        elif netguard.guard() is None:
            # A bridge the host's firewall rules know: the internet yes, the host's own services no.
            options["com.docker.network.bridge.name"] = netguard.bridge_name(self._key.split("-", 1)[1])
        else:
            log.warning("this episode's services can reach the host's services: %s", netguard.guard())
        try:
            api.create_network(
                name,
                driver="bridge",
                internal=not self.spec.allow_internet,
                options=options,
                labels=labels,
                check_duplicate=True,
            )
        except Exception as e:
            raise SandboxError(f"creating the episode's network failed: {_api_error(e)}") from None
        self.network = name
        self._register()
        for service in self.graph.start_order():
            self._wait_for(service.depends_on, f"service {service.name!r}")
            self._start_service(service, labels)
        return name

    def wait_for_agent(self) -> None:
        """Block until the agent's container may start: its ``depends_on`` conditions hold and every service
        with a health check is healthy."""
        conditions = dict(self.graph.agent_depends_on)
        for s in self.graph.services:
            if s.healthcheck is not None and conditions.get(s.name) != "service_completed_successfully":
                conditions[s.name] = "service_healthy"
        self._wait_for(conditions, "the agent's container")

    def endpoint(self, api: Any) -> dict:
        """The agent container's networking config: on the episode's network, under its service name."""
        return api.create_networking_config(
            {self.network: api.create_endpoint_config(aliases=[self.graph.agent])}
        )

    def _start_service(self, service: Service, labels: dict[str, str]) -> None:
        api = self._api
        img = self.images[service.name]
        hc = service.healthcheck
        memory = service.memory_mb or self.spec.memory_mb
        cpus = service.cpus or self.spec.cpus
        limits: dict[str, Any] = dict(
            mem_limit=f"{memory}m",
            memswap_limit=f"{memory}m",
            nano_cpus=int(cpus * 1e9),
            pids_limit=self.spec.pids_limit,
            network_mode=self.network,
            init=True,
            privileged=False,
        )
        kwargs: dict[str, Any] = dict(
            image=img.image,
            name=f"{self.network}-{service.name}",
            hostname=service.name,
            environment=dict(service.environment),
            labels={**labels, "ltenv.service": service.name},
            detach=True,
            networking_config=api.create_networking_config(
                {self.network: api.create_endpoint_config(aliases=[service.name])}
            ),
        )
        if service.command is not None:
            kwargs["command"] = list(service.command)
        if service.entrypoint is not None:
            kwargs["entrypoint"] = list(service.entrypoint)
        if service.working_dir:
            kwargs["working_dir"] = service.working_dir
        if service.user:
            kwargs["user"] = service.user
        if hc is not None:
            kwargs["healthcheck"] = {
                "test": list(hc.test),
                "interval": int(hc.interval_sec * 1e9),
                "timeout": int(hc.timeout_sec * 1e9),
                "retries": hc.retries,
                "start_period": int(hc.start_period_sec * 1e9),
            }
        try:
            try:
                cid = api.create_container(host_config=api.create_host_config(**limits), **kwargs)["Id"]
            except Exception as e:
                if "init" not in str(e).lower():
                    raise
                limits.pop("init")  # an engine without an init binary, as for the agent's container
                cid = api.create_container(host_config=api.create_host_config(**limits), **kwargs)["Id"]
        except Exception as e:
            raise SandboxError(
                f"task {self.task_name!r}: creating service {service.name!r} from {img.image} failed: "
                f"{_api_error(e)}"
            ) from None
        self.containers[service.name] = cid
        self._register()
        from ltenv.sandbox.docker import limit_container_disk

        scratch = limit_container_disk(api, cid, self.spec.storage_mb)
        if scratch is not None:
            self._disks.append(scratch)
            self._register()
        for vol in service.volumes:
            self._copy_in(service, cid, vol.source, vol.target)
        try:
            api.start(cid)
        except Exception as e:
            raise SandboxError(
                f"task {self.task_name!r}: starting service {service.name!r} failed: {_api_error(e)}"
            ) from None

    def _copy_in(self, service: Service, cid: str, source: str, target: str) -> None:
        """Copy a task-folder file or folder to ``target`` in the (created, not started) container."""
        from ltenv.tasks.contain import check_paths

        root = self.task_root
        src = root / source
        check_paths(root, [src], field=f"services.{service.name}.volumes")
        buf = io.BytesIO()
        target_path = Path(target)
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(src), arcname=target_path.name or ".", recursive=True)
        try:
            self._api.put_archive(cid, str(target_path.parent), buf.getvalue())
        except Exception as e:
            raise SandboxError(
                f"task {self.task_name!r}: copying {source} to {target} in service {service.name!r} failed: "
                f"{_api_error(e)} (the folder {target_path.parent} must exist in the service's image)"
            ) from None

    # ---------------------------------------------------------------- waiting
    def _wait_for(self, conditions: dict[str, str], who: str) -> None:
        for name, condition in conditions.items():
            if condition == "service_started":
                self._check_running(name, who)
                continue
            service = self.graph.by_name(name)
            if condition == "service_healthy":
                self._wait_healthy(service, who)
            else:
                self._wait_completed(service, who)

    def _state(self, name: str) -> dict:
        try:
            return self._api.inspect_container(self.containers[name])["State"]
        except Exception as e:
            raise SandboxError(f"service {name!r} is gone: {_api_error(e)}") from None

    def _check_running(self, name: str, who: str) -> None:
        state = self._state(name)
        if not state.get("Running") and state.get("ExitCode"):
            raise SandboxError(
                f"task {self.task_name!r}: service {name!r} (needed by {who}) exited with code "
                f"{state.get('ExitCode')}: {self._logs(name)}"
            )

    def _wait_healthy(self, service: Service, who: str) -> None:
        if service.healthcheck is None:
            raise SandboxError(
                f"service {service.name!r} has no healthcheck, yet {who} waits for it to be healthy"
            )
        deadline = time.monotonic() + service.healthcheck.deadline_sec
        while True:
            state = self._state(service.name)
            health = state.get("Health") or {}
            status = health.get("Status")
            if status == "healthy":
                return
            if not state.get("Running"):
                raise SandboxError(
                    f"task {self.task_name!r}: service {service.name!r} exited (code {state.get('ExitCode')}) "
                    f"before it was healthy: {self._logs(service.name)}"
                )
            if status == "unhealthy" or time.monotonic() > deadline:
                why = "is unhealthy" if status == "unhealthy" else (
                    f"was not healthy within {service.healthcheck.deadline_sec:g} s"
                )  # fmt: skip
                raise SandboxError(
                    f"task {self.task_name!r}: service {service.name!r} {why} (needed by {who}); "
                    f"last health check output: {_last_health(health)}"
                )
            time.sleep(POLL_SEC)

    def _wait_completed(self, service: Service, who: str) -> None:
        deadline = time.monotonic() + COMPLETION_TIMEOUT_SEC
        while True:
            state = self._state(service.name)
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                if state.get("ExitCode") == 0:
                    return
                raise SandboxError(
                    f"task {self.task_name!r}: service {service.name!r} (needed by {who}) exited with code "
                    f"{state.get('ExitCode')}: {self._logs(service.name)}"
                )
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"task {self.task_name!r}: service {service.name!r} (needed by {who}) did not complete "
                    f"within {COMPLETION_TIMEOUT_SEC:g} s"
                )
            time.sleep(POLL_SEC)

    def _logs(self, name: str) -> str:
        try:
            out = self._api.logs(self.containers[name], stdout=True, stderr=True, tail=20)
        except Exception:
            return "(no logs)"
        text = out.decode("utf-8", "replace").strip() if isinstance(out, bytes) else str(out)
        return text[-800:] or "(no output)"

    # ---------------------------------------------------------------- teardown
    def _register(self) -> None:
        janitor.register(
            self._key,
            containers=list(self.containers.values()),
            network=self.network,
            mounts=[str(m) for d in self._disks for m in d.mounts],
        )

    def close(self) -> None:
        """Remove every service container, then the network (idempotent)."""
        if self._closed:
            return
        self._closed = True
        api = self._api
        if api is None:
            return
        for name, cid in self.containers.items():
            try:
                api.remove_container(cid, force=True)
            except Exception as e:
                if "no such container" not in str(e).lower() and "404" not in str(e):
                    log.warning("removing service %s (%s) failed: %s", name, cid[:12], _api_error(e))
        for scratch in self._disks:
            scratch.release()  # the engine unmounted it already; one that did not leaves nothing either
        self._disks = []
        if self.network is not None:
            remove_network(api, self.network)
        janitor.unregister(self._key)


def remove_network(api: Any, name: str) -> None:
    """Remove a network, after disconnecting whatever is still attached (a container being removed)."""
    for attempt in range(20):
        try:
            api.remove_network(name)
            return
        except Exception as e:
            text = str(e).lower()
            if "not found" in text or "404" in text:
                return
            if attempt == 19:
                log.warning("removing network %s failed: %s", name, _api_error(e))
                return
            with contextlib.suppress(Exception):
                for cid in api.inspect_network(name).get("Containers") or {}:
                    api.disconnect_container_from_network(cid, name, force=True)
            time.sleep(0.1)


def gc_networks(label: str, stale, *, verbose: bool = False) -> int:
    """Remove ltenv networks that ``stale(labels, now)`` says may go (their owner is gone, or they expired);
    called by ``ltenv gc`` after containers."""
    from ltenv.sandbox.docker import api_client

    api = api_client()
    removed = 0
    now = time.time()
    try:
        networks = api.networks(filters={"label": label})
    except Exception:
        return 0
    for net in networks:
        labels = net.get("Labels") or {}
        if not stale(labels, now):
            continue
        with contextlib.suppress(Exception):
            for c in api.containers(all=True, filters={"network": net["Id"], "label": label}):
                api.remove_container(c["Id"], force=True)
        remove_network(api, net["Name"])
        removed += 1
        if verbose:
            log.info("removed stale network %s (%s)", net["Name"], labels.get("ltenv.task", ""))
    return removed


def _last_health(health: dict) -> str:
    entries = health.get("Log") or []
    if not entries:
        return "(no health check has run yet)"
    last = entries[-1]
    out = str(last.get("Output") or "").strip()[-500:]
    return f"exit code {last.get('ExitCode')}: {out or '(no output)'}"


def _api_error(e: Exception) -> str:
    expl = getattr(e, "explanation", None)
    return str(expl or e).strip()
