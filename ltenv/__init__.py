"""LiteCoder-Terminal: executable, verifiable terminal environments for training language agents.

``import ltenv`` registers every bundled task as the Gymnasium id ``LiteCoder/<task-name>`` (names only;
tasks load when made). Heavy parts (pydantic models, the Docker SDK, sandboxes) import lazily.

Example:
    >>> import gymnasium as gym, ltenv
    >>> env = gym.make("LiteCoder/git-recover-deleted-branch")     # doctest: +SKIP
    >>> obs, info = env.reset()                                   # doctest: +SKIP
    >>> env.step("git log --oneline | head")                      # doctest: +SKIP
    >>> env.step(ltenv.SUBMIT)                                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

SUBMIT = "<<LTENV_SUBMIT>>"
"""The action that ends an episode: the verifier runs and the reward comes back with ``terminated=True``."""

NAMESPACE = "LiteCoder"
ENTRY_POINT = "ltenv.env:TerminalEnv"


def registry_path() -> Path:
    """Folder of the bundled tasks (``$LTENV_REGISTRY`` overrides it)."""
    from ltenv.sandbox.images import registry_root

    return registry_root()


def register_tasks(path: str | Path, namespace: str = NAMESPACE, **env_kwargs: Any) -> list[str]:
    """Register every task folder below ``path`` as ``<namespace>/<task-name>``; returns the ids.

    Only folder names are read here; each task is loaded and validated when ``gym.make`` is called.
    ``env_kwargs`` become defaults of :class:`ltenv.env.TerminalEnv` for these ids.

    Example:
        >>> ltenv.register_tasks("my_tasks/", namespace="Mine")        # doctest: +SKIP
        ['Mine/hello-world']
    """
    from ltenv.tasks.discovery import discover

    return [
        _register(f"{namespace}/{folder.name}", ENTRY_POINT, {"task": str(folder), **env_kwargs})
        for folder in discover(path)
    ]


def _register(env_id: str, entry_point: str, kwargs: dict[str, Any]) -> str:
    """Register ``env_id`` (replacing a different registration of it; an identical one is kept)."""
    from gymnasium.envs.registration import register, registry

    spec = registry.get(env_id)
    if spec is not None and spec.entry_point == entry_point and spec.kwargs == kwargs:
        return env_id
    if spec is not None:
        del registry[env_id]
    # The passive checker would validate every step's observation against the space; the env does that.
    register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
    return env_id


PROCGEN_ENTRY_POINT = "ltenv.procgen.env:ProcgenEnv"


def register_families(namespace: str = NAMESPACE, **env_kwargs: Any) -> list[str]:
    """Register every procedural family as ``<namespace>/proc-<family>-v0``; returns the ids.

    ``import ltenv`` registers the bundled families (and those of ``$LTENV_PROCGEN_PLUGINS``); call this
    again after defining a family of your own. Only names are registered: instances are generated on
    ``reset(seed=...)``. ``env_kwargs`` become defaults of :class:`ltenv.procgen.env.ProcgenEnv`.

    Example:
        >>> env = gym.make("LiteCoder/proc-json-field-v0")               # doctest: +SKIP
        >>> obs, info = env.reset(seed=7)                                # doctest: +SKIP
    """
    from ltenv.procgen.materialize import all_families

    return [
        _register(f"{namespace}/proc-{name}-v0", PROCGEN_ENTRY_POINT, {"family": name, **env_kwargs})
        for name in all_families()
    ]


_LAZY = {
    "TerminalEnv": "ltenv.env",
    "Task": "ltenv.tasks.model",
    "load_task": "ltenv.tasks.loader",
    "load_suite": "ltenv.tasks.loader",
    "ShellSession": "ltenv.terminal.session",
    "keys": "ltenv.terminal.keys",
    "verify": "ltenv.verify",
    "rollout": "ltenv.rollouts",
    "load_instances": "ltenv.procgen.materialize",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ltenv' has no attribute {name!r}")


def _register_bundled() -> None:
    root = registry_path()
    if root.is_dir():
        register_tasks(root)


def _register_procgen() -> None:
    try:
        register_families()
    except Exception as e:  # a broken family or plugin must not make `import ltenv` fail
        import logging

        logging.getLogger(__name__).warning("procgen families not registered: %s", e)


_register_bundled()
_register_procgen()

__all__ = [
    "NAMESPACE",
    "SUBMIT",
    "TerminalEnv",
    "__version__",
    "keys",
    "load_instances",
    "load_suite",
    "load_task",
    "register_families",
    "register_tasks",
    "rollout",
]
