"""Published task suites by name: a registry of datasets (Terminal-Bench, Harbor, LiteCoder-Terminal-RL,
TermiGen...), pulled from git or Hugging Face into a verified local cache.

Example:
    >>> from ltenv.datasets import Registry, pull
    >>> result = pull(Registry.load().get("terminal-bench-core@0.1.1"))
    >>> result.tasks  # a folder of task folders, for load_suite / --tasks
"""

from ltenv.datasets.cache import (
    CacheStatus,
    Manifest,
    PullResult,
    check_cache,
    datasets_root,
    offline_default,
    pull,
    resolve_tasks,
    tree_digest,
)
from ltenv.datasets.registry import (
    DatasetEntry,
    DatasetError,
    GitSource,
    HFSource,
    Registry,
    parse_spec,
    read_registry_file,
)

__all__ = [
    "CacheStatus",
    "DatasetEntry",
    "DatasetError",
    "GitSource",
    "HFSource",
    "Manifest",
    "PullResult",
    "Registry",
    "check_cache",
    "datasets_root",
    "offline_default",
    "parse_spec",
    "pull",
    "read_registry_file",
    "resolve_tasks",
    "tree_digest",
]
