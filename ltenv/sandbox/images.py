"""Task images: build with the Docker engine, bootstrap base images offline, export layers for bwrap.

Images are tagged by content (``ltenv-task/<name>:<digest>``), so an unchanged task never rebuilds.
An :class:`ImageMap` lets a local image stand in for a foreign one that cannot be pulled (in Dockerfile
``FROM`` lines and for ``docker_image``); every substitution is reported (:meth:`ImageStore.substitutions_for`)
and is part of the task's image tag.
The bwrap backend runs on root filesystems on disk: each image layer is unpacked once into a cache keyed
by its diff id and shared by every image that contains it (overlayfs stacks them as lower dirs), so a
hundred tasks built on one base cost one copy of the base.

Layout of the cache (``$LTENV_CACHE_DIR``, default ``~/.cache/ltenv``)::

    layers/<mode>/<diffid>/     one unpacked layer (mode: ``ovl`` kernel whiteouts, ``wh`` .wh. files)
    images/<image-id>.json      layer list and runtime config of an image
    refs/<task-name>.json       environment digest -> image id, so resets need no Docker engine
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltenv.errors import ImageError
from ltenv.sandbox import build_config
from ltenv.sandbox.build_config import HostBuildConfig

if TYPE_CHECKING:
    from ltenv.tasks import Task

# The secret mounts a build adds to every RUN step (ltenv.sandbox.build_config), as BuildKit prints them.
_LENT_MOUNTS = re.compile(r"--mount=type=secret,id=ltenv-[^\s]+\s+")

log = logging.getLogger(__name__)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_FROM_RE = re.compile(
    r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE
)
_TAG_COMMENT_RE = re.compile(r"^#\s*ltenv-tag:\s*(\S+)", re.MULTILINE)
# One path component of a Docker repository name (the distribution reference grammar).
_REPO_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def image_name(task_name: str) -> str:
    """The repository component for a task's image tags: the task name itself when Docker accepts it, else a
    lowercase form plus a hash of the exact name, so ``R_Pkg`` and ``r_pkg`` never share a tag.

    Example:
        >>> image_name("fix-off-by-one")
        'fix-off-by-one'
        >>> image_name("R_package_dependency_missing_medium")
        'r_package_dependency_missing_medium-0a1342d0'
    """
    if _REPO_COMPONENT_RE.match(task_name) and len(task_name) <= 128:
        return task_name
    base = re.sub(r"[^a-z0-9]+", lambda m: "_" if m.group(0) == "_" else "-", task_name.lower()).strip("-_")
    base = re.sub(r"[-_]{2,}", "-", base)[:100] or "task"
    return f"{base}-{hashlib.sha256(task_name.encode()).hexdigest()[:8]}"


def cache_dir() -> Path:
    env = os.environ.get("LTENV_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ltenv"


def whiteout_mode() -> str:
    """``ovl``: kernel overlayfs whiteouts (needs root to create); ``wh``: .wh. files for fuse-overlayfs."""
    return "ovl" if os.geteuid() == 0 else "wh"


@dataclass(frozen=True)
class ImageConfig:
    """What a container started from the image would get: environment, working directory, user."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    user: str = ""

    @classmethod
    def from_docker(cls, cfg: dict[str, Any] | None) -> ImageConfig:
        cfg = cfg or {}
        env = {}
        for item in cfg.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return cls(env=env, workdir=cfg.get("WorkingDir") or "", user=cfg.get("User") or "")


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the bwrap backend: unpacked layers (bottom first) and its runtime config."""

    image_id: str
    layers: tuple[Path, ...]
    config: ImageConfig
    tag: str = ""


def lower_dirs(layers: tuple[Path, ...] | list[Path]) -> list[str]:
    """An image's layers (bottom first) as overlay lower dirs (top first), each layer once.

    An image may list one layer twice (a ``RUN`` that changed nothing, ``RUN mkdir -p /app`` after
    ``WORKDIR /app``: byte-identical layers share a diff id) and overlayfs refuses a lower dir given twice.
    Keeping only the upper copy shows the same files as Docker: everything the lower copy adds, hides or
    makes opaque, the upper copy does again above every layer between them.
    """
    out: list[str] = []
    seen: set[str] = set()
    for p in reversed(layers):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(str(p))
    return out


# --------------------------------------------------------------------------- Docker engine access


def docker_client():
    """A Docker SDK client, or :class:`ImageError` saying how to get an engine."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a hard dependency
        raise ImageError("the 'docker' Python package is not installed") from e
    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception as e:
        raise ImageError(
            f"no Docker engine reachable ({e.__class__.__name__}: {e}). Start one (e.g. `dockerd &`), "
            "or set DOCKER_HOST; image builds need it, sandboxes on a warm cache do not."
        ) from None


def proxy_build_args() -> dict[str, str]:
    """HTTP(S) proxy settings of this process, passed to builds as Docker's predefined build args."""
    args = {}
    for name in PROXY_VARS:
        for key in (name, name.lower()):
            if os.environ.get(key):
                args[key] = os.environ[key]
    return args


