"""Docker sandboxes and the network (issue 15, item 3): what the agent's shell can reach, and a shell restart.

* ``allow_internet = false``: no network at run time, not even the host's bridge address;
* ``allow_internet = true``: the bridge works (a host service on all addresses answers), but host services
  bound to the host's loopback stay out of reach, by any address the container can try;
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


def test_internet_reaches_the_bridge_but_never_the_hosts_loopback(start, services):
    _, sh = start(allow_internet=True)
    gateway = _bridge_gateway()
    # The control: the network works, a host service on every address answers through the bridge.
    assert TOKEN in sh.run(PROBE.format(host=gateway, port=services["public"])).output
    # The host's loopback service answers no address the container can name: its own 127.0.0.1 is its own
    # loopback, and the host's addresses reach only services bound to them.
    for host in ["127.0.0.1", "localhost", *_host_addresses()]:
        out = sh.run(PROBE.format(host=host, port=services["loopback"])).output
        assert TOKEN not in out and "rc=0" not in out, f"{host}: {out}"
    # Raw packets to 127.0.0.1 sent to the bridge are dropped as martians unless route_localnet is set on it
    # (Kubernetes' kube-proxy sets it): then the host's loopback services would be exposed.
    for conf in ("all", "docker0"):
        path = Path(f"/proc/sys/net/ipv4/conf/{conf}/route_localnet")
        if path.exists():
            assert path.read_text().strip() == "0", (
                f"{path} is set: containers can reach host loopback services"
            )


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
