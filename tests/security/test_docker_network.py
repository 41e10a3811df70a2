"""Docker sandboxes and the network (issue 15, item 3): what the agent's shell can reach, and a shell restart.

* ``allow_internet = false``: no network at run time, not even the host's bridge address;
* ``allow_internet = true``: a route out through Docker's NAT and DNS, but no host service (bound to
  loopback or to every address) answers at any address the container can try, nor another episode;
* the session restarting its shell (after ``exec bash`` left it unresponsive) never takes the container down.

Host services are real sockets in this process; the agent side is a real shell in a real container.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from ltenv.sandbox import create_sandbox
from ltenv.sandbox.docker import api_client
from ltenv.terminal import ShellSession

pytestmark = pytest.mark.docker

TOKEN = "host-service-5e1b"
# Connect with bash alone (no curl in the image): prints what the service sent, or why it failed.
PROBE = "timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port} && head -c 64 <&3' 2>&1; echo \" rc=$?\""


@pytest.fixture
def services():
    """Two host services that greet with :data:`TOKEN`: one on loopback only, one on every address."""
    socks, stop = [], threading.Event()

    def serve(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn, contextlib.suppress(OSError):
                conn.sendall(TOKEN.encode())

    ports = {}
    for name, addr in (("loopback", "127.0.0.1"), ("public", "0.0.0.0")):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, 0))
        s.listen(8)
        socks.append(s)
        ports[name] = s.getsockname()[1]
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    yield ports
    stop.set()
    for s in socks:
        s.close()


@pytest.fixture
def start(store, fixture_task):
    made = []

    def start(**overrides):
        sb = create_sandbox(fixture_task("write-greeting"), backend="docker", store=store, **overrides)
        made.append(sb)
        sh = ShellSession(sb, timeout=20)
        sb.start(pty=sh.pty_request())
        sh.start()
        made.append(sh)
        return sb, sh

    yield start
    for thing in reversed(made):
        thing.close()


def _bridge_gateway() -> str:
    config = api_client().inspect_network("bridge")["IPAM"]["Config"]
    return next(c["Gateway"] for c in config if "." in c.get("Gateway", ""))


def _host_addresses() -> list[str]:
    """The host's own IPv4 addresses other than loopback (as the container might try them)."""
    addrs = {_bridge_gateway()}
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addrs.add(info[4][0])
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outbound address
        addrs.add(s.getsockname()[0])
    return sorted(a for a in addrs if not a.startswith("127."))


def test_no_internet_means_no_network_at_run_time(start, services):
    sb, sh = start(allow_internet=False)
    assert api_client().inspect_container(sb.container_id)["HostConfig"]["NetworkMode"] == "none"
    links = sh.run("ls /sys/class/net").output.split()
    assert links == ["lo"]
    assert sh.run("ip route; ip -6 route").output.strip() == ""
    for host in _host_addresses():
        out = sh.run(PROBE.format(host=host, port=services["public"])).output
        assert TOKEN not in out and "rc=0" not in out, f"{host}: {out}"
    out = sh.run(PROBE.format(host="127.0.0.1", port=services["loopback"])).output
    assert TOKEN not in out, out


def test_internet_never_reaches_a_host_service_at_any_address(start, services):
    """With ``allow_internet`` the container gets a route out (through Docker's NAT) and DNS, but no service
    of the host answers it: not one bound to loopback, not one bound to every address (a model server on
    0.0.0.0), whichever host address it tries — the bridge's gateway included."""
    from ltenv.sandbox import netguard

    sb, sh = start(allow_internet=True)
    assert netguard.guard() is None
    attrs = api_client().inspect_container(sb.container_id)
    assert attrs["HostConfig"]["NetworkMode"] == netguard.INTERNET_NETWORK
    [net] = [
        n
        for n in api_client().networks(names=[netguard.INTERNET_NETWORK])
        if n["Name"] == netguard.INTERNET_NETWORK
    ]
    assert net["Options"]["com.docker.network.bridge.name"].startswith(netguard.BRIDGE_PREFIX)
    assert net["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    gateway = attrs["NetworkSettings"]["Networks"][netguard.INTERNET_NETWORK]["Gateway"]
    assert sh.run("ip route").output.startswith(f"default via {gateway}")  # the way out is there
    for host in ["127.0.0.1", "localhost", gateway, *_host_addresses()]:
        for port in (services["loopback"], services["public"]):
            out = sh.run(PROBE.format(host=host, port=port)).output
            assert TOKEN not in out and "rc=0" not in out, f"{host}:{port}: {out}"
    # Raw packets to 127.0.0.1 sent to the bridge are dropped as martians unless route_localnet is set on it
    # (Kubernetes' kube-proxy sets it): then the host's loopback services would be exposed.
    for conf in ("all", "docker0"):
        path = Path(f"/proc/sys/net/ipv4/conf/{conf}/route_localnet")
        if path.exists():
            assert path.read_text().strip() == "0", (
                f"{path} is set: containers can reach host loopback services"
            )


def test_episodes_with_internet_cannot_reach_each_other(start):
    """Single-container episodes share one network with inter-container traffic off."""
    a, sh_a = start(allow_internet=True)
    _b, sh_b = start(allow_internet=True)
    sh_a.run("(python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &) ; sleep 1")
    connect = "timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/8000' 2>/dev/null && echo CONNECTED; echo done"
    assert "CONNECTED" in sh_a.run(connect.format(host="127.0.0.1")).output  # the control: it serves
    networks = api_client().inspect_container(a.container_id)["NetworkSettings"]["Networks"]
    [addr] = [n["IPAddress"] for n in networks.values()]
    out = sh_b.run(connect.format(host=addr)).output
    assert "done" in out and "CONNECTED" not in out, out


def test_a_shell_restart_never_kills_the_container(start):
    sb, sh = start()
    cid = sb.container_id
    assert sh.run("echo kept > /root/mark && echo $$").exit_code == 0
    # `exec bash` replaces the session's shell with one that knows nothing of the session: the command never
    # reports back, and the session ends up killing and restarting its shell.
    res = sh.run("exec bash", timeout=1)
    assert res.timed_out and res.shell_restarted, res
    assert sb.alive and sb.container_id == cid
    assert sh.run("cat /root/mark").output == "kept\n"
    # And a plain timeout (Ctrl-C works) keeps the shell itself.
    res = sh.run("sleep 30", timeout=1)
    assert res.timed_out and not res.shell_restarted
    assert sh.run("echo still").output == "still\n"
    assert api_client().inspect_container(cid)["State"]["Running"]
