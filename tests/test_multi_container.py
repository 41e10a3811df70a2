"""Multi-service tasks: compose parsing, the docker backend's per-episode network and services, teardown,
the janitor and ``ltenv gc``, and bwrap's refusal. Real Docker, real containers, real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ltenv.errors import SandboxError, TaskLoadError, UnsupportedTaskError
from ltenv.tasks import load_task

WEB_DOCKERFILE = "FROM ltenv/base:bookworm\nWORKDIR /srv\nCOPY index.html /srv/index.html\n"
HEALTH = """    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/')"]
      interval: 0.2s
      retries: 100
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text) if rel.endswith(".yaml") else text)
        if rel.endswith(".sh"):
            p.chmod(0o755)
    return root


def harbor_task(root: Path, compose: str, name: str = "mc-harbor") -> Path:
    """A Harbor task whose agent fetches http://web:8000/ into /app/out.txt (the reward checks it)."""
    return write(
        root / name,
        {
            "task.toml": '[metadata]\ndomain = "networking"\ndifficulty = "easy"\n[environment]\nmemory_mb = 512\nstorage_mb = 256\n',
            "instruction.md": "Save http://web:8000/index.html to /app/out.txt.\n",
            "environment/Dockerfile": "FROM ltenv/base:bookworm\nWORKDIR /app\n",
            "environment/web/Dockerfile": WEB_DOCKERFILE,
            "environment/web/index.html": "hello from web\n",
            "environment/greeting.txt": "copied, not mounted\n",
            "environment/docker-compose.yaml": compose,
            "solution/solve.sh": "#!/bin/bash\ncurl -sf http://web:8000/index.html > /app/out.txt\n",
            "tests/test.sh": "#!/bin/bash\nmkdir -p /logs/verifier\n"
            'grep -qx "hello from web" /app/out.txt && echo 1 > /logs/verifier/reward.txt '
            "|| echo 0 > /logs/verifier/reward.txt\n",
        },
    )


HARBOR_COMPOSE = (
    """\
services:
  main:
    build: .
    environment:
      WEB_URL: http://web:8000/
    depends_on:
      web: {condition: service_healthy}
  web:
    build: ./web
    command: python3 -m http.server 8000 --bind 0.0.0.0
    expose: ["8000"]
    mem_limit: 128m
    volumes:
      - ./greeting.txt:/srv/greeting.txt:ro
"""
    + HEALTH
    # A service that tries to hand out a reward: it writes one everywhere it can, in its own container.
    + """\
  rogue:
    build: ./web
    command: ["bash", "-c", "while :; do mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt; sleep 0.1; done"]
"""
)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("multi")
    tb = write(
        root / "mc-tb1",
        {
            "task.yaml": "instruction: Fetch http://web:8000/index.html.\ndifficulty: easy\n",
            "Dockerfile": "FROM ltenv/base:bookworm\nWORKDIR /app\n",
            "web/Dockerfile": WEB_DOCKERFILE,
            "web/index.html": "hello from web\n",
            "docker-compose.yaml": """\
                services:
                  client:
                    build:
                      dockerfile: Dockerfile
                    image: ${T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME}
                    container_name: ${T_BENCH_TASK_DOCKER_CLIENT_CONTAINER_NAME}
                    command: ["sh", "-c", "sleep infinity"]
                    environment:
                      - TEST_DIR=${T_BENCH_TEST_DIR}
                    depends_on: [web]
                  web:
                    build: ./web
                    command: python3 -m http.server 8000 --bind 0.0.0.0
                """,
            "run-tests.sh": "#!/bin/bash\npython3 -m pytest $TEST_DIR/test_outputs.py -rA\n",
            "solution.sh": "#!/bin/bash\ntrue\n",
            "tests/test_outputs.py": "def test_x():\n    assert True\n",
        },
    )
    return {"harbor": harbor_task(root, HARBOR_COMPOSE), "tb1": tb, "root": root}


