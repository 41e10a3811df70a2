"""Procedural task families: seeded generators of unlimited verifiable instances of one terminal task.

A :class:`Family` turns a seed into an :class:`Instance`: the instruction, the files placed in the sandbox,
an optional setup script, the reference solution as the commands an agent would type (one per turn), and a
check script that decides success. The same seed always gives the same instance (the generator draws only
from the ``random.Random`` it is handed, seeded by family name and seed).

Families register themselves with :func:`register`; :func:`get_family` and :func:`families` look them up.
Task names are ``proc-<family>-s<seed>`` (seed zero-padded to 5 digits); the Gymnasium id of a family is
``LiteCoder/proc-<family>-v0`` (``reset(seed=s)`` gives instance ``s``).
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ltenv.errors import LtenvError

FAMILY_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")
MAX_SEED = 10**9
BASE_IMAGE = "ltenv/base:bookworm"


class ProcgenError(LtenvError):
    """An unknown family, a bad seed range, or a generator that broke its contract."""


@dataclass(frozen=True)
class Instance:
    """One generated task. Paths are absolute paths inside the sandbox."""

    family: str
    seed: int
    domain: str
    difficulty: str
    instruction: str
    """What the agent is told (markdown). Everything the check tests is stated here."""
    files: Mapping[str, str | bytes]
    """Sandbox path -> content, written before the agent starts (parents created, owned by root)."""
    commands: tuple[str, ...]
    """The reference solution, one shell command per agent turn, in order. Together they solve the task;
    a command may rely on what an earlier one printed only through values the family already knows (the
    oracle is not adaptive), but a *model* imitating it must read that output to produce the next one."""
    check: str
    """A bash script run after the agent (as root, cwd ``/``, network off): exit 0 iff the task is solved.
    Expected values are embedded in it; it is never visible to the agent."""
    setup: str = ""
    """Optional bash run once as root after the files are written and before the agent starts (e.g. make a
    git history, set permissions). Must be deterministic."""
    executable: frozenset[str] = frozenset()
    """Paths among ``files`` to make executable."""
    workdir: str = "/app"
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str | int | float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return task_name(self.family, self.seed)


class Family(ABC):
    """A generator of instances. Subclasses set the class attributes and implement :meth:`generate`."""

    name: ClassVar[str]
    domain: ClassVar[str]
    """One of :data:`ltenv.tasks.model.DOMAINS`."""
    difficulty: ClassVar[str] = "easy"
    description: ClassVar[str]
    multi_turn: ClassVar[bool] = False
    """True when solving needs reading an observation (a listing, a file's content) before the next command."""

    @abstractmethod
    def generate(self, rng: random.Random, seed: int) -> Instance:
        """The instance of ``seed``, drawing randomness only from ``rng``."""

    def make(self, seed: int, **fields: Any) -> Instance:
        """An :class:`Instance` of this family for ``seed`` (its family, domain and difficulty filled in):
        what :meth:`generate` returns."""
        return Instance(family=self.name, seed=seed, domain=self.domain, difficulty=self.difficulty, **fields)

    def instance(self, seed: int) -> Instance:
        """Instance ``seed`` (deterministic)."""
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
            raise ProcgenError(
                f"family {self.name!r}: seed must be an integer in [0, {MAX_SEED}), got {seed!r}"
            )
        inst = self.generate(random.Random(f"{self.name}:{seed}"), seed)
        if inst.family != self.name or inst.seed != seed:
            raise ProcgenError(f"family {self.name!r}: generate() returned {inst.family!r} seed {inst.seed}")
        return inst

    @property
    def gym_id(self) -> str:
        return f"LiteCoder/proc-{self.name}-v0"

    def __repr__(self) -> str:
        return f"<Family {self.name} ({self.domain})>"


_FAMILIES: dict[str, Family] = {}


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: register a family (its ``name`` must be unique and well-formed)."""
    name = cls.name
    if not FAMILY_NAME_RE.match(name):
        raise ProcgenError(f"family name {name!r} must match {FAMILY_NAME_RE.pattern}")
    if name in _FAMILIES and type(_FAMILIES[name]) is not cls:
        raise ProcgenError(f"family {name!r} is registered twice")
    _FAMILIES[name] = cls()
    return cls


def _load_builtin() -> None:
    import ltenv.procgen.families  # noqa: F401  (registers the bundled families)


def families() -> dict[str, Family]:
    """Every registered family, by name (sorted)."""
    _load_builtin()
    return dict(sorted(_FAMILIES.items()))


def get_family(name: str) -> Family:
    """The family called ``name`` (``proc-<name>-v0`` and ``proc-<name>`` are accepted too)."""
    _load_builtin()
    key = name.removeprefix("LiteCoder/").removeprefix("proc-").removesuffix("-v0")
    if key not in _FAMILIES:
        raise ProcgenError(f"unknown procgen family {name!r}; known: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[key]


def task_name(family: str, seed: int) -> str:
    return f"proc-{family}-s{seed:05d}"


_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(spec: str | Iterable[int]) -> list[int]:
    """``"0-999"``, ``"5"``, ``"0-49,100-149"`` (inclusive ranges) or an iterable of ints -> sorted unique
    seeds. Raises :class:`ProcgenError` naming the bad part."""
    if not isinstance(spec, str):
        seeds = sorted(set(spec))
        bad = [s for s in seeds if not isinstance(s, int) or not 0 <= s < MAX_SEED]
        if bad:
            raise ProcgenError(f"seeds must be integers in [0, {MAX_SEED}): {bad[:3]}")
        return seeds
    out: set[int] = set()
    if not spec.strip():
        raise ProcgenError("empty seed range; use e.g. 0-999 or 0-49,100-149")
    for part in spec.split(","):
        m = _RANGE_RE.match(part)
        if not m:
            raise ProcgenError(
                f"seed range {spec!r}: cannot read {part.strip()!r}; use e.g. 0-999 or 0-49,100-149"
            )
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise ProcgenError(f"seed range {spec!r}: {part.strip()!r} ends before it starts")
        if hi >= MAX_SEED:
            raise ProcgenError(f"seed range {spec!r}: seeds must be below {MAX_SEED}")
        out.update(range(lo, hi + 1))
    return sorted(out)


__all__ = [
    "BASE_IMAGE",
    "Family",
    "Instance",
    "ProcgenError",
    "families",
    "get_family",
    "parse_seeds",
    "register",
    "task_name",
]
