import csv
import hashlib
import json
import os
import re
from datetime import datetime, timedelta, timezone

DATA = "/app/data"
OUT = "/app/output/hourly.csv"


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc)


def expected():
    meta = json.load(open(os.path.join(DATA, "sensors.json")))
    w0, w1 = parse_ts(meta["window_start"]), parse_ts(meta["window_end"])
    nh = int((w1 - w0).total_seconds() // 3600)
    rows = []
    for s in sorted(meta["sensors"], key=lambda s: s["id"]):
        if not s["enabled"]:
            continue
        last = {}
        with open(os.path.join(DATA, "sensors", s["file"])) as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#") or line.startswith("timestamp"):
                    continue
                ts, val = line.split(",")
                last[parse_ts(ts)] = float(val)
        buckets = [[] for _ in range(nh)]
        lo, hi = s["valid_range"]
        for t, v in last.items():
            if lo <= v <= hi and w0 <= t < w1:
                buckets[int((t - w0).total_seconds() // 3600)].append(v + s["offset"])
        means = [sum(b) / len(b) if b else None for b in buckets]
        flags = ["ok" if b else None for b in buckets]
        i = 0
        while i < nh:
            if means[i] is not None:
                i += 1
                continue
            j = i
            while j < nh and means[j] is None:
                j += 1
            # empty run i..j-1
            fill = (j - i) <= 2 and i > 0 and j < nh
            for k in range(i, j):
                if fill:
                    a, b = means[i - 1], means[j]
                    means[k] = a + (b - a) * (k - (i - 1)) / (j - (i - 1))
                    flags[k] = "interpolated"
                else:
                    flags[k] = "missing"
            i = j
        for h in range(nh):
            rows.append((s["id"], (w0 + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00Z"), means[h],
                         len(buckets[h]), flags[h]))
    return rows


def output():
    with open(OUT, newline="") as fh:
        return list(csv.reader(fh))


def test_header_and_keys():
    got = output()
    assert got[0] == ["sensor", "hour", "mean", "n", "flag"]
    exp = expected()
    assert [(r[0], r[1]) for r in got[1:]] == [(e[0], e[1]) for e in exp]
    assert len(got) == 1 + 3 * 48
    assert "old-probe" not in {r[0] for r in got[1:]}


def test_counts_and_flags():
    got = output()[1:]
    for g, e in zip(got, expected()):
        assert (g[0], g[1], int(g[3]), g[4]) == (e[0], e[1], e[3], e[4]), (g, e)


def test_means():
    for g, e in zip(output()[1:], expected()):
        if e[2] is None:
            assert g[2] == "", g
        else:
            assert re.fullmatch(r"-?\d+\.\d{3}", g[2]), g
            assert abs(float(g[2]) - e[2]) < 6e-4, (g, e)


def test_gap_handling():
    flags = {(r[0], r[1]): r[4] for r in output()[1:]}
    assert flags[("greenhouse-temp", "2024-05-01T05:00Z")] == "interpolated"
    assert flags[("greenhouse-temp", "2024-05-01T21:00Z")] == "missing"      # 3-hour gap
    assert flags[("greenhouse-temp", "2024-05-02T10:00Z")] == "interpolated"  # 2-hour gap
    assert flags[("soil-moisture", "2024-05-01T00:00Z")] == "missing"        # window edge
    assert flags[("soil-moisture", "2024-05-02T23:00Z")] == "missing"
    assert sum(1 for v in flags.values() if v == "interpolated") == 6
    assert sum(1 for v in flags.values() if v == "missing") == 7


def test_inputs_unchanged():
    digest = hashlib.sha256()
    for name in sorted(os.listdir(os.path.join(DATA, "sensors"))):
        digest.update(name.encode())
        digest.update(open(os.path.join(DATA, "sensors", name), "rb").read())
    digest.update(open(os.path.join(DATA, "sensors.json"), "rb").read())
    assert digest.hexdigest() == "5e18d0f9502c36165976dd519f94cca83f12eeb9f85e09c31c86230569a2e6c3"
