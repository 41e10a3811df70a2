"""Sandboxes: one protocol, two backends (``bwrap`` by default, ``docker``), plus image building and caching.

Backends are looked up lazily by name, so importing ltenv never imports the Docker SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ltenv.sandbox.base import (
    DEFAULT_STORAGE_MB,
    ExecResult,
    PtyProcess,
    PtyRequest,
    Sandbox,
    SandboxSetup,
    SandboxSpec,
)

if TYPE_CHECKING:
    from ltenv.sandbox.images import ImageStore
    from ltenv.tasks.model import Task

BACKENDS = {
    "bwrap": "ltenv.sandbox.bwrap:BwrapSandbox",
    "docker": "ltenv.sandbox.docker:DockerSandbox",
}
DEFAULT_BACKEND = "bwrap"


def spec_for(task: Task, **overrides) -> SandboxSpec:
    """The sandbox settings a task asks for in ``[environment]``, plus overrides."""
    env = task.config.environment
    spec = SandboxSpec(
        env=task.container_env,
        allow_internet=env.allow_internet,
        memory_mb=env.memory_mb,
        cpus=env.cpus,
        pids_limit=env.pids_limit,
        storage_mb=env.storage_mb or DEFAULT_STORAGE_MB,
        lifetime_sec=task.config.agent.timeout_sec + task.config.verifier.timeout_sec + 300,
    )
    if task.container_workdir:
        spec.workdir = task.container_workdir
    for k, v in overrides.items():
        setattr(spec, k, v)
    return spec


def setup_for(task: Task) -> SandboxSetup | None:
    """What the sandbox of ``task`` copies in and runs at start (``[environment] setup_files`` /
    ``setup_script``), or ``None``."""
    env = task.config.environment
    if not env.setup_files and not env.setup_script:
        return None
    return SandboxSetup(
        task_name=task.name,
        files_dir=task.setup_files_dir,
        script=task.setup_script_path,
        script_label=env.setup_script or "setup script",
        timeout=env.setup_timeout_sec,
    )


def image_task(task: Task) -> Task:
    """The task whose image ``task`` runs on, for the image store.

    A task with a ``docker_image`` and no Dockerfile (procedurally generated tasks) runs that image as is:
    it is prepared once per image, not once per task, so a thousand instances cost one cache entry.
    """
    env = task.config.environment
    if task.format != "harbor" or not env.docker_image or task.dockerfile is not None:
        return task
    import re

    from ltenv.sandbox.images import cache_dir

    slug = re.sub(r"[^a-z0-9._-]+", "-", env.docker_image.lower()).strip("-.") or "image"
    return task.model_copy(update={"name": f"image-{slug}", "path": cache_dir() / "shared-images" / slug})


def unsupported(task: Task, backend: str) -> str | None:
    """Why ``backend`` cannot run ``task`` (``None`` if it can): multi-service tasks need ``docker``."""
    if task.services is not None and backend != "docker":
        names = ", ".join(s.name for s in task.services.services)
        return (
            f"a multi-service task ({task.services.file} runs {names} beside the agent's container) needs "
            f"the docker backend; the {backend} backend runs one sandbox per episode (use --backend docker)"
        )
    return None


def create_sandbox(
    task: Task, *, backend: str = DEFAULT_BACKEND, store: ImageStore | None = None, **spec_overrides
) -> Sandbox:
    """A (not yet started) sandbox for ``task`` on ``backend``; builds and caches the image if needed."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {sorted(BACKENDS)}")
    module, _, cls_name = BACKENDS[backend].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    from ltenv.sandbox.images import ImageStore

    store = store or ImageStore()
    spec = spec_for(task, **spec_overrides)
    why = unsupported(task, backend)
    if why:
        from ltenv.errors import UnsupportedTaskError

        raise UnsupportedTaskError(f"task {task.name!r}: {why}")
    box: Sandbox
    if backend == "bwrap":
        prepared = store.prepare(image_task(task))
        if "workdir" not in spec_overrides and not task.container_workdir and prepared.config.workdir:
            spec.workdir = prepared.config.workdir
        box = cls(prepared, spec)
    else:
        tag, config = store.engine_image(image_task(task))
        if "workdir" not in spec_overrides and not task.container_workdir and config.workdir:
            spec.workdir = config.workdir
        services = None
        if task.services is not None:
            from ltenv.sandbox.compose import ServiceGroup, service_images

            services = ServiceGroup(task.name, task.path, task.services, service_images(task, store), spec)
        box = cls(tag, spec, image_config=config, task_name=task.name, services=services)
    box.setup = setup_for(task)
    return box


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ExecResult",
    "PtyProcess",
    "PtyRequest",
    "Sandbox",
    "SandboxSetup",
    "SandboxSpec",
    "create_sandbox",
    "image_task",
    "setup_for",
    "spec_for",
    "unsupported",
]
