"""Verifier for ssh-bruteforce-blocklist."""
import gzip
import hashlib
import ipaddress
from collections import Counter
from pathlib import Path

LOGS = Path("/app/logs")
BLOCKLIST = Path("/app/blocklist.txt")
COMPROMISED = Path("/app/compromised.txt")

EXPECTED_BLOCKLIST = [
    "203.0.113.45 57",
    "64.62.0.1 31",
    "198.51.100.7 23",
    "203.0.113.9 14",
    "2001:db8::dead:beef 12",
    "198.51.100.70 11",
    "192.0.2.200 10",
    "45.33.12.8 10",
]
EXPECTED_COMPROMISED = ["198.51.100.7", "2001:db8::dead:beef"]

INPUT_SHA256 = {
    "auth.log": "e34db027a1497a8f7e37127d933e7e900f48aaad6dad78dece73a2ac188b92d1",
    "auth.log.1": "998027482e812b8be84535260dc4acb1efb176f44e003092f02152b0e6530fbc",
    "auth.log.2.gz": "89e948978ce5b43f555ac14aba6f89724b928d20c98dcd786da7278a96ec8ab3",
}


def _read_lines(path):
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode().splitlines()


def _recount():
    """Independent token-based recount (no regexes) of the raw logs."""
    fails, accepted = Counter(), set()
    for path in sorted(LOGS.iterdir()):
        for line in _read_lines(path):
            parts = line.split()
            if len(parts) < 6 or not parts[4].startswith("sshd["):
                continue
            msg = parts[5:]
            weight = 1
            if msg[:2] == ["message", "repeated"]:
                weight = int(msg[2])
                msg = msg[5:]  # drop 'message repeated N times: ['
            if msg[:3] == ["Failed", "password", "for"]:
                ip = msg[msg.index("from") + 1]
                fails[ip] += weight
            elif msg[0] == "Accepted" and msg[1] in ("password", "publickey"):
                accepted.add(msg[msg.index("from") + 1])
    return fails, accepted


def _file_lines(path):
    assert path.exists(), f"{path} is missing"
    text = path.read_text()
    assert text.endswith("\n"), f"{path} must end with a newline"
    return text[:-1].split("\n") if text != "\n" else []


def test_inputs_unchanged():
    for name, digest in INPUT_SHA256.items():
        assert hashlib.sha256((LOGS / name).read_bytes()).hexdigest() == digest, f"{name} was modified"
    assert sorted(p.name for p in LOGS.iterdir()) == sorted(INPUT_SHA256)


def test_reference_recount_matches_expected():
    fails, accepted = _recount()
    nets = [ipaddress.ip_network(l.split("#")[0].strip(), strict=False)
            for l in Path("/app/allowlist.txt").read_text().splitlines() if l.split("#")[0].strip()]

    def allowed(ip):
        a = ipaddress.ip_address(ip)
        return any(a.version == n.version and a in n for n in nets)

    rows = sorted(((ip, c) for ip, c in fails.items() if c >= 10 and not allowed(ip)), key=lambda r: (-r[1], r[0]))
    assert [f"{ip} {c}" for ip, c in rows] == EXPECTED_BLOCKLIST
    assert sorted(ip for ip, _ in rows if ip in accepted) == EXPECTED_COMPROMISED


def test_blocklist_format():
    for line in _file_lines(BLOCKLIST):
        ip, count = line.split(" ")
        ipaddress.ip_address(ip)
        assert count.isdigit(), line


def test_blocklist_content_and_order():
    assert _file_lines(BLOCKLIST) == EXPECTED_BLOCKLIST


def test_allowlisted_and_below_threshold_not_blocked():
    ips = {l.split(" ")[0] for l in _file_lines(BLOCKLIST)}
    for ip in ("10.20.5.9", "172.16.4.4", "192.0.2.201", "100.64.3.3", "103.77.9.14", "203.0.113.77"):
        assert ip not in ips, f"{ip} must not be blocked"


def test_compromised():
    assert _file_lines(COMPROMISED) == EXPECTED_COMPROMISED
