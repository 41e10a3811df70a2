#!/bin/bash
set -euo pipefail
cd /app/linkstatus
# 1. config: loopback only, unprivileged port, absolute database path
sed -i 's/^bind = .*/bind = 127.0.0.1/; s/^port = .*/port = 8085/; s#^db = .*#db = /app/linkstatus/data/links.db#' linkstatus.conf
# 2. code fixes
python3 - <<'PY'
p = "/app/linkstatus/server.py"
s = open(p).read()
s = s.replace('body = json.dumps(obj, ensure_ascii=False)', 'body = json.dumps(obj, ensure_ascii=False).encode("utf-8")')
s = s.replace('self.wfile.write(body.encode("utf-8"))', 'self.wfile.write(body)')
s = s.replace('elif self.path == "/links":', 'elif parts.path == "/links":')
s = s.replace('where.append("state = ?")', 'where.append("lower(state) = ?")')
s = s.replace('args.append(params["state"][0].upper())', 'args.append(params["state"][0].lower())')
open(p, "w").write(s)
PY
# 3. (re)start in the background, detached from this shell
if [ -f /app/linkstatus/server.pid ]; then kill "$(cat /app/linkstatus/server.pid)" 2>/dev/null || true; fi
cd /
nohup setsid python3 /app/linkstatus/server.py --config /app/linkstatus/linkstatus.conf \
  > /app/linkstatus/server.log 2>&1 < /dev/null &
echo $! > /app/linkstatus/server.pid
for i in $(seq 1 50); do
  curl -fsS http://127.0.0.1:8085/health && break
  sleep 0.2
done
echo
curl -sS 'http://127.0.0.1:8085/links?state=DOWN&site=zrh1'; echo
