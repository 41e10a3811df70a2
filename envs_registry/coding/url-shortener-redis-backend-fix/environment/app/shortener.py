"""URL shortener: POST /shorten {"url": ...} -> {"code": ...}; GET /<code> redirects; GET /stats/<code>.

Links and hit counters live in the Redis database (service `db`), so every instance of the app shares them.
"""

import json
import os
import string
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from resp import Redis

ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase


def db():
    return Redis(os.environ.get("REDIS_HOST", "localhost"), 6379)


def encode(n):
    out = ""
    while n:
        n, rem = divmod(n, 62)
        out = ALPHABET[rem] + out
    return out or "0"


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, obj=None, headers=()):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/shorten":
            return self.reply(404, {"error": "not found"})
        data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        url = data.get("url", "")
        r = db()
        n = int(r.call("GET", "next_id") or 0) + 1
        code = encode(n)
        r.call("SET", f"url:{code}", url)
        r.close()
        self.reply(201, {"code": code})

    def do_GET(self):
        r = db()
        try:
            if self.path.startswith("/stats/"):
                code = self.path[len("/stats/"):]
                url = r.call("GET", f"url:{code}")
                if url is None:
                    return self.reply(404, {"error": "not found"})
                return self.reply(200, {"code": code, "url": url, "hits": int(r.call("GET", f"hits:{code}") or 0)})
            code = self.path.lstrip("/")
            url = r.call("GET", f"url:{code}")
            if url is None:
                return self.reply(404, {"error": "not found"})
            r.call("GET", f"hits:{code}")
            self.reply(302, None, [("Location", url)])
        finally:
            r.close()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
