#!/bin/bash
# Reference solution: fix the env file (CRLF, port, bind, data dir), export the settings in run.sh,
# convert warehouse-c.csv from ';' to ',' with proper quoting, create the pid dir and start detached.
set -euo pipefail
cd /app/inventory-api

cat > config/app.env <<'ENV'
# Inventory API settings
APP_BIND=127.0.0.1
APP_PORT=8085
DATA_DIR=/app/inventory-api/data
PID_FILE=/app/inventory-api/run/api.pid
ENV

# variables sourced from app.env must reach the python process
sed -i 's|^source config/app.env$|set -a\nsource config/app.env\nset +a|' run.sh

python3 - <<'PY'
import csv
path = "data/warehouse-c.csv"
with open(path, newline="", encoding="utf-8") as fh:
    rows = list(csv.reader(fh, delimiter=";"))
with open(path, "w", newline="", encoding="utf-8") as fh:
    csv.writer(fh, lineterminator="\n").writerows(rows)
PY

mkdir -p run
setsid nohup ./run.sh > /dev/null 2>&1 < /dev/null &
for _ in $(seq 1 50); do
  if curl -fsS http://127.0.0.1:8085/health 2>/dev/null; then break; fi
  sleep 0.2
done
cat run/api.pid
