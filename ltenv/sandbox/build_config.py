"""The host's package-index settings, lent to image builds without leaving them in the image.

Networks that reach PyPI, npm or Debian only through their own CA, a proxy or a private index make a task's
``RUN pip install ...`` fail inside the build container although it works on the host. The builder reads what
the host uses (:meth:`HostBuildConfig.detect`) and gives it to every ``RUN`` step of a build as BuildKit secrets
(``RUN --mount=type=secret``): the files exist only while a step runs and never reach a layer, the image
history or its config. Tools find them through environment variables that name the mounted files (paths
only, declared as build ``ARG``\\ s): ``PIP_CONFIG_FILE``, ``SSL_CERT_FILE``, ``APT_CONFIG``,
``NPM_CONFIG_GLOBALCONFIG``... Settings the image itself makes (``ENV``, its own config files) take precedence.

Task Dockerfiles are not ours, so the mounts are added by rewriting an in-memory copy of the Dockerfile
(:func:`lend_to_dockerfile`); the task folder is never written to. The switch is ``LTENV_HOST_BUILD_CONFIG=0``
(or ``--no-host-build-config``).
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_SWITCH = "LTENV_HOST_BUILD_CONFIG"
SECRETS_DIR = "/run/secrets"
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NPM_DEFAULT_REGISTRY = "https://registry.npmjs.org/"

# Secret ids (files under /run/secrets/ while a RUN step runs).
CA_ID = "ltenv-ca.crt"
PIP_CA_ID = "ltenv-pip-ca.crt"
PIP_CONF_ID = "ltenv-pip.conf"
APT_CONF_ID = "ltenv-apt.conf"
NPMRC_ID = "ltenv-npmrc"

_PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "find-links")
_APT_PROXY_RE = re.compile(r'^\s*(Acquire::(?:https?|ftp)::Proxy(?:::[^\s"]+)?)\s+"([^"]*)"\s*;', re.I)
_NPM_KEY_RE = re.compile(r"^\s*((?:@[^:=\s]+:)?registry|//[^=\s]+|strict-ssl|always-auth)\s*=\s*(.*?)\s*$")
_ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether builds inherit the host's settings: on unless ``LTENV_HOST_BUILD_CONFIG`` is 0/false/no/off."""
    value = (environ if environ is not None else os.environ).get(ENV_SWITCH, "")
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _network_urls(value: str) -> list[str]:
    # Host paths and file:// URLs mean nothing inside the build container.
    return [u for u in value.split() if u.startswith(("http://", "https://"))]


