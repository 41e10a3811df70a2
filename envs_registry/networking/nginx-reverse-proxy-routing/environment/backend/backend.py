"""A backend service: answers every GET with JSON describing the request it saw, signed with its secret."""

import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1]
SECRET = os.environ["BACKEND_SECRET"].encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        seen = {
            "service": ROLE,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "x_forwarded_for": self.headers.get("X-Forwarded-For", ""),
            "x_edge": self.headers.get("X-Edge", ""),
        }
        text = json.dumps(seen, sort_keys=True)
        seen["sig"] = hmac.new(SECRET, text.encode(), hashlib.sha256).hexdigest()
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
