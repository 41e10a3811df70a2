"""Task folders: the on-disk format, validation and discovery.

Attributes load lazily so that discovering task names (at ``import ltenv``) does not import pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

from ltenv.tasks.discovery import discover, is_task_dir

_LAZY = {
    "DOMAINS": "ltenv.tasks.model",
    "Task": "ltenv.tasks.model",
    "TaskConfig": "ltenv.tasks.model",
    "TerminalBenchConfig": "ltenv.tasks.model",
    "TerminalCommand": "ltenv.tasks.model",
    "Timeouts": "ltenv.tasks.model",
    "tree_digest": "ltenv.tasks.model",
    "Suite": "ltenv.tasks.loader",
    "load_suite": "ltenv.tasks.loader",
    "load_task": "ltenv.tasks.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ltenv.tasks' has no attribute {name!r}")


__all__ = [
    "DOMAINS",
    "Suite",
    "Task",
    "TaskConfig",
    "TerminalBenchConfig",
    "TerminalCommand",
    "Timeouts",
    "discover",
    "is_task_dir",
    "load_suite",
    "load_task",
    "tree_digest",
]
