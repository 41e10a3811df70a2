"""Keep sandboxes that have internet access off the host's own services.

Left alone, a sandbox with ``allow_internet`` reaches every service the host listens on at any of its addresses
(a model server, Ray's dashboard or a database bound to ``0.0.0.0``): Docker's bridge routes to the host, and
``pasta`` (bwrap's user-mode networking) opens its connections from the host's network namespace. One set of
firewall rules on the host closes both ways, DNS excepted:

* docker: episodes join bridges whose interface names start with :data:`BRIDGE_PREFIX`; whatever arrives from
  such an interface for the host itself (the ``INPUT`` chain) is dropped. Forwarded traffic (the internet,
  through Docker's NAT) is untouched.
* bwrap: ``pasta`` runs under the group :data:`ltenv.sandbox.confine.PASTA_GID`; its connections to any of the
  host's own addresses (the ``OUTPUT`` chain, ``addrtype LOCAL``) are refused.

* :data:`INTERNET_NETWORK`: the shared network of single-container episodes, with inter-container traffic
  off (``enable_icc=false``), so one episode cannot reach another's services either;
* multi-service episodes name their own bridge with :func:`bridge_name` (their services talk to each other).

The rules need root and ``iptables`` on the engine's host; :func:`guard` reports why they could not be
installed, and callers then fall back to Docker's default bridge with a warning.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from typing import Any

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "ltenvi"
"""Interface names of guarded bridges start with this (Linux allows 15 characters in all)."""
INTERNET_NETWORK = "ltenv-internet"
"""The Docker network single-container episodes with ``allow_internet`` join."""
NETWORK_LABEL = "ltenv.shared-network"

# Inserted at the top of INPUT in this order: DNS to a resolver on the host still works (Docker points
# containers at the host's resolvers), everything else from a guarded bridge to the host is dropped.
_RULES = (
    ["-i", f"{BRIDGE_PREFIX}+", "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
    ["-i", f"{BRIDGE_PREFIX}+", "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
    ["-i", f"{BRIDGE_PREFIX}+", "-j", "DROP"],
)
_COMMENT = ["-m", "comment", "--comment", "ltenv: sandboxes may not reach host services"]


def _pasta_rules() -> tuple[list[str], ...]:
    from ltenv.sandbox.confine import PASTA_GID

    owner = ["-m", "owner", "--gid-owner", str(PASTA_GID)]
    return (
        [*owner, "-p", "udp", "--dport", "53", "-j", "ACCEPT"],  # DNS forwarded to a loopback resolver
        [*owner, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
        [*owner, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "REJECT"],
    )


_lock = threading.Lock()
_state: dict[str, Any] = {}


def bridge_name(key: str) -> str:
    """The interface name of a guarded bridge for ``key`` (a short unique id)."""
    return (BRIDGE_PREFIX + key)[:15]


def _install(tool: str) -> None:
    _install_chain(tool, "INPUT", _RULES)
    _install_chain(tool, "OUTPUT", _pasta_rules())


def _install_chain(tool: str, chain: str, rules: tuple[list[str], ...]) -> None:
    rules = tuple([*r[:-2], *_COMMENT, *r[-2:]] for r in rules)
    present = [
        subprocess.run([tool, "-w", "-C", chain, *r], capture_output=True).returncode == 0 for r in rules
    ]
    if all(present):
        return
    for r, there in zip(rules, present, strict=True):  # re-insert in order: ACCEPTs above the DROP/REJECT
        if there:
            subprocess.run([tool, "-w", "-D", chain, *r], capture_output=True, check=True)
    for r in reversed(rules):
        proc = subprocess.run([tool, "-w", "-I", chain, "1", *r], capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(f"{tool} -I {chain} failed: {proc.stderr.strip() or proc.returncode}")


def guard() -> str | None:
    """Install the host's firewall rules once per process; ``None`` when they are in place, else why not."""
    with _lock:
        if "why" not in _state:
            _state["why"] = _guard()
        return _state["why"]


def _guard() -> str | None:
    if os.geteuid() != 0:
        return "not root: the host's firewall cannot be set"
    tool = shutil.which("iptables")
    if tool is None:
        return "iptables is not installed"
    try:
        _install(tool)
    except (OSError, subprocess.CalledProcessError) as e:
        return f"iptables failed: {e}"
    six = shutil.which("ip6tables")
    if six is not None:
        try:
            _install(six)
        except (OSError, subprocess.CalledProcessError) as e:
            log.warning("ip6tables rules not installed (%s); IPv6 is off on ltenv's bridges anyway", e)
    return None


def warn_unguarded(why: str) -> None:
    """Say once per process that sandboxes with internet access can reach the host's services, and why."""
    with _lock:
        if _state.get("warned"):
            return
        _state["warned"] = True
    log.warning("sandboxes with internet access can reach services on the host's addresses: %s", why)


def internet_network(api: Any) -> str:
    """The network for a single-container episode with ``allow_internet``: :data:`INTERNET_NETWORK` behind
    the host's firewall rules, or Docker's default ``bridge`` (with a warning, once) where they cannot be
    installed."""
    from ltenv.sandbox.docker import engine_is_local

    why = guard() if engine_is_local() else "the Docker engine is on another machine (DOCKER_HOST)"
    if why is not None:
        warn_unguarded(why)
        return "bridge"
    with _lock:
        if _state.get("network"):
            return INTERNET_NETWORK
        if not _existing(api):
            try:
                api.create_network(
                    INTERNET_NETWORK,
                    driver="bridge",
                    options={
                        "com.docker.network.bridge.name": bridge_name("0"),
                        "com.docker.network.bridge.enable_icc": "false",
                    },
                    labels={NETWORK_LABEL: "1"},
                    check_duplicate=True,
                )
            except Exception as e:  # another process made it first
                if not _existing(api):
                    raise OSError(f"creating the {INTERNET_NETWORK} network failed: {e}") from None
        options = _existing(api)[0].get("Options") or {}
        if options.get("com.docker.network.bridge.name") != bridge_name("0"):
            raise OSError(
                f"a Docker network named {INTERNET_NETWORK} exists without the bridge {bridge_name('0')} that the "
                f"host's firewall rules guard; remove it (docker network rm {INTERNET_NETWORK})"
            )
        _state["network"] = True
        return INTERNET_NETWORK


def _existing(api: Any) -> list[dict]:
    return [n for n in api.networks(names=[INTERNET_NETWORK]) if n.get("Name") == INTERNET_NETWORK]