# --------------------------------------------------------------------------- loading (no engine)
def test_harbor_and_tb1_compose_files_load(tasks):
    h = load_task(tasks["harbor"])
    assert h.services is not None and h.services.agent == "main"
    assert [s.name for s in h.services.start_order()] == ["web", "rogue"]
    web = h.services.by_name("web")
    assert web.build_context == "environment/web" and web.expose == ("8000/tcp",) and web.memory_mb == 128
    assert web.volumes[0].source == "environment/greeting.txt" and web.volumes[0].read_only
    assert web.healthcheck is not None and web.healthcheck.interval_sec == 0.2
    assert h.services.agent_depends_on == {"web": "service_healthy"}
    assert h.container_env == {"WEB_URL": "http://web:8000/"}
    t = load_task(tasks["tb1"])
    assert t.services is not None and t.services.agent == "client"
    assert [s.name for s in t.services.services] == ["web"]
    assert t.terminal_bench.compose.environment == {"TEST_DIR": "/tests"}


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ("    privileged: true\n", "services.web.privileged", "not supported"),
        ("    network_mode: host\n", "services.web.network_mode", "not supported"),
        ("    volumes: [/etc:/host-etc]\n", "services.web.volumes[0]", "no host paths"),
        ("    volumes: [data:/data]\n", "services.web.volumes[0]", "no named volumes"),
        ("    volumes: [../../x:/x]\n", "services.web.volumes[0]", "outside the task folder"),
        ("    depends_on: [nope]\n", "services.web.depends_on.nope", "no such service"),
        ("    depends_on: [main]\n", "services.web.depends_on.main", "the agent's container"),
        (
            "    healthcheck: {test: [CMD], interval: 5 parsecs}\n",
            "services.web.healthcheck.test",
            "names no",
        ),
        (
            "    healthcheck: {test: [CMD, x], interval: soon}\n",
            "services.web.healthcheck.interval",
            "duration",
        ),
        ("    mem_limit: lots\n", "services.web.mem_limit", "size"),
    ],
)
def test_unsupported_compose_fields_name_file_and_field(tmp_path, extra, field, fragment):
    compose = "services:\n  main:\n    build: .\n  web:\n    build: ./web\n" + extra
    folder = harbor_task(tmp_path, compose)
    with pytest.raises(TaskLoadError) as exc:
        load_task(folder)
    assert exc.value.file == "environment/docker-compose.yaml" and exc.value.field == field
    assert fragment in str(exc.value)


def test_waiting_for_health_needs_a_healthcheck(tmp_path):
    compose = (
        "services:\n  main:\n    depends_on: {web: {condition: service_healthy}}\n  web:\n    build: ./web\n"
    )
    with pytest.raises(TaskLoadError) as exc:
        load_task(harbor_task(tmp_path, compose))
    assert exc.value.field == "services.main.depends_on.web.condition" and "no healthcheck" in str(exc.value)


def test_dependency_cycle_is_refused(tmp_path):
    compose = "services:\n  a:\n    build: ./web\n    depends_on: [b]\n  b:\n    build: ./web\n    depends_on: [a]\n"
    with pytest.raises(TaskLoadError, match="dependency cycle"):
        load_task(harbor_task(tmp_path, compose))


def test_bwrap_refuses_with_a_clear_error(tasks):
    from ltenv.sandbox import create_sandbox
    from ltenv.validate import validate_task

    task = load_task(tasks["harbor"])
    with pytest.raises(UnsupportedTaskError, match=r"multi-service task .* needs the docker backend"):
        create_sandbox(task, backend="bwrap")
    r = validate_task(task, backend="bwrap")
    assert r.unsupported and "docker backend" in r.unsupported and r.error is None


# --------------------------------------------------------------------------- docker
def _engine_leftovers(api, name: str) -> tuple[list, list]:
    """Containers and networks of the network ``name`` that still exist."""
    nets = [n for n in api.networks() if n["Name"] == name]
    conts = api.containers(all=True, filters={"network": name}) if nets else []
    return conts, nets


@pytest.fixture(scope="module")
def episode(tasks, store):
    """One started multi-service episode of the Harbor fixture (shared by the checks that only look)."""
    from ltenv.sandbox import create_sandbox

    sb = create_sandbox(load_task(tasks["harbor"]), backend="docker", store=store)
    sb.start()
    yield sb
    sb.close()


def service_exec(sb, service: str, cmd: str) -> tuple[int, str]:
    api = sb.api
    eid = api.exec_create(sb.services.containers[service], ["bash", "-c", cmd])["Id"]
    out = api.exec_start(eid).decode(errors="replace")
    return api.exec_inspect(eid)["ExitCode"], out