def dockerfile_bases(dockerfile: Path) -> list[str]:
    """Images named in FROM lines (stage aliases excluded)."""
    text = dockerfile.read_text(encoding="utf-8", errors="replace")
    aliases: set[str] = set()
    bases: list[str] = []
    for m in _FROM_RE.finditer(text):
        ref, alias = m.group(1), m.group(2)
        if ref.lower() != "scratch" and ref not in aliases:
            bases.append(ref)
        if alias:
            aliases.add(alias)
    return bases


def _local_image(client, ref: str):
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


# --------------------------------------------------------------------------- project base images


def registry_root() -> Path:
    """The bundled registry: ``$LTENV_REGISTRY``, the source checkout's ``envs_registry/``, or the wheel's copy."""
    env = os.environ.get("LTENV_REGISTRY")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "envs_registry", here / "_registry"):
        if cand.is_dir():
            return cand
    return here.parent / "envs_registry"


def project_images(root: Path | None = None) -> dict[str, Path]:
    """Tag -> recipe folder for the project's own base images (``envs_registry/images/*/Dockerfile``)."""
    root = (root or registry_root()) / "images"
    out: dict[str, Path] = {}
    if root.is_dir():
        for d in sorted(root.iterdir()):
            df = d / "Dockerfile"
            if df.is_file():
                m = _TAG_COMMENT_RE.search(df.read_text(encoding="utf-8"))
                out[m.group(1) if m else f"ltenv/{d.name}:latest"] = d
    return out


# --------------------------------------------------------------------------- image map


def normalize_ref(ref: str) -> str:
    """``python:3.13`` and ``docker.io/library/python:3.13`` are the same image; no tag means ``latest``."""
    ref = ref.strip()
    name, at, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not at:
        name += ":latest"
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = name.removeprefix("library/")
    return name + (at + digest if at else "")


@dataclass(frozen=True)
class Substitution:
    """A foreign image replaced by a local one, and where: a Dockerfile ``FROM`` line or ``docker_image``."""

    source: str
    target: str
    where: str  # "FROM" | "docker_image"

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


