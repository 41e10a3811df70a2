"""patchy - a tiny pure-Python replacement for `patch`, used by our deployment tooling
on hosts where GNU patch is not installed."""
from .core import PatchError, apply_patch, parse

__all__ = ["PatchError", "apply_patch", "parse"]
