"""HTTP front-end: python3 -m notesvc.server [port] (binds 127.0.0.1).

GET /notes?q=term            search own notes
GET /notes?order=title       list own notes
GET /notes/<id>              one note
GET /files/<name>            one attachment
Auth: header 'X-Token: <token>'.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from . import attachments, db

DB_PATH = Path(__file__).resolve().parent.parent / "notes.db"


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, payload, ctype="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        conn = db.connect(DB_PATH)
        owner = db.owner_for_token(conn, self.headers.get("X-Token", ""))
        if not owner:
            return self._send(401, {"error": "unauthorized"})
        url = urlparse(self.path)
        qs = parse_qs(url.query)
        try:
            if url.path == "/notes":
                if "q" in qs:
                    return self._send(200, db.search_notes(conn, owner, qs["q"][0]))
                return self._send(200, db.list_notes(conn, owner, qs.get("order", ["id"])[0]))
            if url.path.startswith("/notes/"):
                note = db.get_note(conn, owner, unquote(url.path[len("/notes/"):]))
                return self._send(200 if note else 404, note or {"error": "not found"})
            if url.path.startswith("/files/"):
                data = attachments.read_attachment(owner, unquote(url.path[len("/files/"):]))
                return self._send(200, data, "application/octet-stream")
        except PermissionError:
            return self._send(403, {"error": "forbidden"})
        except (FileNotFoundError, IsADirectoryError):
            return self._send(404, {"error": "not found"})
        except ValueError as exc:
            return self._send(400, {"error": str(exc)})
        return self._send(404, {"error": "no route"})


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8088
    if not DB_PATH.exists():
        conn = db.connect(DB_PATH)
        db.init_db(conn)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