@pytest.mark.docker
def test_services_resolve_each_other_by_name(episode):
    res = episode.exec(["bash", "-c", "curl -sf http://web:8000/index.html; getent hosts main rogue"])
    assert res.ok and b"hello from web" in res.stdout and b"main" in res.stdout
    code, out = service_exec(episode, "web", "getent hosts main && cat /srv/greeting.txt")
    assert code == 0 and "copied, not mounted" in out  # a task file copied in, and the agent by name
    assert episode.exec(["bash", "-c", "echo $WEB_URL"]).stdout == b"http://web:8000/\n"


@pytest.mark.docker
def test_services_are_hardened(episode):
    api = episode.api
    for name, cid in episode.services.containers.items():
        info = api.inspect_container(cid)
        hc = info["HostConfig"]
        assert not hc["Privileged"] and not hc.get("CapAdd") and not hc.get("SecurityOpt"), name
        assert info["Mounts"] == [] and not hc.get("Binds"), name  # no host mount at all
        assert hc["NetworkMode"] == episode.services.network and not hc.get("PortBindings"), name
        assert hc["Memory"] > 0 and hc["PidsLimit"] > 0 and hc["NanoCpus"] > 0, name
        assert info["Config"]["Labels"]["ltenv.owner"].split(":")[1] == str(os.getpid())
    assert api.inspect_container(episode.services.containers["web"])["HostConfig"]["Memory"] == 128 << 20
    net = api.inspect_network(episode.services.network)
    assert net["Internal"] and net["Labels"]["ltenv.managed"] == "1"
    from ltenv.sandbox.docker import _disk_unavailable

    if _disk_unavailable() is None:  # the task's storage_mb quota on every service's writable layer too
        for name in episode.services.containers:
            code, out = service_exec(episode, name, "df -m / | tail -1")
            assert code == 0 and int(out.split()[1]) <= 256, (name, out)


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"host secret")

    def log_message(self, *a):
        pass


@pytest.mark.docker
def test_tb1_episode_with_internet_resolves_names_and_not_host_loopback(tasks, store):
    """Terminal-Bench tasks allow internet: their network is a plain bridge, still without the host's loopback."""
    from ltenv.sandbox import create_sandbox

    server = HTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with create_sandbox(load_task(tasks["tb1"]), backend="docker", store=store) as sb:
            sb.start()
            assert not sb.api.inspect_network(sb.services.network)["Internal"]
            probe = (
                f"curl -sf http://web:8000/index.html; curl -s -m 2 http://127.0.0.1:{port}/ && echo REACHED"
            )
            gateway = sb.api.inspect_network(sb.services.network)["IPAM"]["Config"][0].get("Gateway")
            if gateway:
                probe += f"; curl -s -m 2 http://{gateway}:{port}/ && echo REACHED"
            out = sb.exec(["bash", "-c", probe], timeout=30).stdout.decode()
            assert "hello from web" in out and "REACHED" not in out, out
            _, out = service_exec(sb, "web", "getent hosts client; " + probe.split(";", 1)[1])
            assert "client" in out and "REACHED" not in out, out
    finally:
        server.shutdown()


