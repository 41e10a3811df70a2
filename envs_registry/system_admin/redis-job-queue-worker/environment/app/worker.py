"""Job worker: drains the `jobs` queue, stores each result in the `results` hash."""

import json
import os

from resp import Redis

OPS = {
    "add": lambda args: sum(args),
    "mul": lambda args: sum(args),
    "neg": lambda args: -args[0],
    "max": lambda args: max(args),
}


def main():
    r = Redis(os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379")))
    while True:
        raw = r.call("RPOP", "jobs")
        if raw is None:
            break
        job = json.loads(raw)
        result = OPS[job["op"]](job["args"])
        r.call("HSET", "results", job["id"], result)
    r.close()


if __name__ == "__main__":
    main()
