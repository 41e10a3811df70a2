"""Instances as task folders, and suites of them.

Two formats:

* ``fast`` (what ltenv runs; cached): every instance runs on the shared :data:`~ltenv.procgen.base.BASE_IMAGE`
  (``[environment] docker_image``), no per-instance image build. The files and the setup script are applied
  when the sandbox starts (ltenv's ``[environment] setup_files`` / ``setup_script`` extension)::

      <task name>/
        task.toml              [metadata] procgen_family, procgen_seed, procgen_generator; [environment]
                               docker_image, workdir, setup_files = "setup/files", setup_script
        instruction.md
        setup/files/<path>     the instance's files, at their sandbox path without the leading /
        setup/setup.sh         the instance's setup (only when it has one)
        solution/solve.sh      the commands joined (set -e)
        solution/commands.json the commands, one per agent turn (the stepwise oracle plays them)
        tests/test.sh          runs tests/check.sh, writes 1 or 0 to /logs/verifier/reward.txt
        tests/check.sh         the instance's check

* ``portable`` (``ltenv procgen export``): a standard Harbor folder anyone can build:
  ``environment/Dockerfile`` (``FROM`` the base image, ``COPY files/ /``, the setup as a ``RUN``) with
  ``environment/files/`` and ``environment/setup.sh``; same solution and tests.

Fast folders live in ``<cache>/procgen/<family>/<generator digest>/<task name>/``; the digest covers the
source of the family's module (and of the package modules it uses), so an edited generator never serves
stale instances. Folders are written to a temporary directory and renamed into place: concurrent writers
(threads or processes) never see a partial folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ltenv.procgen.base import (
    BASE_IMAGE,
    Family,
    Instance,
    ProcgenError,
    families,
    get_family,
    parse_seeds,
    task_name,
)

if TYPE_CHECKING:
    from ltenv.tasks.model import Task

FORMATS = ("fast", "portable")
LAYOUT_VERSION = "1"
"""Part of the generator digest: bump when the folder layout written here changes."""
SPEC_PREFIX = "procgen:"
PLUGINS_ENV = "LTENV_PROCGEN_PLUGINS"
AGENT_TIMEOUT_SEC = 120.0
VERIFIER_TIMEOUT_SEC = 30.0
SETUP_TIMEOUT_SEC = 120.0

TEST_SH = """#!/bin/bash
# Runs the instance's check (tests/check.sh) and records the reward: 1 if it exits 0, else 0.
mkdir -p /logs/verifier
cd /
if bash /tests/check.sh; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
"""


# --------------------------------------------------------------------------- plugins


_plugins_lock = threading.Lock()
_plugins_loaded: set[str] = set()


def load_plugins(spec: str | None = None) -> None:
    """Import extra family modules named in ``$LTENV_PROCGEN_PLUGINS`` (or ``spec``): module names or
    ``.py`` files, separated by ``,`` or ``os.pathsep``. Each is imported once (a file already imported
    under another name, e.g. by pytest, is not imported again)."""
    raw = spec if spec is not None else os.environ.get(PLUGINS_ENV, "")
    items = [x.strip() for part in raw.split(",") for x in part.split(os.pathsep) if x.strip()]
    with _plugins_lock:
        for item in items:
            if item in _plugins_loaded:
                continue
            try:
                if item.endswith(".py") or os.sep in item:
                    path = Path(item).resolve()
                    loaded = {
                        Path(f).resolve()
                        for m in list(sys.modules.values())
                        if (f := getattr(m, "__file__", None))
                    }
                    if path not in loaded:
                        name = "_ltenv_procgen_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
                        mspec = importlib.util.spec_from_file_location(name, path)
                        if mspec is None or mspec.loader is None:
                            raise ImportError(f"cannot import {path}")
                        module = importlib.util.module_from_spec(mspec)
                        sys.modules[name] = module
                        mspec.loader.exec_module(module)
                else:
                    importlib.import_module(item)
            except Exception as e:
                raise ProcgenError(
                    f"{PLUGINS_ENV}: importing {item!r} failed: {type(e).__name__}: {e}"
                ) from e
            _plugins_loaded.add(item)


def all_families() -> dict[str, Family]:
    """Every registered family (bundled ones and ``$LTENV_PROCGEN_PLUGINS``), by name."""
    load_plugins()
    return families()


def family(name: str | Family) -> Family:
    """The family ``name`` (plugins loaded first)."""
    if isinstance(name, Family):
        return name
    load_plugins()
    return get_family(name)


# --------------------------------------------------------------------------- writing folders


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return _toml_str(str(v))


def _rel(path: str) -> str:
    p = Path(path)
    if not p.is_absolute() or ".." in p.parts or str(p) == "/":
        raise ProcgenError(f"instance file path {path!r} must be an absolute path to a file")
    return p.as_posix().lstrip("/")


def _write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    os.chmod(path, mode)


def _solve_sh(inst: Instance) -> str:
    body = "\n".join(c.rstrip("\n") for c in inst.commands)
    return (
        f"#!/bin/bash\n# Reference solution of {inst.name}: the commands of solution/commands.json.\n"
        f"set -e\ncd {_shell_quote(inst.workdir)}\n{body}\n"
    )


def _task_toml(inst: Instance, fmt: str, digest: str) -> str:
    tags = list(dict.fromkeys(["procgen", inst.family, *inst.tags]))
    meta = {
        "domain": inst.domain,
        "difficulty": inst.difficulty,
        "tags": tags,
        "procgen_family": inst.family,
        "procgen_seed": inst.seed,
        "procgen_generator": digest,
    }
    lines = ['version = "1.0"', "", "[metadata]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in meta.items()]
    lines += ["", "[agent]", f"timeout_sec = {AGENT_TIMEOUT_SEC!r}"]
    lines += ["", "[verifier]", f"timeout_sec = {VERIFIER_TIMEOUT_SEC!r}"]
    lines += ["", "[environment]"]
    if fmt == "fast":
        lines += [f"docker_image = {_toml_str(BASE_IMAGE)}", f"workdir = {_toml_str(inst.workdir)}"]
        if inst.files:
            lines.append('setup_files = "setup/files"')
        if inst.setup.strip():
            lines += ['setup_script = "setup/setup.sh"', f"setup_timeout_sec = {SETUP_TIMEOUT_SEC!r}"]
    lines += ["cpus = 1.0", "memory_mb = 2048", "allow_internet = false"]
    return "\n".join(lines) + "\n"


def _dockerfile(inst: Instance) -> str:
    # Executable bits come with COPY (files/ holds them with their modes).
    lines = [
        f"# {inst.name}: generated by ltenv procgen (family {inst.family}, seed {inst.seed})",
        f"FROM {BASE_IMAGE}",
    ]
    if inst.files:
        lines.append("COPY files/ /")
    if inst.setup.strip():
        execs = sorted(p for p in inst.executable if p in inst.files)
        chmod = "chmod 755 " + " ".join(_shell_quote(p) for p in execs) + " && " if execs else ""
        lines += [
            "COPY setup.sh /tmp/ltenv-setup.sh",
            f"RUN {chmod}bash /tmp/ltenv-setup.sh && rm -f /tmp/ltenv-setup.sh",
        ]
    lines.append(f"WORKDIR {inst.workdir}")
    return "\n".join(lines) + "\n"


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def write_task(inst: Instance, dest: Path | str, *, format: str = "fast", digest: str = "") -> Path:
    """Write ``inst`` as a task folder at ``dest`` (created; must not exist or be empty). Returns ``dest``."""
    if format not in FORMATS:
        raise ProcgenError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not inst.commands:
        raise ProcgenError(f"{inst.name}: the instance has no commands (the reference solution)")
    _write(dest / "task.toml", _task_toml(inst, format, digest))
    _write(dest / "instruction.md", inst.instruction.rstrip("\n") + "\n")
    files_root = dest / ("setup/files" if format == "fast" else "environment/files")
    for path, content in sorted(inst.files.items()):
        _write(files_root / _rel(path), content, 0o755 if path in inst.executable else 0o644)
    if inst.setup.strip():
        setup = dest / ("setup/setup.sh" if format == "fast" else "environment/setup.sh")
        _write(setup, "#!/bin/bash\n" + inst.setup.rstrip("\n") + "\n", 0o755)
    if format == "portable":
        _write(dest / "environment" / "Dockerfile", _dockerfile(inst))
    _write(dest / "solution" / "solve.sh", _solve_sh(inst), 0o755)
    _write(dest / "solution" / "commands.json", json.dumps(list(inst.commands), indent=1) + "\n")
    _write(dest / "tests" / "test.sh", TEST_SH, 0o755)
    _write(dest / "tests" / "check.sh", inst.check.rstrip("\n") + "\n", 0o755)
    return dest


# --------------------------------------------------------------------------- the cache


def _module_source(module_name: str) -> str | None:
    module = sys.modules.get(module_name)
    if module is None:
        return None
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        f = getattr(module, "__file__", None)
        if f and os.path.isfile(f):
            return Path(f).read_text(encoding="utf-8", errors="replace")
        return None


_digests: dict[type, str] = {}


def generator_digest(fam: Family) -> str:
    """16 hex digits over the source of the family's module, of the modules of its base classes, of the
    modules of its package it uses (helpers), of :mod:`ltenv.procgen.base` and the layout version."""
    cls = type(fam)
    hit = _digests.get(cls)
    if hit is not None:
        return hit
    root_pkg = cls.__module__.rpartition(".")[0] or cls.__module__
    names = {cls.__module__, "ltenv.procgen.base"}
    names.update(k.__module__ for k in cls.__mro__ if k.__module__ not in ("builtins", "abc"))
    module = sys.modules.get(cls.__module__)
    for value in vars(module).values() if module is not None else ():
        mod = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(mod, str) and root_pkg and mod.startswith(root_pkg + "."):
            names.add(mod)
    h = hashlib.sha256(f"ltenv-procgen-layout:{LAYOUT_VERSION}\0{cls.__qualname__}\0".encode())
    for name in sorted(names):
        src = _module_source(name)
        if src is None:
            # No source to hash: never reuse a folder written by another process.
            src = f"nosource:{os.getpid()}:{id(cls)}"
        h.update(name.encode() + b"\0" + src.encode() + b"\0")
    digest = h.hexdigest()[:16]
    _digests[cls] = digest
    return digest


def cache_root() -> Path:
    from ltenv.sandbox.images import cache_dir

    return cache_dir() / "procgen"


def instance(fam: str | Family, seed: int) -> Instance:
    """``family(fam).instance(seed)``; a generator that crashes is a :class:`ProcgenError` naming the seed."""
    fam = family(fam)
    try:
        return fam.instance(seed)
    except ProcgenError:
        raise
    except Exception as e:
        raise ProcgenError(
            f"family {fam.name!r} seed {seed}: generate() failed: {type(e).__name__}: {e}"
        ) from e


def materialize(fam: str | Family, seed: int, *, root: Path | None = None) -> Path:
    """The fast task folder of instance ``seed`` of ``fam``, from the cache (written on a miss)."""
    fam = family(fam)
    digest = generator_digest(fam)
    parent = (root or cache_root()) / fam.name / digest
    dest = parent / task_name(fam.name, seed)
    if (dest / "task.toml").is_file():
        return dest
    inst = instance(fam, seed)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=parent))
    try:
        write_task(inst, tmp, format="fast", digest=digest)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "task.toml").is_file():  # not a concurrent writer's folder: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _family_list(spec: str | Family | Iterable[str | Family]) -> list[Family]:
    if isinstance(spec, Family):
        return [spec]
    if isinstance(spec, str):
        names = [x.strip() for x in spec.split(",") if x.strip()]
        if not names:
            raise ProcgenError("no family named; use a family name, several separated by ',' or 'all'")
        if names == ["all"]:
            fams = list(all_families().values())
            if not fams:
                raise ProcgenError("no procgen family is registered")
            return fams
        return [family(n) for n in names]
    return [x for s in spec for x in _family_list(s)]


def materialize_many(
    fams: str | Family | Iterable[str | Family], seeds: str | Iterable[int], *, root: Path | None = None
) -> list[Path]:
    """Fast folders of every (family, seed), families in the given order, seeds ascending."""
    fam_list = _family_list(fams)
    seed_list = parse_seeds(seeds)
    return [materialize(f, s, root=root) for f in fam_list for s in seed_list]


def is_spec(value: object) -> bool:
    """``value`` is a ``procgen:<families>:<seeds>`` spec (and not an existing path)."""
    s = str(value)
    return s.startswith(SPEC_PREFIX) and not Path(s).exists()


def parse_spec(spec: str) -> tuple[list[Family], list[int]]:
    """``procgen:<family>[,<family>...|all]:<seeds>`` -> (families, seeds); :class:`ProcgenError` if bad."""
    body = str(spec).removeprefix(SPEC_PREFIX)
    fams, sep, seeds = body.rpartition(":")
    if not sep or not fams.strip():
        raise ProcgenError(
            f"procgen spec {spec!r}: expected procgen:<family>[,<family>...|all]:<seeds>, "
            "e.g. procgen:json-field:0-49"
        )
    return _family_list(fams), parse_seeds(seeds)


def materialize_spec(spec: str, *, root: Path | None = None) -> list[Path]:
    """The fast folders a ``procgen:...`` spec names."""
    fams, seeds = parse_spec(spec)
    return [materialize(f, s, root=root) for f in fams for s in seeds]


def load_instances(fams: str | Family | Iterable[str | Family], seeds: str | Iterable[int]) -> list[Task]:
    """Instances as loaded tasks (fast folders from the cache), e.g.
    ``load_instances("json-field", "0-49")`` or ``load_instances(["csv-sum", "log-count"], range(10))``."""
    from ltenv.tasks.loader import load_task

    return [load_task(p) for p in materialize_many(fams, seeds)]


# --------------------------------------------------------------------------- export


def _same_tree(a: Path, b: Path) -> bool:
    from ltenv.tasks.model import tree_digest

    return tree_digest(a) == tree_digest(b)


def export(
    fams: str | Family | Iterable[str | Family],
    seeds: str | Iterable[int],
    out: Path | str,
    *,
    format: str = "portable",
    force: bool = False,
) -> tuple[int, int]:
    """Write task folders ``out/<task name>/``; returns (written, unchanged).

    A folder that exists with different content is an error unless ``force`` (then it is replaced). Every
    conflict is checked before anything is written.
    """
    if format not in FORMATS:
        raise ProcgenError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ProcgenError(f"--out {out} exists and is not a folder")
    fam_list = _family_list(fams)
    seed_list = parse_seeds(seeds)
    out.mkdir(parents=True, exist_ok=True)
    written = unchanged = 0
    staging = Path(tempfile.mkdtemp(prefix=".ltenv-export-", dir=out))
    try:
        plan: list[tuple[Path, Path]] = []
        conflicts: list[str] = []
        for fam in fam_list:
            digest = generator_digest(fam)
            for seed in seed_list:
                inst = instance(fam, seed)
                tmp = write_task(inst, staging / inst.name, format=format, digest=digest)
                dest = out / inst.name
                if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
                    if dest.is_dir() and _same_tree(tmp, dest):
                        unchanged += 1
                        shutil.rmtree(tmp)
                        continue
                    if not force:
                        conflicts.append(inst.name)
                        continue
                plan.append((tmp, dest))
        if conflicts:
            raise ProcgenError(
                f"{len(conflicts)} folder(s) in {out} exist with different content "
                f"({', '.join(conflicts[:5])}{'...' if len(conflicts) > 5 else ''}); use --force to replace them"
            )
        for tmp, dest in plan:
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.chmod(tmp, 0o755)
            os.rename(tmp, dest)
            written += 1
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return written, unchanged


def describe(fam: Family) -> dict[str, object]:
    """A family as a row of ``ltenv procgen list``."""
    return {
        "name": fam.name,
        "domain": fam.domain,
        "difficulty": fam.difficulty,
        "multi_turn": bool(fam.multi_turn),
        "description": fam.description,
        "gym_id": fam.gym_id,
    }


__all__: Sequence[str] = (
    "FORMATS",
    "all_families",
    "describe",
    "export",
    "generator_digest",
    "instance",
    "is_spec",
    "load_instances",
    "load_plugins",
    "materialize",
    "materialize_many",
    "materialize_spec",
    "parse_spec",
    "write_task",
)