@pytest.mark.docker
def test_no_service_reaches_the_host_or_the_docker_socket(episode):
    servers = [HTTPServer(("127.0.0.1", 0), _Hello), HTTPServer(("0.0.0.0", 0), _Hello)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        gateway = (episode.api.inspect_network(episode.services.network)["IPAM"]["Config"] or [{}])[0].get(
            "Gateway", "172.17.0.1"
        )
        hosts = {"127.0.0.1", gateway, "172.17.0.1", *socket.gethostbyname_ex(socket.gethostname())[2]}
        urls = [f"http://{h}:{s.server_address[1]}/" for h in sorted(hosts) for s in servers]
        probe = " ".join(f"(curl -s -m 1 {u} && echo REACHED {u}) &" for u in urls)
        probe += " (curl -s -m 1 http://172.17.0.1:2375/version && echo ENGINE) &"
        probe += " ls -l /var/run/docker.sock /run/docker.sock 2>/dev/null && echo SOCKET; wait"
        out = episode.exec(["bash", "-c", probe], timeout=60).stdout.decode()
        assert "REACHED" not in out and "SOCKET" not in out and "ENGINE" not in out, out
        for name in episode.services.containers:
            _, out = service_exec(episode, name, probe)
            assert "REACHED" not in out and "SOCKET" not in out and "ENGINE" not in out, (name, out)
    finally:
        for s in servers:
            s.shutdown()


@pytest.mark.docker
def test_a_service_cannot_change_the_reward(tasks, store):
    """The rogue service writes reward files in its own container; the verifier runs in the agent's."""
    from ltenv.sandbox import create_sandbox
    from ltenv.verify import run_oracle, verify

    task = load_task(tasks["harbor"])
    with create_sandbox(task, backend="docker", store=store) as sb:
        sb.start()
        time.sleep(0.3)
        assert verify(sb, task).reward == 0.0
    with create_sandbox(task, backend="docker", store=store) as sb:
        sb.start()
        run_oracle(sb, task).close()
        assert verify(sb, task).reward == 1.0


@pytest.mark.docker
def test_episodes_do_not_see_each_other_and_close_removes_everything(tasks, store, episode):
    from ltenv.sandbox import create_sandbox

    other = create_sandbox(load_task(tasks["harbor"]), backend="docker", store=store)
    other.start()
    net = other.services.network
    ids = [other.container_id, *other.services.containers.values()]
    try:
        ip = other.api.inspect_container(other.services.containers["web"])["NetworkSettings"]["Networks"][
            net
        ]["IPAddress"]
        res = episode.exec(["bash", "-c", f"curl -s -m 2 http://{ip}:8000/ && echo REACHED"], timeout=30)
        assert b"REACHED" not in res.stdout
        assert net != episode.services.network
    finally:
        other.close()
    conts, nets = _engine_leftovers(other.api, net)
    assert conts == [] and nets == []
    for cid in ids:
        assert not other.api.containers(all=True, filters={"id": cid})


@pytest.mark.docker
def test_a_failing_health_check_names_the_service_and_its_output(tmp_path, store):
    from ltenv.sandbox import create_sandbox

    compose = (
        "services:\n  web:\n    build: ./web\n    command: sleep 60\n    healthcheck:\n"
        '      test: ["CMD-SHELL", "echo database not ready; exit 1"]\n      interval: 0.1s\n      retries: 2\n'
    )
    task = load_task(harbor_task(tmp_path, compose, name="mc-unhealthy"))
    sb = create_sandbox(task, backend="docker", store=store)
    with pytest.raises(SandboxError) as exc:
        sb.start()
    msg = str(exc.value)
    assert "service 'web' is unhealthy" in msg and "database not ready" in msg
    assert sb.services.network is not None
    conts, nets = _engine_leftovers(sb.api, sb.services.network)
    assert conts == [] and nets == []  # a failed start tears down what it made


DRIVER = """
import sys, time
from ltenv.tasks import load_task
from ltenv.sandbox import create_sandbox
sb = create_sandbox(load_task(sys.argv[1]), backend="docker")
sb.start()
print(sb.services.network, sb.container_id, *sb.services.containers.values(), flush=True)
time.sleep(600)
"""


@pytest.mark.docker
def test_a_sigkilled_driver_leaves_nothing(tasks, store):
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tasks["harbor"])], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline().split()
        assert line, "the driver did not start its episode"
    finally:
        proc.kill()
        proc.wait()
    net, ids = line[0], line[1:]
    api = store.client.api
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conts, nets = _engine_leftovers(api, net)
        left = [c for c in ids if api.containers(all=True, filters={"id": c})]
        if not conts and not nets and not left:
            break
        time.sleep(0.2)
    assert (conts, nets, left) == ([], [], [])


@pytest.mark.docker
def test_gc_removes_networks_and_services_of_dead_owners(store):
    from ltenv.sandbox.docker import LABEL, gc_containers

    api = store.client.api
    dead = subprocess.Popen(["true"])
    dead.wait()
    labels = {LABEL: "1", "ltenv.owner": f"{socket.gethostname()}:{dead.pid}:1", "ltenv.task": "gc-test"}
    name = f"ltenv-gctest-{os.getpid()}"
    api.create_network(name, internal=True, labels=labels)
    cid = api.create_container(
        "ltenv/base:bookworm",
        ["sleep", "60"],
        labels=labels,
        host_config=api.create_host_config(network_mode=name),
    )["Id"]
    api.start(cid)
    gc_containers()
    conts, nets = _engine_leftovers(api, name)
    assert conts == [] and nets == []
    assert not api.containers(all=True, filters={"id": cid})