@dataclass(frozen=True)
class HostBuildConfig:
    """What builds inherit from the host. Every field may be empty; :attr:`empty` says whether any is set.

    Example:
        >>> cfg = HostBuildConfig.detect()              # doctest: +SKIP
        >>> cfg.summary()                               # doctest: +SKIP
        ['CA bundle /etc/ssl/certs/ca-certificates.crt', 'pip: index-url']
    """

    ca_bundle: Path | None = None
    """The host's CA bundle: ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE`` or ``/etc/ssl/certs/ca-certificates.crt``."""
    pip: dict[str, str] = field(default_factory=dict)
    """pip settings (``index-url``, ``extra-index-url``, ``trusted-host``, ``find-links``), network URLs only."""
    pip_cert: Path | None = None
    """pip's own ``cert`` (``PIP_CERT`` / pip.conf) when it is not :attr:`ca_bundle`."""
    apt: tuple[str, ...] = ()
    """apt.conf statements (``Acquire::http::Proxy "...";``)."""
    npm: tuple[str, ...] = ()
    """npmrc lines: registries and their auth (``registry=``, ``@scope:registry=``, ``//host/:_authToken=``)."""

    @property
    def empty(self) -> bool:
        return not (self.ca_bundle or self.pip or self.pip_cert or self.apt or self.npm)

    def summary(self) -> list[str]:
        """What is inherited, without any value that could be secret (URLs may hold tokens)."""
        out = []
        if self.ca_bundle:
            out.append(f"CA bundle {self.ca_bundle}")
        if self.pip or self.pip_cert:
            out.append("pip: " + ", ".join([*sorted(self.pip), *(["cert"] if self.pip_cert else [])]))
        if self.apt:
            out.append(f"apt: {len(self.apt)} proxy setting(s)")
        if self.npm:
            out.append(f"npm: {len(self.npm)} registry setting(s)")
        return out

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None, home: Path | None = None) -> HostBuildConfig:
        """Read the host's settings: the CA bundle, pip (``pip config list``, pip.conf files, ``PIP_*``),
        apt (``apt-config dump``, ``/etc/apt/apt.conf.d/*``) and npm (``~/.npmrc``, ``NPM_CONFIG_REGISTRY``,
        ``npm config get registry``). ``environ`` and ``home`` default to this process's."""
        env = dict(os.environ if environ is None else environ)
        home = Path(home) if home is not None else Path(env.get("HOME") or os.path.expanduser("~"))
        ca = None
        for cand in (env.get("SSL_CERT_FILE"), env.get("REQUESTS_CA_BUNDLE"), DEFAULT_CA_BUNDLE):
            if cand and Path(cand).is_file():
                ca = Path(cand)
                break
        pip, pip_cert = _detect_pip(env, home)
        if pip_cert is not None and ca is not None and pip_cert.resolve() == ca.resolve():
            pip_cert = None
        return cls(ca_bundle=ca, pip=pip, pip_cert=pip_cert, apt=_detect_apt(env), npm=_detect_npm(env, home))

    @contextlib.contextmanager
    def secrets(self) -> Iterator[BuildSecrets]:
        """The secret files of a build (generated ones in a private temporary folder, removed afterwards)."""
        with tempfile.TemporaryDirectory(prefix="ltenv-build-secrets-") as tmp:
            os.chmod(tmp, 0o700)
            files: dict[str, Path] = {}
            args: dict[str, str] = {}

            def mounted(secret_id: str) -> str:
                return f"{SECRETS_DIR}/{secret_id}"

            def write(secret_id: str, text: str) -> None:
                p = Path(tmp) / secret_id
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                files[secret_id] = p

            if self.ca_bundle:
                files[CA_ID] = self.ca_bundle
                for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
                    args[var] = mounted(CA_ID)
            pip_ca = None
            if self.pip_cert:
                files[PIP_CA_ID] = self.pip_cert
                pip_ca = mounted(PIP_CA_ID)
            elif self.ca_bundle:
                pip_ca = mounted(CA_ID)
            if self.pip or pip_ca:
                lines = ["[global]"] + [f"{k} = {v}" for k, v in sorted(self.pip.items())]
                if pip_ca:
                    lines.append(f"cert = {pip_ca}")
                write(PIP_CONF_ID, "\n".join(lines) + "\n")
                args["PIP_CONFIG_FILE"] = mounted(PIP_CONF_ID)
            apt = list(self.apt)
            if self.ca_bundle:
                apt.append(f'Acquire::https::CAInfo "{mounted(CA_ID)}";')
            if apt:
                write(APT_CONF_ID, "\n".join(apt) + "\n")
                args["APT_CONFIG"] = mounted(APT_CONF_ID)
            npm = list(self.npm)
            if self.ca_bundle:
                npm.append(f"cafile={mounted(CA_ID)}")
            if npm:
                write(NPMRC_ID, "\n".join(npm) + "\n")
                args["NPM_CONFIG_GLOBALCONFIG"] = mounted(NPMRC_ID)
            yield BuildSecrets(files=files, args=args)


@dataclass(frozen=True)
class BuildSecrets:
    """Secret files by id (host paths, for ``docker build --secret id=...,src=...``) and the build args that
    point tools at their mounted copies."""

    files: dict[str, Path]
    args: dict[str, str]

    def cli_flags(self) -> list[str]:
        return [f"--secret=id={sid},src={src}" for sid, src in sorted(self.files.items())]


