#!/bin/bash
set -euo pipefail
cd /app
cat data/README.md
sqlite3 data/app.db '.schema' 'select typeof(ts), count(*) from events group by 1;'
mkdir -p output
python3 - <<'PY'
import sqlite3
from decimal import Decimal, ROUND_HALF_UP

db = sqlite3.connect("file:/app/data/app.db?mode=ro", uri=True)
# normalise both timestamp encodings to unix seconds in SQL
members = db.execute("""
    SELECT id, CAST(strftime('%s', signup_ts) AS INTEGER) AS s,
           date(signup_ts, '-' || ((CAST(strftime('%w', signup_ts) AS INTEGER) + 6) % 7) || ' days') AS cohort
    FROM users
    WHERE is_test = 0 AND lower(email) NOT LIKE '%@test.internal'
      AND signup_ts >= '2024-01-01 00:00:00' AND signup_ts <= '2024-03-31 23:59:59'
""").fetchall()
active = db.execute("""
    WITH ev AS (
        SELECT user_id,
               CASE WHEN typeof(ts) = 'integer' THEN ts ELSE CAST(strftime('%s', ts) AS INTEGER) END AS t
        FROM events WHERE event_type IN ('login', 'view', 'purchase')
    )
    SELECT DISTINCT u.id, (ev.t - CAST(strftime('%s', u.signup_ts) AS INTEGER)) / 604800 AS k
    FROM users u JOIN ev ON ev.user_id = u.id
    WHERE ev.t >= CAST(strftime('%s', u.signup_ts) AS INTEGER)
""").fetchall()
asof = 1714953600  # 2024-05-06 00:00:00 UTC
act = {}
for uid, k in active:
    if k <= 8:
        act.setdefault(uid, set()).add(k)
cohorts = {}
for uid, s, c in members:
    cohorts.setdefault(c, []).append((uid, s))
with open("/app/output/retention.csv", "w") as f:
    f.write("cohort,size," + ",".join(f"w{k}" for k in range(9)) + "\n")
    for c in sorted(cohorts):
        us = cohorts[c]
        cells = []
        for k in range(9):
            if max(s for _, s in us) + 7 * 86400 * (k + 1) > asof:
                cells.append("")
                continue
            n = sum(1 for uid, _ in us if k in act.get(uid, ()))
            pct = (Decimal(100 * n) / Decimal(len(us))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            cells.append(str(pct))
        f.write(f"{c},{len(us)}," + ",".join(cells) + "\n")
PY
cat output/retention.csv
