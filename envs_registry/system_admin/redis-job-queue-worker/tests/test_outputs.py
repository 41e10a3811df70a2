"""Checks the queue service's state over the network, then runs the worker on fresh jobs."""

import socket
import subprocess


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

EXPECTED = {
    "job-001": "0",
    "job-002": "44",
    "job-003": "18",
    "job-004": "-5",
    "job-005": "1794",
    "job-006": "-5",
    "job-008": "-52",
    "job-009": "900",
    "job-010": "-24",
    "job-011": "24",
    "job-012": "-111",
    "job-013": "-41184",
    "job-015": "23",
    "job-016": "-3",
    "job-017": "-91884",
    "job-018": "-20",
    "job-019": "29",
    "job-020": "50",
    "job-021": "-17640",
    "job-023": "-4",
    "job-024": "88",
    "job-025": "-920",
    "job-026": "12",
    "job-027": "43",
    "job-028": "-49",
    "job-029": "28014",
    "job-031": "35",
    "job-032": "68",
    "job-033": "-15960",
    "job-034": "-26",
    "job-036": "-6",
    "job-037": "2718030",
    "job-038": "-39",
    "job-039": "37",
    "job-040": "26"
}
DEAD = [
    "{\"id\": \"job-007\", \"op\": \"pow\", \"args\": [2, 3]}",
    "{\"id\": \"job-014\", \"op\": \"add\", \"args\": [1, \"two\"]}",
    "{\"id\": \"job-022\", \"op\": \"neg\", \"args\": [1, 2]}",
    "{\"id\": \"job-030\", \"op\": \"max\", \"args\": []}",
    "{\"id\": \"job-035\", \"op\": \"add\", \"args\": [1, 2"
]


def redis():
    return Redis("queue", 6379)


def test_queue_drained():
    r = redis()
    assert r.call("LLEN", "jobs") == 0
    r.close()


def test_results_of_the_seeded_jobs():
    r = redis()
    flat = r.call("HGETALL", "results")
    r.close()
    got = dict(zip(flat[::2], flat[1::2]))
    assert got == EXPECTED


def test_bad_jobs_dead_lettered_in_order():
    r = redis()
    assert r.call("LRANGE", "dead", 0, -1) == DEAD
    r.close()


def test_worker_processes_fresh_jobs_in_order():
    r = redis()
    fresh = [
        '{"id": "t-1", "op": "mul", "args": [6, -7, 2]}',
        '{"id": "t-2", "op": "neg", "args": []}',
        '{"id": "t-3", "op": "add", "args": [10, 20]}',
        '{"id": "t-3", "op": "max", "args": [4, 9, 1]}',
        'not json',
        '{"id": "t-4", "op": "add", "args": [1.5, 2]}',
    ]
    before = r.call("LLEN", "dead")
    for job in fresh:
        r.call("RPUSH", "jobs", job)
    proc = subprocess.run(
        ["python3", "/app/worker.py"], cwd="/app", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert r.call("LLEN", "jobs") == 0
    assert r.call("HGET", "results", "t-1") == "-84"
    assert r.call("HGET", "results", "t-3") == "9"  # the later job with the same id wins
    assert r.call("HGET", "results", "t-2") is None and r.call("HGET", "results", "t-4") is None
    assert r.call("LRANGE", "dead", before, -1) == [fresh[1], fresh[4], fresh[5]]
    r.close()
