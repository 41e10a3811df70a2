"""Latency of the bwrap backend beside its floors, measured side by side in one run.

    python benchmarks/env_latency.py [--task NAME] [--episodes 200] [--steps 200] [--json]

Measures ``TerminalEnv.reset()`` and a ``true`` step (p50/p95), and, on the same machine in the same run,
the floors they are built on: a bare ``bwrap`` start over the cached root filesystem running ``true``, and a
bare persistent-bash round trip through pipes. With ``--json`` the last line is one JSON object.
Targets on a 2-core machine with a warm cache: reset p50 <= 50 ms, step p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import ltenv
from ltenv.env import TerminalEnv
from ltenv.sandbox.images import ImageStore
from ltenv.tasks import load_suite


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def bwrap_floor(rootfs: str, n: int) -> list[float]:
    args = [
        "bwrap",
        "--ro-bind",
        rootfs,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--unshare-all",
        "--",
        "/bin/true",
    ]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(args, check=True)
        out.append(time.perf_counter() - t0)
    return out


def shell_floor(n: int) -> list[float]:
    proc = subprocess.Popen(["bash", "--norc", "--noprofile"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        proc.stdin.write(f"echo {i}\n".encode())
        proc.stdin.flush()
        proc.stdout.readline()
        out.append(time.perf_counter() - t0)
    proc.stdin.close()
    proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="maze-shortest-paths")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    task = load_suite(ltenv.registry_path()).by_name(args.task)
    store = ImageStore()
    prepared = store.prepare(task)  # warm cache: built and exported once
    env = TerminalEnv(task, image_store=store, max_steps=args.steps + 1)
    env.reset()
    env.close()

    resets, closes = [], []
    for _ in range(args.episodes):
        t0 = time.perf_counter()
        env.reset()
        resets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        env.close()
        closes.append(time.perf_counter() - t0)
    env.reset()
    steps = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        _, _, _, _, info = env.step("true")
        steps.append(time.perf_counter() - t0)
        assert info["exit_code"] == 0
    env.close()

    floor_bwrap = bwrap_floor(str(prepared.layers[0]), args.episodes)
    floor_shell = shell_floor(args.steps)

    result = {
        "bwrap": {
            "reset_p50_ms": round(pct(resets, 50), 2),
            "reset_p95_ms": round(pct(resets, 95), 2),
            "step_p50_ms": round(pct(steps, 50), 3),
            "step_p95_ms": round(pct(steps, 95), 3),
            "close_p50_ms": round(pct(closes, 50), 2),
        },
        "floor": {
            "bwrap_start_ms": round(pct(floor_bwrap, 50), 2),
            "shell_roundtrip_ms": round(pct(floor_shell, 50), 3),
        },
    }
    r, f = result["bwrap"], result["floor"]
    print(
        f"task {task.name}, {args.episodes} episodes, {args.steps} steps, {os.cpu_count()} cpus, python {sys.version.split()[0]}"
    )
    print(f"reset  p50 {r['reset_p50_ms']:8.2f} ms  p95 {r['reset_p95_ms']:8.2f} ms   (target p50 <= 50 ms)")
    print(f"step   p50 {r['step_p50_ms']:8.3f} ms  p95 {r['step_p95_ms']:8.3f} ms   (target p50 <= 2 ms)")
    print(f"close  p50 {r['close_p50_ms']:8.2f} ms")
    print(
        f"floor: bare bwrap start p50 {f['bwrap_start_ms']:.2f} ms; bare bash round trip p50 {f['shell_roundtrip_ms']:.3f} ms"
    )
    print(
        f"ratios: reset/bwrap-start {r['reset_p50_ms'] / f['bwrap_start_ms']:.1f}x, "
        f"step/bash-round-trip {r['step_p50_ms'] / f['shell_roundtrip_ms']:.1f}x; "
        f"mean reset {statistics.mean(resets) * 1000:.1f} ms"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
