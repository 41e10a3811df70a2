"""Runs the repaired app (two copies) against the database service and checks Redis directly."""

import http.client
import json
import os
import socket
import subprocess
import time

import pytest

class Redis:
    def __init__(self, host="127.0.0.1", port=6379, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            data = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")


def db():
    return Redis("db", 6379)


def start_app(port):
    env = dict(os.environ, PORT=str(port), DB_HOST="db")
    proc = subprocess.Popen(["python3", "/app/shortener.py"], cwd="/", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the app exited: {proc.stderr.read().decode()[-1500:]}")
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the app did not listen")


@pytest.fixture(scope="module")
def apps():
    procs = [start_app(18001), start_app(18002)]
    yield [18001, 18002]
    for p in procs:
        p.kill()
        p.wait()


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    res = conn.getresponse()
    out = (res.status, res.getheader("Location"), res.read())
    conn.close()
    return out


def shorten(port, url):
    status, _, body = request(port, "POST", "/shorten", {"url": url})
    assert status == 201, body
    return json.loads(body)["code"]


def test_codes_are_unique_across_instances_and_stored_in_redis(apps):
    r = db()
    start = int(r.call("GET", "next_id") or 0)
    urls = [f"https://example.org/page/{i}" for i in range(8)]
    codes = [shorten(apps[i % 2], u) for i, u in enumerate(urls)]
    assert len(set(codes)) == len(codes)
    assert int(r.call("GET", "next_id")) == start + len(urls)
    for code, url in zip(codes, urls):
        assert r.call("GET", f"url:{code}") == url
    r.close()


def test_redirect_counts_hits_in_redis(apps):
    code = shorten(apps[0], "https://example.org/counted")
    for i in range(5):
        status, location, _ = request(apps[i % 2], "GET", f"/{code}")
        assert (status, location) == (302, "https://example.org/counted")
    r = db()
    assert r.call("GET", f"hits:{code}") == "5"
    r.close()
    status, _, body = request(apps[1], "GET", f"/stats/{code}")
    assert status == 200
    assert json.loads(body) == {"code": code, "url": "https://example.org/counted", "hits": 5}


def test_links_made_elsewhere_are_served(apps):
    r = db()
    r.call("SET", "url:zz9", "https://example.org/seeded")
    r.close()
    assert request(apps[1], "GET", "/zz9")[:2] == (302, "https://example.org/seeded")
    assert request(apps[0], "GET", "/no-such-code")[0] == 404