def lend_to_dockerfile(text: str, secrets: BuildSecrets) -> str:
    """``text`` with every ``RUN`` step given the secrets (``--mount=type=secret``) and every stage the build
    args naming them (``ARG NAME=/run/secrets/...``).

    A ``# syntax=`` directive is dropped: the engine's built-in Dockerfile frontend is used, since a frontend
    image cannot be pulled where builds need this. ``ONBUILD RUN`` is left alone (it runs in other builds).
    """
    # Readable by any user, since a step may run under the image's USER (only that build step sees it).
    mounts = " ".join(f"--mount=type=secret,id={sid},mode=0444" for sid in sorted(secrets.files))
    arg_lines = [f"ARG {k}={v}" for k, v in sorted(secrets.args.items())]
    lines = text.splitlines(keepends=True)
    escape = "\\"
    out: list[str] = []
    i = 0
    # Parser directives: comment lines at the very top, before anything else.
    while i < len(lines):
        m = re.match(r"^\s*#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", lines[i])
        if not m:
            break
        key = m.group(1).lower()
        if key == "escape":
            escape = m.group(2)
        if key != "syntax":
            out.append(lines[i])
        i += 1
    continuing = False
    after_from = False
    for line in lines[i:]:
        body = line.rstrip("\r\n")
        eol = line[len(body) :] or "\n"
        stripped = body.strip()
        if continuing and (not stripped or stripped.startswith("#")):
            out.append(line)
            continue
        if not continuing:
            if not stripped or stripped.startswith("#"):
                out.append(line)
                continue
            keyword = stripped.split(None, 1)[0].upper()
            if keyword == "RUN" and mounts:
                indent = body[: len(body) - len(body.lstrip())]
                rest = body.lstrip()[3:]
                body = f"{indent}RUN {mounts}{rest}"
                line = body + eol
            after_from = keyword == "FROM"
        out.append(line)
        continuing = body.rstrip().endswith(escape)
        if after_from and not continuing:
            out.extend(a + eol for a in arg_lines)
            after_from = False
    return "".join(out)


# --------------------------------------------------------------------------- BuildKit through the docker CLI

_cli_cache: dict[str, str | None] = {}


def buildkit_cli() -> str | None:
    """A ``docker`` CLI that builds with BuildKit (``docker buildx`` present, or a client older than 23 with
    BuildKit built in), else ``None``. ``LTENV_DOCKER_CLI`` names one explicitly; otherwise every ``docker`` on
    ``PATH`` is tried in order."""
    key = os.environ.get("LTENV_DOCKER_CLI", "") + "|" + os.environ.get("PATH", "")
    if key in _cli_cache:
        return _cli_cache[key]
    explicit = os.environ.get("LTENV_DOCKER_CLI")
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    else:
        for d in os.environ.get("PATH", "").split(os.pathsep):
            p = os.path.join(d or ".", "docker")
            if (
                os.path.isfile(p)
                and os.access(p, os.X_OK)
                and os.path.realpath(p) not in map(os.path.realpath, candidates)
            ):
                candidates.append(p)
    found = None
    for cli in candidates:
        if _supports_buildkit(cli):
            found = cli
            break
    _cli_cache[key] = found
    return found


def _supports_buildkit(cli: str) -> bool:
    try:
        bx = subprocess.run([cli, "buildx", "version"], capture_output=True, text=True, timeout=20)
        if bx.returncode == 0:
            return True
        v = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.match(r"\s*(\d+)\.", v.stdout)
    # Clients before 23.0 carry BuildKit themselves; later ones need the buildx plugin.
    return bool(m) and 18 <= int(m.group(1)) < 23


def docker_host_env() -> dict[str, str]:
    """Environment for the docker CLI: this process's, with BuildKit on."""
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "1"
    return env


# --------------------------------------------------------------------------- detection helpers


