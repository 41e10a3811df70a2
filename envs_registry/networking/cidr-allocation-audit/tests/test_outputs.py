import hashlib
import json
import os

REPORT = "/app/report"
INPUT_HASHES = {
    "README.md": "f63061b1f758672b3935823557f77ec709cadea0e40736ca9212a4495a0f06ce",
    "allocations.csv": "d5ed6b444019e8b3a70ece5efd9b30301b31c7d4e43a7dd43833dee979e341dc",
    "ipam.conf": "807618807c60492c6c26571116ad2686ec1361caaa21272db26fc6a36610fd0f",
}
EXPECTED_INVALID = [
    "10.40.12.5/24",
    "10.41.0.0/24",
    "10.40.0.0/15",
    "10.40.300.0/24",
    "10.40.196.0",
    "fd00:40::/48",
]
EXPECTED_OVERLAPS = [
    "10.40.56.0/22 building-mgmt 10.40.58.0/24 hvac",
    "10.40.64.0/18 lab 10.40.80.0/24 lab-dmz",
    "10.40.160.0/19 datacenter-b 10.40.160.0/19 datacenter-b-legacy",
    "10.40.200.0/21 k8s-pods 10.40.207.0/24 k8s-ingress",
    "10.40.255.0/24 transit 10.40.255.252/30 transit-p2p",
]
# valid allocations (derived by hand from the export)
VALID = [
    "10.40.0.0/22", "10.40.4.0/24", "10.40.5.0/24", "10.40.6.0/23", "10.40.16.0/20", "10.40.32.0/20",
    "10.40.48.0/21", "10.40.56.0/22", "10.40.58.0/24", "10.40.64.0/18", "10.40.80.0/24", "10.40.128.0/19",
    "10.40.160.0/19", "10.40.160.0/19", "10.40.192.0/24", "10.40.193.0/25", "10.40.193.128/26",
    "10.40.200.0/21", "10.40.207.0/24", "10.40.208.0/20", "10.40.240.0/22", "10.40.255.0/24",
    "10.40.255.252/30", "10.40.244.16/28",
]


def ip2int(s):
    a, b, c, d = (int(x) for x in s.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int2ip(n):
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def expected_free():
    base, size = ip2int("10.40.0.0"), 1 << 16
    used = [False] * size
    for c in VALID:
        addr, plen = c.split("/")
        start = ip2int(addr) - base
        for i in range(start, start + (1 << (32 - int(plen)))):
            used[i] = True
    blocks, i = [], 0
    while i < size:
        if used[i]:
            i += 1
            continue
        j = i
        while j < size and not used[j]:
            j += 1
        # split [i, j) into maximal aligned blocks
        k = i
        while k < j:
            bits = 0
            while bits < 16 and k % (1 << (bits + 1)) == 0 and k + (1 << (bits + 1)) <= j:
                bits += 1
            blocks.append(f"{int2ip(base + k)}/{32 - bits}")
            k += 1 << bits
        i = j
    return blocks, size - sum(used)


def read_lines(name):
    path = os.path.join(REPORT, name)
    with open(path) as f:
        content = f.read()
    assert content.endswith("\n"), f"{name} must end with a newline"
    return [l.rstrip() for l in content.splitlines()]


def test_inputs_unchanged():
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join("/app/ipam", name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_invalid_entries():
    assert read_lines("invalid.txt") == EXPECTED_INVALID


def test_overlapping_pairs():
    assert read_lines("overlaps.txt") == EXPECTED_OVERLAPS


def test_free_blocks():
    blocks, _ = expected_free()
    assert "10.40.8.0/21" in blocks  # space of the invalid 10.40.12.5/24 entry stays free
    assert read_lines("free.txt") == blocks


def test_summary():
    with open(os.path.join(REPORT, "summary.json")) as f:
        data = json.load(f)
    _, free_count = expected_free()
    assert data == {
        "valid": 24,
        "invalid": 6,
        "overlapping_pairs": 5,
        "free_addresses": free_count,
    }, data
    assert free_count == 11568
