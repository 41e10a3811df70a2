#!/usr/bin/env python3
"""Inventory API: serves stock levels loaded from CSV exports.

Configuration comes from the environment (see config/app.env and run.sh):
  APP_BIND   address to bind (required)
  APP_PORT   TCP port (required)
  DATA_DIR   directory with one <warehouse>.csv per warehouse, columns sku,name,qty (required)
  PID_FILE   where to write the process id (required)
Endpoints: GET /health, GET /items/<sku>
"""
import csv
import json
import logging
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("inventory")


def require(name):
    value = os.environ.get(name)
    if value is None or value == "":
        raise SystemExit(f"config error: {name} is not set")
    return value


def load_items(data_dir):
    if not os.path.isdir(data_dir):
        raise SystemExit(f"config error: DATA_DIR {data_dir!r} does not exist")
    items = {}
    warehouses = []
    for fname in sorted(os.listdir(data_dir)):
        if not fname.endswith(".csv"):
            continue
        wh = fname[:-4]
        warehouses.append(wh)
        with open(os.path.join(data_dir, fname), newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != ["sku", "name", "qty"]:
                raise SystemExit(f"data error: {fname}: bad header {header!r}, expected ['sku', 'name', 'qty']")
            for lineno, row in enumerate(reader, start=2):
                if len(row) != 3:
                    raise SystemExit(f"data error: {fname}:{lineno}: expected 3 fields, got {len(row)}")
                sku, name, qty = row
                if not qty.isdigit():
                    raise SystemExit(f"data error: {fname}:{lineno}: qty {qty!r} is not a whole number")
                if sku in items:
                    raise SystemExit(f"data error: {fname}:{lineno}: duplicate sku {sku}")
                items[sku] = {"sku": sku, "name": name, "qty": int(qty), "warehouse": wh}
    if not warehouses:
        raise SystemExit(f"data error: no .csv files in {data_dir}")
    return items, warehouses


class Handler(BaseHTTPRequestHandler):
    items = {}
    warehouses = []

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    def _json(self, code, obj):
        body = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self._json(200, {"status": "ok", "items": len(self.items), "warehouses": len(self.warehouses)})
        if self.path.startswith("/items/"):
            item = self.items.get(self.path[len("/items/"):])
            return self._json(200 if item else 404, item or {"error": "unknown sku"})
        return self._json(404, {"error": "not found"})


def main():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bind = require("APP_BIND")
    port = int(require("APP_PORT"))
    pid_file = require("PID_FILE")
    Handler.items, Handler.warehouses = load_items(require("DATA_DIR"))
    server = ThreadingHTTPServer((bind, port), Handler)
    with open(pid_file, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    log.info("listening on %s:%d with %d items from %d warehouses", bind, port,
             len(Handler.items), len(Handler.warehouses))
    server.serve_forever()


if __name__ == "__main__":
    main()