class ImageMap:
    """``foreign image ref -> local image ref``: lets a locally built image stand in for one that cannot be
    pulled. Refs match after normalization (``docker.io/library/`` prefix, implicit ``:latest``).

    Example:
        >>> m = ImageMap({"ghcr.io/laude-institute/t-bench/python-3-13:20250620": "ltenv/base:bookworm"})
        >>> m.lookup("ghcr.io/laude-institute/t-bench/python-3-13:20250620")
        'ltenv/base:bookworm'
    """

    def __init__(self, mapping: Mapping[str, str] | None = None, *, source: str = ""):
        self.source = source
        self.mapping: dict[str, str] = {}
        self._normalized: dict[str, str] = {}
        for key, value in (mapping or {}).items():
            where = f"{source}: " if source else ""
            if not isinstance(key, str) or not key.strip():
                raise ImageError(f"{where}image map key {key!r}: expected an image reference")
            if not isinstance(value, str) or not value.strip():
                raise ImageError(
                    f"{where}image map entry {key!r}: expected a local image reference, got {value!r}"
                )
            if normalize_ref(key) == normalize_ref(value):
                raise ImageError(f"{where}image map entry {key!r} maps the image to itself")
            self.mapping[key.strip()] = value.strip()
            self._normalized[normalize_ref(key)] = value.strip()

    @classmethod
    def load(cls, path: Path | str) -> ImageMap:
        """Read a mapping from a YAML, JSON or TOML file (by extension; YAML otherwise).

        The file is one flat mapping, e.g. YAML
        ``ghcr.io/laude-institute/t-bench/python-3-13:20250620: ltenv/base:bookworm``
        or TOML ``"alexgshaw/regex-log:20251031" = "ltenv/base:bookworm"``.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ImageError(f"image map {path}: {e.strerror or e}") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            elif path.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as e:
            raise ImageError(f"image map {path}: cannot parse it: {e}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ImageError(f"image map {path}: expected a mapping of 'foreign image: local image'")
        return cls(data, source=str(path))

    def lookup(self, ref: str) -> str | None:
        """The local stand-in for ``ref``, or ``None`` if it is not mapped."""
        return self.mapping.get(ref) or self._normalized.get(normalize_ref(ref))

    def __bool__(self) -> bool:
        return bool(self.mapping)

    def __len__(self) -> int:
        return len(self.mapping)


_FROM_LINE_RE = re.compile(r"^(\s*FROM\s+(?:--platform=\S+\s+)?)(\S+)(.*)$", re.IGNORECASE)


def rewrite_from_lines(dockerfile_text: str, image_map: ImageMap) -> str:
    """The Dockerfile with every mapped ``FROM`` image replaced by its stand-in (stage aliases kept)."""
    out = []
    for line in dockerfile_text.splitlines(keepends=True):
        m = _FROM_LINE_RE.match(line.rstrip("\r\n"))
        target = image_map.lookup(m.group(2)) if m else None
        if m and target:
            eol = line[len(line.rstrip("\r\n")) :]
            line = f"{m.group(1)}{target}{m.group(3)}{eol}"
        out.append(line)
    return "".join(out)


def _dockerignore(context: Path) -> list[str] | None:
    """Exclusion patterns of the build context's .dockerignore, as ``docker build`` reads them."""
    f = context / ".dockerignore"
    if not f.is_file():
        return None
    lines = [ln.strip() for ln in f.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


class ImageStore:
    """Builds, bootstraps and exports images; the one place that talks to the Docker engine.

    Example:
        >>> store = ImageStore()                      # doctest: +SKIP
        >>> prepared = store.prepare(task)            # builds if needed, unpacks layers once
        >>> prepared.layers[-1]                       # doctest: +SKIP
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        log_fn: Callable[[str], None] | None = None,
        image_map: ImageMap | Mapping[str, str] | Path | str | None = None,
        force_build: bool = False,
        host_build_config: bool | HostBuildConfig | None = None,
    ):
        """``image_map``: local stand-ins for foreign images (an :class:`ImageMap`, a mapping, or a file).

        ``force_build``: build Harbor tasks from ``environment/Dockerfile`` even when ``task.toml`` names a
        prebuilt ``[environment] docker_image`` (Harbor's ``--force-build``).

        ``host_build_config``: lend the host's CA bundle, pip/apt/npm index and proxy settings to builds as
        BuildKit secrets (see :mod:`ltenv.sandbox.build_config`): ``None`` (default) detects them unless
        ``LTENV_HOST_BUILD_CONFIG=0``; ``False`` never; ``True`` detects them; or a given
        :class:`HostBuildConfig`. They never change an image's tag.
        """
        self.force_build = force_build
        self._warned_no_buildkit = False
        self._engine_without_buildkit = False
        if host_build_config is None:
            host_build_config = build_config.enabled()
        self._host_config: HostBuildConfig | None = (
            host_build_config if isinstance(host_build_config, HostBuildConfig) else None
        )
        self._host_config_wanted = bool(host_build_config)
        if isinstance(image_map, Path | str):
            image_map = ImageMap.load(image_map)
        elif image_map is not None and not isinstance(image_map, ImageMap):
            image_map = ImageMap(image_map)
        self.image_map: ImageMap = image_map or ImageMap()
        self.root = Path(root) if root else cache_dir()
        self.mode = whiteout_mode()
        self.log = log_fn or (lambda msg: log.info("%s", msg))
        self._client = None
        self._digests: dict[Path, tuple[tuple, str]] = {}
        self._engine_images: dict[Path, tuple[str, str, ImageConfig]] = {}

    def __deepcopy__(self, memo: dict) -> ImageStore:
        # One store is shared, not copied: gym.make deep-copies registered kwargs (image_store=...), and the
        # store holds a Docker client (a socket) and caches that are meant to be shared.
        return self

    # -- paths
    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def layer_dir(self, diff_id: str) -> Path:
        return self.root / "layers" / self.mode / diff_id.removeprefix("sha256:")

    def _manifest_path(self, image_id: str) -> Path:
        return self.root / "images" / (image_id.removeprefix("sha256:") + ".json")

    def _ref_path(self, task_name: str) -> Path:
        return self.root / "refs" / f"{task_name}.json"

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        lock_dir = self.root / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{name}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- base images
    def ensure_base(self, ref: str, *, registry: Path | None = None) -> str:
        """Make ``ref`` exist locally: a project recipe is built, else pulled, else (Debian) bootstrapped."""
        projects = project_images(registry)
        if ref in projects:
            return self.build_project_image(ref, projects[ref], registry=registry)
        img = _local_image(self.client, ref)
        if img is not None:
            return img.id
        self.log(f"pulling {ref}")
        try:
            return self.client.images.pull(ref).id
        except Exception as e:
            pull_error = f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:([a-z]+)(?:-slim)?", ref)
        if m:
            self.log(f"no registry answered for {ref} ({pull_error}); bootstrapping it with debootstrap")
            return self.bootstrap(m.group(1), tag=ref)
        raise ImageError(
            f"base image {ref!r} is not available: pull failed ({pull_error}). Build or load it locally "
            "(docker load / docker import), base the task on a bootstrappable debian:<suite> image, or "
            "map it to a local stand-in with an image map (--image-map FILE)."
        )

    def build_project_image(self, tag: str, recipe: Path, *, registry: Path | None = None) -> str:
        """Build one of the project's base images unless the same recipe is already built."""
        from ltenv.tasks.model import tree_digest

        for base in dockerfile_bases(recipe / "Dockerfile"):
            self.ensure_base(base, registry=registry)
        digest = tree_digest(recipe)[:16]
        img = _local_image(self.client, tag)
        if img is not None and (img.labels or {}).get("ltenv.recipe") == digest:
            return img.id
        self.log(f"building project image {tag} from {recipe}")
        return self._build(recipe, tag, labels={"ltenv.recipe": digest}, timeout=3600)

    def bootstrap(self, suite: str = "bookworm", *, tag: str | None = None, mirror: str | None = None) -> str:
        """Create ``debian:<suite>`` with no registry: debootstrap from a Debian mirror, then import it."""
        tag = tag or f"debian:{suite}"
        mirror = mirror or os.environ.get("LTENV_DEBIAN_MIRROR", DEBIAN_MIRROR)
        if os.geteuid() != 0:
            raise ImageError("`ltenv images bootstrap` needs root (debootstrap creates device files)")
        if not shutil.which("debootstrap"):
            raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
        with tempfile.TemporaryDirectory(prefix="ltenv-bootstrap-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            t0 = time.monotonic()
            self.log(f"debootstrap --variant=minbase {suite} from {mirror}")
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
                raise ImageError(f"debootstrap {suite} failed (exit {proc.returncode}):\n{tail}")
            # Leave no apt lists or caches in the image, like the official images.
            for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (rootfs / sub).glob("*"):
                    if p.is_file():
                        p.unlink()
            tarball = Path(tmp) / "rootfs.tar"
            subprocess.run(
                ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True
            )
            repo, _, t = tag.rpartition(":")
            resp = self.client.api.import_image_from_file(
                str(tarball), repository=repo, tag=t, changes=['CMD ["bash"]']
            )
            self.log(f"imported {tag} in {time.monotonic() - t0:.0f}s")
            img = _local_image(self.client, tag)
            if img is None:
                raise ImageError(f"docker import of {tag} failed: {resp}")
            return img.id

    # -- task images
    def substitutions_for(self, task: Task, *, force_build: bool | None = None) -> list[Substitution]:
        """The image-map substitutions building ``task`` makes (``[]`` without an image map).

        Reads only the task's Dockerfile ``FROM`` lines (or its ``docker_image``): no Docker engine needed.
        """
        if not self.image_map:
            return []
        image = self.prebuilt_image(task, force_build=force_build)
        if image:
            target = self.image_map.lookup(image)
            return [Substitution(image, target, "docker_image")] if target else []
        if task.dockerfile is None:
            return []
        out: list[Substitution] = []
        for base in dockerfile_bases(task.dockerfile):
            target = self.image_map.lookup(base)
            if target and all(s.source != base for s in out):
                out.append(Substitution(base, target, "FROM"))
        return out

    def _build_inputs(
        self, task: Task, *, force_build: bool | None = None
    ) -> tuple[list[Substitution], str, dict[str, str]]:
        """What besides the build context decides the image: substitutions, Dockerfile name, build args.
        (Secrets lent by :mod:`ltenv.sandbox.build_config` are not among them: they never change the tag.)"""
        compose = task.terminal_bench.compose if task.terminal_bench else None
        dockerfile = compose.dockerfile if compose else "Dockerfile"
        subs = self.substitutions_for(task, force_build=force_build)
        return subs, dockerfile, dict(compose.build_args) if compose else {}

    def _build_signature(self, task: Task, *, force_build: bool | None = None) -> str:
        subs, dockerfile, args = self._build_inputs(task, force_build=force_build)
        if not subs and dockerfile == "Dockerfile" and not args:
            return ""  # what every plain task has: tags of existing images stay valid
        return json.dumps(
            {"image_map": [str(x) for x in subs], "dockerfile": dockerfile, "build_args": args},
            sort_keys=True,
        )

    def task_tag(self, task: Task, base_ids: list[str], *, force_build: bool | None = None) -> str:
        """``ltenv-task/<name>:<digest>`` over the build context, the base image ids and, when there are any,
        the image-map substitutions, the Dockerfile name and build args (a new mapping means a new tag)."""
        h = hashlib.sha256(task.environment_digest().encode())
        for b in base_ids:
            h.update(b.encode())
        sig = self._build_signature(task, force_build=force_build)
        if sig:
            h.update(sig.encode())
        return f"ltenv-task/{image_name(task.name)}:{h.hexdigest()[:16]}"

    def prebuilt_image(self, task: Task, *, force_build: bool | None = None) -> str | None:
        """The prebuilt ``docker_image`` the task runs on, or ``None`` when it is built from its Dockerfile
        (no ``docker_image``, or ``force_build`` -- default: the store's -- and a Dockerfile to build)."""
        image = task.config.environment.docker_image
        force = self.force_build if force_build is None else force_build
        if image and force:
            if task.dockerfile is None:
                raise ImageError(
                    f"task {task.name!r}: --force-build needs a Dockerfile to build, and there is none at "
                    f"{task.environment_dir} (the task only names the prebuilt image {image!r})"
                )
            return None
        return image

    def build(
        self,
        task: Task,
        *,
        registry: Path | None = None,
        force: bool = False,
        force_build: bool | None = None,
    ) -> str:
        """Build the task image (bases first) and return its tag. Unchanged tasks are not rebuilt.

        ``force`` rebuilds even when the tag exists. ``force_build`` (default: the store's setting) builds
        from the task's Dockerfile even when ``task.toml`` names a prebuilt ``docker_image``.

        With an image map, a mapped ``docker_image`` is replaced by its stand-in (built on demand when it
        is a project recipe), and mapped ``FROM`` images are rewritten in an in-memory copy of the
        Dockerfile: the task folder is never written to, and no foreign name is ever tagged locally.
        """
        env = task.config.environment
        prebuilt = self.prebuilt_image(task, force_build=force_build)
        if prebuilt:
            image = self.image_map.lookup(prebuilt) or prebuilt
            try:
                self.ensure_base(image, registry=registry)
            except ImageError as e:
                hint = (
                    " Build it from the task's Dockerfile instead with --force-build (force_build=True),"
                    if task.dockerfile is not None
                    else ""
                )
                raise ImageError(
                    f"task {task.name!r}: [environment] docker_image {prebuilt!r} is not available.{hint} "
                    f"or map it to a local image with --image-map FILE.\n  {e}"
                ) from None
            return image
        dockerfile = _checked_context(task)
        if dockerfile is None:
            raise ImageError(f"task {task.name!r}: no Dockerfile at {task.environment_dir}")
        subs, dockerfile_name, build_args = self._build_inputs(task, force_build=force_build)
        mapped = {s.source: s.target for s in subs}
        base_ids = [
            self.ensure_base(mapped.get(b, b), registry=registry) for b in dockerfile_bases(dockerfile)
        ]
        tag = self.task_tag(task, base_ids, force_build=force_build)
        if not force and _local_image(self.client, tag) is not None:
            return tag
        self.log(f"building {tag}" + "".join(f"\n  image map: {s}" for s in subs))
        text = None
        if subs:
            text = rewrite_from_lines(dockerfile.read_text(encoding="utf-8"), self.image_map)
        self._build(
            task.environment_dir,
            tag,
            labels={"ltenv.task": task.name},
            timeout=env.build_timeout_sec,
            dockerfile=dockerfile_name,
            dockerfile_text=text,
            build_args=build_args,
        )
        return tag

    def _build(
        self,
        context: Path,
        tag: str,
        *,
        labels: dict[str, str],
        timeout: float,
        dockerfile: str = "Dockerfile",
        dockerfile_text: str | None = None,
        build_args: dict[str, str] | None = None,
    ) -> str:
        """``docker build`` of ``context``; with ``dockerfile_text``, from an in-memory context holding that
        Dockerfile instead of the one on disk. Where a docker CLI with BuildKit is found, the build runs on
        BuildKit with the host's settings (:attr:`host_config`) as secrets (:meth:`_build_with_secrets`);
        otherwise on the engine's classic builder, with none."""
        # Every build goes through BuildKit when a CLI for it is here, with or without secrets to lend: one
        # builder, one build cache, the same layers whatever the host lends.
        host = self.host_config or HostBuildConfig()
        cli = None if self._engine_without_buildkit else build_config.buildkit_cli()
        if cli is not None:
            text = dockerfile_text
            if text is None:
                text = (context / dockerfile).read_text(encoding="utf-8")
            try:
                return self._build_with_secrets(
                    cli, context, tag, host, labels=labels, timeout=timeout, text=text, build_args=build_args
                )
            except _EngineWithoutBuildKit as e:  # e.g. podman's Docker-compatible socket
                self._engine_without_buildkit = True
                log.warning("the engine cannot build with BuildKit (%s); using its classic builder", e)
        if not host.empty and not self._warned_no_buildkit:
            self._warned_no_buildkit = True
            log.warning(
                "the host's package-index settings (%s) are not lent to builds: no docker CLI with "
                "BuildKit found (install docker-buildx, or set LTENV_DOCKER_CLI)",
                "; ".join(host.summary()),
            )
        lines: list[str] = []
        image_id = None
        t0 = time.monotonic()
        source: dict[str, Any] = {"path": str(context)}
        if dockerfile != "Dockerfile":
            source["dockerfile"] = dockerfile
        if dockerfile_text is not None:
            from docker.utils.build import tar

            name = ".ltenv.Dockerfile"
            fileobj = tar(str(context), exclude=_dockerignore(context), dockerfile=(name, dockerfile_text))
            source = {"fileobj": fileobj, "custom_context": True, "dockerfile": name}
        args = {**(build_args or {}), **proxy_build_args()}
        try:
            for chunk in self.client.api.build(
                **source,
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                labels=labels,
                buildargs=args or None,
                timeout=int(timeout) + 60,
            ):
                if "stream" in chunk:
                    lines.extend(chunk["stream"].rstrip("\n").splitlines())
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    tail = "\n".join(lines[-20:])
                    raise ImageError(
                        f"building {tag} from {context} failed: {chunk['error'].strip()}\n{tail}"
                        + self._tls_hint(tail)
                    )
                if time.monotonic() - t0 > timeout:
                    raise ImageError(f"building {tag} from {context} exceeded build_timeout_sec={timeout:g}")
        except ImageError:
            raise
        except Exception as e:
            tail = "\n".join(lines[-20:])
            raise ImageError(f"building {tag} from {context} failed: {e}\n{tail}") from None
        img = _local_image(self.client, tag)
        if img is None:
            raise ImageError(f"building {tag} produced no image")
        return image_id or img.id

    def _tls_hint(self, output: str) -> str:
        """What to do when a build step failed to verify a certificate (a network with its own CA)."""
        if not re.search(
            r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLError|SSL certificate", output
        ):
            return ""
        if not self._host_config_wanted:
            return (
                "\n(a certificate could not be verified inside the build: builds inherit the host's CA bundle "
                "and package-index settings unless LTENV_HOST_BUILD_CONFIG=0 or --no-host-build-config)"
            )
        if build_config.buildkit_cli() is None:
            return "\n(the host's CA bundle is not lent to builds: no docker CLI with BuildKit; see LTENV_DOCKER_CLI)"
        return ""

    @property
    def host_build_config_enabled(self) -> bool:
        """Whether builds lend the host's package-index settings (see :mod:`ltenv.sandbox.build_config`)."""
        return self._host_config_wanted

    def with_options(self, *, force_build: bool) -> ImageStore:
        """This store (same cache, Docker client and image map) with another ``force_build`` setting."""
        if force_build == self.force_build:
            return self
        other = copy.copy(self)
        other.force_build = force_build
        return other

    @property
    def host_config(self) -> HostBuildConfig | None:
        """The host settings lent to builds (detected once), or ``None`` when that is switched off."""
        if not self._host_config_wanted:
            return None
        if self._host_config is None:
            self._host_config = HostBuildConfig.detect()
            if not self._host_config.empty:
                self.log("builds inherit from the host: " + "; ".join(self._host_config.summary()))
        return self._host_config

    def _build_with_secrets(
        self,
        cli: str,
        context: Path,
        tag: str,
        host: HostBuildConfig,
        *,
        labels: dict[str, str],
        timeout: float,
        text: str,
        build_args: dict[str, str] | None,
    ) -> str:
        """``docker build`` on BuildKit with the host's settings as secrets mounted into every ``RUN`` step
        (the Dockerfile goes in on stdin, rewritten in memory); nothing of them reaches the image."""
        with host.secrets() as secrets, tempfile.TemporaryDirectory(prefix="ltenv-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            cmd = [cli, "build", "--progress=plain", "--file", "-", "--tag", tag, "--iidfile", str(iidfile)]
            cmd += [f"--label={k}={v}" for k, v in labels.items()]
            args = {**(build_args or {}), **proxy_build_args()}
            cmd += [f"--build-arg={k}={v}" for k, v in args.items()]
            cmd += secrets.cli_flags()
            cmd.append(str(context))
            dockerfile = build_config.lend_to_dockerfile(text, secrets)
            try:
                proc = subprocess.run(
                    cmd,
                    input=dockerfile,
                    capture_output=True,
                    text=True,
                    timeout=timeout + 60,
                    env=build_config.docker_host_env(),
                )
            except subprocess.TimeoutExpired:
                raise ImageError(
                    f"building {tag} from {context} exceeded build_timeout_sec={timeout:g}"
                ) from None
            except OSError as e:
                raise ImageError(f"building {tag} from {context} failed: cannot run {cli}: {e}") from None
            if proc.returncode != 0:
                # The task's own steps, as its author wrote them: the secret mounts we added are left out.
                output = _LENT_MOUNTS.sub("", proc.stdout + proc.stderr)
                tail = "\n".join(output.splitlines()[-25:])
                if re.search(r"buildkit not supported|session not supported", tail, re.IGNORECASE):
                    raise _EngineWithoutBuildKit(tail.strip().splitlines()[-1])
                lines = [x.strip() for x in output.splitlines() if x.strip()]
                why = next(
                    (x for x in reversed(lines) if "ERROR" in x or "failed" in x), lines[-1] if lines else ""
                )
                raise ImageError(
                    f"building {tag} from {context} failed (exit {proc.returncode}): {why}\n{tail}"
                    f"{self._tls_hint(tail)}"
                )
            image_id = iidfile.read_text().strip() if iidfile.is_file() else ""
        img = _local_image(self.client, tag)
        if img is None:
            raise ImageError(f"building {tag} produced no image")
        return image_id or img.id

    # -- export to the layer cache
    def prepare(
        self, task: Task, *, registry: Path | None = None, force_build: bool | None = None
    ) -> PreparedImage:
        """Layers and config for a task, from the cache when the task's environment is unchanged.

        Needs a Docker engine only the first time (to build and export). ``force_build`` (default: the
        store's setting) builds from the Dockerfile even when the task names a prebuilt ``docker_image``.
        """
        digest = self._environment_digest(task)
        build_sig = self._build_signature(task, force_build=force_build)
        prebuilt = self.prebuilt_image(task, force_build=force_build) or ""
        ref = self._ref_path(task.name)
        if ref.is_file():
            try:
                data = json.loads(ref.read_text())
                if (
                    data.get("environment_digest") == digest
                    and data.get("docker_image") == prebuilt
                    and data.get("build", "") == build_sig
                ):
                    prepared = self.cached(data["image_id"])
                    if prepared is not None:
                        return prepared
            except (ValueError, KeyError, OSError):
                pass
        with self._lock(f"task-{task.name}"):
            tag = self.build(task, registry=registry, force_build=force_build)
            prepared = self.export(tag)
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.with_suffix(".tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "environment_digest": digest,
                        "docker_image": prebuilt,
                        "build": build_sig,
                        "image_id": prepared.image_id,
                        "tag": tag,
                    }
                )
            )
            tmp.replace(ref)
            return prepared

    def _environment_digest(self, task: Task) -> str:
        """``task.environment_digest()``, recomputed only when a file under ``environment/`` changed.

        ``prepare`` runs on every reset: stat-ing the tree is cheap, reading every input file is not.
        """
        sig = _stat_signature(task.environment_dir)
        hit = self._digests.get(task.environment_dir)
        if hit is not None and hit[0] == sig:
            return hit[1]
        digest = task.environment_digest()
        self._digests[task.environment_dir] = (sig, digest)
        return digest

    def cached(self, image_id: str) -> PreparedImage | None:
        """The prepared image if its manifest and every layer are in the cache, else ``None``."""
        mp = self._manifest_path(image_id)
        if not mp.is_file():
            return None
        data = json.loads(mp.read_text())
        layers = tuple(self.layer_dir(d) for d in data["layers"])
        if not all(p.is_dir() for p in layers):
            return None
        cfg = data.get("config", {})
        return PreparedImage(
            image_id=data["id"],
            layers=layers,
            config=ImageConfig(
                env=cfg.get("env", {}), workdir=cfg.get("workdir", ""), user=cfg.get("user", "")
            ),
            tag=data.get("tag", ""),
        )

    def export(self, ref: str) -> PreparedImage:
        """Unpack the layers of image ``ref`` into the cache (only the missing ones) and record its manifest."""
        img = _local_image(self.client, ref)
        if img is None:
            raise ImageError(f"image {ref!r} not found in the Docker engine")
        prepared = self.cached(img.id)
        if prepared is not None:
            return prepared
        attrs = img.attrs
        diff_ids: list[str] = list(attrs.get("RootFS", {}).get("Layers") or [])
        missing = {d for d in diff_ids if not self.layer_dir(d).is_dir()}
        if missing:
            t0 = time.monotonic()
            engine_dirs = self._engine_layer_dirs(attrs, diff_ids)
            if engine_dirs:
                for d in diff_ids:
                    if d in missing:
                        self._copy_layer(engine_dirs[d], d)
            else:
                self._save_layers(img, missing)
            self.log(f"exported {len(missing)} layer(s) of {ref} in {time.monotonic() - t0:.1f}s")
        still = [d for d in diff_ids if not self.layer_dir(d).is_dir()]
        if still:
            raise ImageError(f"export of {ref}: layers {still} not found in `docker save` output")
        config = ImageConfig.from_docker(attrs.get("Config"))
        manifest = {
            "id": img.id,
            "tag": ref,
            "layers": diff_ids,
            "config": {"env": config.env, "workdir": config.workdir, "user": config.user},
        }
        mp = self._manifest_path(img.id)
        mp.parent.mkdir(parents=True, exist_ok=True)
        tmp = mp.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(mp)
        prepared = self.cached(img.id)
        assert prepared is not None
        return prepared

    def _engine_layer_dirs(self, attrs: dict, diff_ids: list[str]) -> dict[str, Path] | None:
        """The engine's own unpacked layer directories, when it is a local overlay2 engine we can read.

        They already use kernel whiteouts, so copying one is a plain ``cp -a``: a task layer of a few
        megabytes is cached in milliseconds instead of streaming the whole image through ``docker save``.
        """
        if self.mode != "ovl" or os.environ.get("LTENV_NO_ENGINE_LAYERS"):
            return None
        gd = attrs.get("GraphDriver") or {}
        data = gd.get("Data") or {}
        if gd.get("Name") != "overlay2" or not data.get("UpperDir"):
            return None
        dirs = [*reversed([p for p in (data.get("LowerDir") or "").split(":") if p]), data["UpperDir"]]
        if len(dirs) != len(diff_ids) or not all(os.path.isdir(p) for p in dirs):
            return None
        return {d: Path(p) for d, p in zip(diff_ids, dirs, strict=True)}

    def _copy_layer(self, src: Path, diff_id: str) -> None:
        base = self.root / "layers" / self.mode
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            proc = subprocess.run(["cp", "-a", f"{src}/.", str(tmp)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ImageError(f"copying layer {diff_id} from {src} failed: {proc.stderr.strip()[-300:]}")
            dest = self.layer_dir(diff_id)
            if not dest.is_dir():
                tmp.rename(dest)
                tmp = None  # type: ignore[assignment]
        finally:
            if tmp is not None and tmp.exists():
                _rmtree(tmp)

    def _save_layers(self, img, wanted: set[str]) -> None:
        """Stream ``docker save`` and unpack the wanted layers; the layer's sha256 is its diff id."""
        (self.root / "layers" / self.mode).mkdir(parents=True, exist_ok=True)
        stream = _ChunkReader(img.save(named=False))
        with tarfile.open(fileobj=stream, mode="r|") as outer:
            for member in outer:
                if not member.isfile() or member.name.endswith((".json", "repositories", "oci-layout")):
                    continue
                name = member.name
                if name.startswith("blobs/sha256/"):
                    digest = "sha256:" + name.rsplit("/", 1)[1]
                    if digest not in wanted:
                        continue
                elif not name.endswith("layer.tar"):
                    continue
                fobj = outer.extractfile(member)
                assert fobj is not None
                self._unpack_layer(fobj, wanted)

    def _unpack_layer(self, fobj, wanted: set[str]) -> None:
        base = self.root / "layers" / self.mode
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            proc = subprocess.Popen(
                ["tar", "-x", "--numeric-owner", "-p", "--no-same-permissions", "-C", str(tmp), "-f", "-"]
                if os.geteuid() != 0
                else ["tar", "-x", "--numeric-owner", "-p", "--xattrs", "-C", str(tmp), "-f", "-"],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            h = hashlib.sha256()
            assert proc.stdin is not None
            try:
                for chunk in iter(lambda: fobj.read(1 << 20), b""):
                    h.update(chunk)
                    proc.stdin.write(chunk)
            finally:
                proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if proc.wait() != 0:
                raise ImageError(f"unpacking a layer failed: {err.strip()[-500:]}")
            digest = "sha256:" + h.hexdigest()
            dest = self.layer_dir(digest)
            if digest not in wanted or dest.is_dir():
                return
            if self.mode == "ovl":
                _convert_whiteouts(tmp)
            tmp.rename(dest)
            tmp = None  # type: ignore[assignment]
        finally:
            if tmp is not None and tmp.exists():
                _rmtree(tmp)

    # -- the Docker backend runs images in the engine directly
    def engine_image(
        self, task: Task, *, registry: Path | None = None, force_build: bool | None = None
    ) -> tuple[str, ImageConfig]:
        """The engine-side image of a task (built if needed) and its runtime config.

        Remembered per task while its ``environment/`` is unchanged, so a reset costs one image inspect.
        """
        digest = (
            self._environment_digest(task) + "|" + (self.prebuilt_image(task, force_build=force_build) or "")
        )
        hit = self._engine_images.get(task.path)
        if hit is not None and hit[0] == digest:
            try:
                attrs = self.client.api.inspect_image(hit[1])
                return hit[1], ImageConfig.from_docker(attrs.get("Config"))
            except Exception:
                pass  # removed since: build again
        with self._lock(f"task-{task.name}"):
            tag = self.build(task, registry=registry, force_build=force_build)
        attrs = self.client.api.inspect_image(tag)
        config = ImageConfig.from_docker(attrs.get("Config"))
        self._engine_images[task.path] = (digest, tag, config)
        return tag, config

    def remove_layers(self) -> int:
        """Delete the whole layer cache; returns bytes freed (approximate)."""
        total = 0
        for p in (self.root / "layers", self.root / "images", self.root / "refs"):
            if p.exists():
                total += sum(f.lstat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
                _rmtree(p)
        return total


class _EngineWithoutBuildKit(Exception):
    """The docker CLI can build with BuildKit, the engine behind it cannot."""


def _checked_context(task: Task) -> Path | None:
    """The task's Dockerfile, once its build context is checked again (the folder may have changed since it
    loaded): nothing the host reads there leads outside the task folder. ``docker build`` sends the context's
    other links as links and never follows them."""
    from ltenv.errors import TaskLoadError
    from ltenv.tasks.contain import check_build_context

    try:
        dockerfile = task.dockerfile
        check_build_context(task.path, task.environment_dir, dockerfile)
    except TaskLoadError as e:
        raise ImageError(f"not building {task.name!r}: {e}") from None
    return dockerfile


def _stat_signature(root: Path) -> tuple:
    """Paths, sizes, modes and modification times of every entry below ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            st = os.lstat(os.path.join(dirpath, fn))
            out.append((dirpath, fn, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ino))
    return tuple(out)


class _ChunkReader:
    """A file-like view of an iterator of byte chunks (the Docker SDK's streamed `save`)."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _convert_whiteouts(root: Path) -> None:
    """Turn OCI whiteouts (``.wh.name``, ``.wh..wh..opq``) into kernel overlayfs ones (0/0 char device, xattr)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for fn in filenames:
            if not fn.startswith(".wh."):
                continue
            p = os.path.join(dirpath, fn)
            os.unlink(p)
            if fn == ".wh..wh..opq":
                os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
            else:
                os.mknod(os.path.join(dirpath, fn[4:]), 0o600 | 0o020000, os.makedev(0, 0))


def _rmtree(path: Path) -> None:
    def onerror(func, p, exc):
        # Read-only directories inside layers (e.g. /proc placeholders): make writable and retry.
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)
