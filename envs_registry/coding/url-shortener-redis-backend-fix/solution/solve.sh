#!/bin/bash
set -euo pipefail
python3 - <<'PY'
p = "/app/shortener.py"
s = open(p).read()
s = s.replace('os.environ.get("REDIS_HOST", "localhost")', 'os.environ.get("DB_HOST", "db")')
s = s.replace('n = int(r.call("GET", "next_id") or 0) + 1', 'n = int(r.call("INCR", "next_id"))')
s = s.replace('            r.call("GET", f"hits:{code}")\n', '            r.call("INCR", f"hits:{code}")\n')
open(p, "w").write(s)
PY
