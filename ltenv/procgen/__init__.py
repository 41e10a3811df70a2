"""Procedural task families (see :mod:`ltenv.procgen.base`).

``ltenv.procgen.families`` is the subpackage of bundled families; the registry of every family (bundled
and plugins) is :func:`all_families`."""

from __future__ import annotations

from ltenv.procgen.base import (
    BASE_IMAGE,
    Family,
    Instance,
    ProcgenError,
    get_family,
    parse_seeds,
    register,
    task_name,
)
from ltenv.procgen.materialize import (
    all_families,
    export,
    generator_digest,
    load_instances,
    load_plugins,
    materialize_many,
    write_task,
)

__all__ = [
    "BASE_IMAGE",
    "Family",
    "Instance",
    "ProcgenError",
    "all_families",
    "export",
    "generator_digest",
    "get_family",
    "load_instances",
    "load_plugins",
    "materialize_many",
    "parse_seeds",
    "register",
    "task_name",
    "write_task",
]
