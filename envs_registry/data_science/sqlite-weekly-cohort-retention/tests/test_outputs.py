import csv
import hashlib
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from fractions import Fraction

DB = "/app/data/app.db"
OUT = "/app/output/retention.csv"
ASOF = datetime(2024, 5, 6, tzinfo=timezone.utc)
HEADER = ["cohort", "size"] + [f"w{k}" for k in range(9)]


def to_dt(v):
    if isinstance(v, int):
        return datetime.fromtimestamp(v, tz=timezone.utc)
    return datetime.strptime(v, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def half_up(fr):
    # fr >= 0; round half up to one decimal
    tenths = fr * 10
    q = (tenths.numerator * 2 + tenths.denominator) // (2 * tenths.denominator)
    return f"{q // 10}.{q % 10}"


def expected():
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    lo = datetime(2024, 1, 1, tzinfo=timezone.utc)
    hi = datetime(2024, 3, 31, 23, 59, 59, tzinfo=timezone.utc)
    members = {}
    for uid, email, signup, is_test in db.execute("SELECT id, email, signup_ts, is_test FROM users"):
        s = to_dt(signup)
        if is_test or email.lower().endswith("@test.internal") or not (lo <= s <= hi):
            continue
        members[uid] = s
    weeks = {}
    for uid, etype, ts in db.execute("SELECT user_id, event_type, ts FROM events"):
        if uid not in members or etype not in ("login", "view", "purchase"):
            continue
        delta = to_dt(ts) - members[uid]
        if delta >= timedelta(0):
            weeks.setdefault(uid, set()).add(delta // timedelta(days=7))
    cohorts = {}
    for uid, s in members.items():
        monday = (s - timedelta(days=s.weekday())).date().isoformat()
        cohorts.setdefault(monday, []).append(uid)
    rows = [HEADER]
    for c in sorted(cohorts):
        us = cohorts[c]
        row = [c, str(len(us))]
        latest = max(members[u] for u in us)
        for k in range(9):
            if latest + timedelta(days=7 * (k + 1)) > ASOF:
                row.append("")
            else:
                n = sum(1 for u in us if k in weeks.get(u, ()))
                row.append(half_up(Fraction(100 * n, len(us))))
        rows.append(row)
    return rows


def output():
    with open(OUT, newline="") as fh:
        return list(csv.reader(fh))


def test_header_and_cohorts():
    got = output()
    assert got[0] == HEADER
    assert [r[0] for r in got[1:]] == [r[0] for r in expected()[1:]]
    assert got[1][0] == "2024-01-01" and got[-1][0] == "2024-03-25" and len(got) == 14


def test_cohort_sizes():
    exp = {r[0]: r[1] for r in expected()[1:]}
    got = {r[0]: r[1] for r in output()[1:]}
    assert got == exp


def test_cells_format():
    for r in output()[1:]:
        for cell in r[2:]:
            assert cell == "" or re.fullmatch(r"\d{1,3}\.\d", cell), r


def test_incomplete_weeks_blank():
    exp = expected()
    got = output()
    for g, e in zip(got[1:], exp[1:]):
        assert [c == "" for c in g[2:]] == [c == "" for c in e[2:]], (g, e)


def test_table_exact():
    assert output() == expected()


def test_database_unchanged():
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    digest = hashlib.sha256()
    for table in ("users", "events"):
        for row in db.execute(f"SELECT * FROM {table} ORDER BY id"):
            digest.update(repr(row).encode())
    assert digest.hexdigest() == "a52a52e44fe5cd64bedcb446d5942dbad453bea696686c2c31d5353479609040"