def _pip_config_list() -> dict[str, str] | None:
    """``pip config list`` of the host's pip as ``{key: value}`` (later scopes win), or ``None`` without pip."""
    pip = shutil.which("pip3") or shutil.which("pip")
    cmd = [pip] if pip else [sys.executable, "-m", "pip"]
    try:
        proc = subprocess.run(
            [*cmd, "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^([^=]*)\.([\w-]+)=(.*)$", line.strip())
        if not m:
            continue
        scope, key, raw = m.groups()
        if scope not in {"global", "install", ":env:"}:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key] = str(value)
    return out


def _pip_files(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """pip settings read straight from its config files (when pip itself cannot be asked)."""
    out: dict[str, str] = {}
    paths = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"), home / ".pip/pip.conf"]
    paths += [home / ".config/pip/pip.conf"]
    if env.get("PIP_CONFIG_FILE"):
        paths.append(Path(env["PIP_CONFIG_FILE"]))
    for p in paths:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(p, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                out.update({k: v for k, v in parser.items(section)})
    return out


def _detect_pip(env: Mapping[str, str], home: Path) -> tuple[dict[str, str], Path | None]:
    listed = _pip_config_list() if environ_is_process(env) else None
    raw = listed if listed is not None else _pip_files(env, home)
    for key in (*_PIP_KEYS, "cert"):
        value = env.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            raw[key] = value
    pip: dict[str, str] = {}
    for key in ("index-url", "extra-index-url", "find-links"):
        urls = _network_urls(" ".join(raw.get(key, "").split()))
        if urls:
            pip[key] = urls[0] if key == "index-url" else " ".join(urls)
    if raw.get("trusted-host", "").split():
        pip["trusted-host"] = " ".join(raw["trusted-host"].split())
    cert = raw.get("cert")
    return pip, (Path(cert) if cert and Path(cert).is_file() else None)


def environ_is_process(env: Mapping[str, str]) -> bool:
    """Whether ``env`` is this process's environment (then the host's tools may be asked directly)."""
    return dict(env) == dict(os.environ)


def _detect_apt(env: Mapping[str, str]) -> tuple[str, ...]:
    lines: list[str] = []
    dump = None
    if environ_is_process(env) and shutil.which("apt-config"):
        try:
            proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=20)
            dump = proc.stdout if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            dump = None
    if dump is None:
        texts = []
        for p in [Path("/etc/apt/apt.conf"), *sorted(Path("/etc/apt/apt.conf.d").glob("*"))]:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if p.is_file():
                    texts.append(p.read_text(encoding="utf-8"))
        dump = "\n".join(texts)
    for line in dump.splitlines():
        m = _APT_PROXY_RE.match(line)
        if m and m.group(2):
            stmt = f'{m.group(1)} "{m.group(2)}";'
            if stmt not in lines:
                lines.append(stmt)
    return tuple(lines)


def _detect_npm(env: Mapping[str, str], home: Path) -> tuple[str, ...]:
    entries: dict[str, str] = {}
    rc = Path(env["NPM_CONFIG_USERCONFIG"]) if env.get("NPM_CONFIG_USERCONFIG") else home / ".npmrc"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if rc.is_file():
            for line in rc.read_text(encoding="utf-8").splitlines():
                m = _NPM_KEY_RE.match(line)
                if m and not line.lstrip().startswith(("#", ";")):
                    entries[m.group(1)] = _ENV_REF_RE.sub(lambda r: env.get(r.group(1), ""), m.group(2))
    registry = env.get("NPM_CONFIG_REGISTRY") or env.get("npm_config_registry")
    if not registry and "registry" not in entries and environ_is_process(env) and shutil.which("npm"):
        try:
            proc = subprocess.run(
                ["npm", "config", "get", "registry"], capture_output=True, text=True, timeout=30
            )
            registry = proc.stdout.strip() if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            registry = None
    if registry:
        entries["registry"] = registry
    if entries.get("registry", "").rstrip("/") + "/" == NPM_DEFAULT_REGISTRY:
        del entries["registry"]
    return tuple(f"{k}={v}" for k, v in entries.items())
