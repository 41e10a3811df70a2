"""Verifier for inventory-api-startup-fix (the service must already be running when this runs)."""
import csv
import hashlib
import json
import os
import urllib.request
from pathlib import Path

BASE = Path("/app/inventory-api")
URL = "http://127.0.0.1:8085"
SERVER_SHA256 = "0b3b66358c2a1ae9851017c4f69bbaf4669443e88cd0fae2b0aa693f6bb821c1"
UNCHANGED = {
    "data/warehouse-a.csv": "1bcbda9c7bef34c2b33bc32019a145dcbfaae17d550e6c0a77d55e025299d348",
    "data/warehouse-b.csv": "27c90ec8777acf7e6f2810fa19f24739f51a7c34a2517c94276484d9a9879b7d",
}
WAREHOUSE_C = [
    ["sku", "name", "qty"], ["C-0001", "Gasket L", "612"], ["C-0002", "Washer XL", "636"],
    ["C-0003", "Relay L", "553"], ["C-0004", "Cable tie L", "464"], ["C-0005", "Bracket S", "606"],
    ["C-0006", "Spring S", "36"], ["C-0007", "Bolt, M6 x 20", "1200"], ["C-0008", "Washer S", "522"],
    ["C-0009", "Bracket S", "797"], ["C-0010", "Relay M", "111"], ["C-0011", 'Sealant "Pro" 300ml', "35"],
    ["C-0012", "Spring XL", "198"], ["C-0013", "Relay L", "290"], ["C-0014", "Washer L", "322"],
]


def _get(path):
    try:
        with urllib.request.urlopen(URL + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _env_file():
    raw = (BASE / "config/app.env").read_bytes()
    assert b"\r" not in raw, "app.env still has CRLF line endings"
    values = {}
    for line in raw.decode().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        key, _, value = line.partition("=")
        values[key] = value.strip().strip('"').strip("'")
    return values


def _pid():
    text = (BASE / "run/api.pid").read_text().strip()
    assert text.isdigit(), f"bad pid file content {text!r}"
    return int(text)


def test_server_code_and_other_data_untouched():
    assert hashlib.sha256((BASE / "server.py").read_bytes()).hexdigest() == SERVER_SHA256
    for rel, digest in UNCHANGED.items():
        assert hashlib.sha256((BASE / rel).read_bytes()).hexdigest() == digest, f"{rel} changed"


def test_env_file_fixed():
    env = _env_file()
    assert env.get("APP_BIND") == "127.0.0.1"
    assert env.get("APP_PORT") == "8085"
    assert env.get("DATA_DIR") == "/app/inventory-api/data"
    assert env.get("PID_FILE") == "/app/inventory-api/run/api.pid"


def test_warehouse_c_converted():
    raw = (BASE / "data/warehouse-c.csv").read_text(encoding="utf-8")
    assert raw.splitlines()[0] == "sku,name,qty"
    with open(BASE / "data/warehouse-c.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == WAREHOUSE_C


def test_process_running_with_env_from_file():
    pid = _pid()
    proc = Path(f"/proc/{pid}")
    assert proc.exists(), f"process {pid} from the pid file is not running"
    cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    assert any(part.endswith(b"server.py") for part in cmdline), cmdline
    environ = dict(kv.split(b"=", 1) for kv in (proc / "environ").read_bytes().split(b"\0") if b"=" in kv)
    assert environ.get(b"APP_PORT") == b"8085"
    assert environ.get(b"APP_BIND") == b"127.0.0.1"
    assert environ.get(b"DATA_DIR") == b"/app/inventory-api/data"


def test_listening_on_loopback_only():
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == 8085:
                listeners.append(local.rsplit(":", 1)[0])
    assert listeners == ["0100007F"], f"port 8085 listeners: {listeners}"


def test_health_reports_all_warehouses():
    status, body = _get("/health")
    assert status == 200
    assert body == {"status": "ok", "items": 55, "warehouses": 3}


def test_item_lookups():
    assert _get("/items/C-0007") == (200, {"sku": "C-0007", "name": "Bolt, M6 x 20", "qty": 1200,
                                            "warehouse": "warehouse-c"})
    assert _get("/items/C-0011")[1]["name"] == 'Sealant "Pro" 300ml'
    status, body = _get("/items/B-0023")
    assert status == 200 and body["warehouse"] == "warehouse-b"
    assert _get("/items/C-0015")[0] == 404
