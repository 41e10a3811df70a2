"""Procedural task families (see :mod:`ltenv.procgen.base`)."""

from __future__ import annotations

from ltenv.procgen.base import (
    BASE_IMAGE,
    Family,
    Instance,
    ProcgenError,
    families,
    get_family,
    parse_seeds,
    register,
    task_name,
)
from ltenv.procgen.materialize import (
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
    "export",
    "families",
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
