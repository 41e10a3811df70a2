#!/usr/bin/env python3
"""linkstatus - tiny JSON API exposing WAN link state from the NOC inventory database."""
import argparse
import configparser
import json
import logging
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_CONFIG = "/app/linkstatus/linkstatus.conf"
FIELDS = ("id", "name", "site", "state", "latency_ms", "description")

log = logging.getLogger("linkstatus")


class Handler(BaseHTTPRequestHandler):
    server_version = "linkstatus/0.3"
    db_path = None

    def _send(self, status, obj):
        body = json.dumps(obj, ensure_ascii=False)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode("utf-8"))

    def _query(self, sql, args=()):
        conn = sqlite3.connect(self.db_path)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def do_GET(self):
        parts = urlsplit(self.path)
        try:
            if parts.path == "/health":
                (count,) = self._query("SELECT COUNT(*) FROM links")[0]
                self._send(200, {"status": "ok", "links": count})
            elif self.path == "/links":
                params = parse_qs(parts.query)
                sql = "SELECT " + ", ".join(FIELDS) + " FROM links"
                where, args = [], []
                if "state" in params:
                    where.append("state = ?")
                    args.append(params["state"][0].upper())
                if "site" in params:
                    where.append("site = ?")
                    args.append(params["site"][0])
                if where:
                    sql += " WHERE " + " AND ".join(where)
                sql += " ORDER BY id"
                rows = self._query(sql, args)
                self._send(200, [dict(zip(FIELDS, r)) for r in rows])
            else:
                self._send(404, {"error": "not found"})
        except sqlite3.Error as exc:
            log.exception("database error")
            self._send(500, {"error": str(exc)})

    def log_message(self, fmt, *args):
        log.info("%s - %s", self.address_string(), fmt % args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    opts = ap.parse_args()
    cfg = configparser.ConfigParser()
    if not cfg.read(opts.config):
        raise SystemExit(f"cannot read config {opts.config}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Handler.db_path = cfg["data"]["db"]
    addr = (cfg["server"]["bind"], cfg["server"].getint("port"))
    httpd = ThreadingHTTPServer(addr, Handler)
    log.info("listening on %s:%s", *addr)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
