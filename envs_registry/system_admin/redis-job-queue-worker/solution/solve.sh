#!/bin/bash
set -euo pipefail
cat > /app/worker.py <<'PY'
"""Job worker: drains the `jobs` queue, stores each result in the `results` hash."""

import json
import math
import os

from resp import Redis


def _ints(args, n=None):
    if not isinstance(args, list) or not args or any(type(a) is not int for a in args):
        raise ValueError("bad args")
    if n is not None and len(args) != n:
        raise ValueError("bad arity")
    return args


OPS = {
    "add": lambda a: sum(_ints(a)),
    "mul": lambda a: math.prod(_ints(a)),
    "neg": lambda a: -_ints(a, 1)[0],
    "max": lambda a: max(_ints(a)),
}


def main():
    r = Redis(os.environ.get("QUEUE_HOST", "queue"), int(os.environ.get("QUEUE_PORT", "6379")))
    while True:
        raw = r.call("LPOP", "jobs")
        if raw is None:
            break
        try:
            job = json.loads(raw)
            result = OPS[job["op"]](job["args"])
            job_id = job["id"]
        except Exception:
            r.call("RPUSH", "dead", raw)
            continue
        r.call("HSET", "results", job_id, result)
    r.close()


if __name__ == "__main__":
    main()
PY
cd /app && python3 /app/worker.py
