"""What the hardened verifier costs per episode, beside running the tests in the sandbox as every harness does.

    python benchmarks/verifier_cost.py [--task NAME] [--episodes 30] [--backends bwrap,docker] [--json]

For each backend, ``--episodes`` times: a fresh sandbox, the task's oracle, then the same tests verified two
ways in the same sandbox, in alternating order: (a) ``ltenv.verify.verify`` (a private view of the sandbox on
the image's pristine toolchain: namespaces, mounts, the pristine shell and Python), and (b) the tests copied
into the sandbox and run there on the agent's toolchain (the fallback path, what Harbor and Terminal-Bench do;
the verifier of earlier versions of this project). Prints p50/p95 of each, the added cost (a - b) per episode
as p50/mean, and the ratio of medians. Both must agree on the reward. With ``--json`` the last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym

import ltenv  # noqa: F401  (registers the bundled tasks)
from ltenv.verify import run_oracle, verify


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def measure(task: str, backend: str, episodes: int) -> dict:
    hardened, in_sandbox, added = [], [], []
    for i in range(episodes):
        env = gym.make(f"LiteCoder/{task}", backend=backend)
        try:
            env.reset()
            sb, t = env.unwrapped.sandbox, env.unwrapped.task
            run_oracle(sb, t)
            times: dict[str, float] = {}
            rewards: dict[str, float] = {}
            for mode in ("trusted", "sandbox") if i % 2 == 0 else ("sandbox", "trusted"):
                if mode == "sandbox":
                    # The fallback path, forced: the backend reports no private view.
                    sb.trusted_unavailable = lambda: "benchmark baseline"  # type: ignore[method-assign]
                else:
                    sb.__dict__.pop("trusted_unavailable", None)
                t0 = time.perf_counter()
                res = verify(sb, t)
                times[mode] = time.perf_counter() - t0
                rewards[mode] = res.reward
            if rewards["trusted"] != rewards["sandbox"]:
                raise SystemExit(f"{backend}: the two verifiers disagree: {rewards}")
            hardened.append(times["trusted"])
            in_sandbox.append(times["sandbox"])
            added.append(times["trusted"] - times["sandbox"])
        finally:
            env.close()
    return {
        "episodes": episodes,
        "hardened_p50_ms": pct(hardened, 50),
        "hardened_p95_ms": pct(hardened, 95),
        "in_sandbox_p50_ms": pct(in_sandbox, 50),
        "in_sandbox_p95_ms": pct(in_sandbox, 95),
        "added_p50_ms": pct(added, 50),
        "added_mean_ms": statistics.fmean(added) * 1000,
        "ratio_of_medians": pct(hardened, 50) / pct(in_sandbox, 50),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sales-monthly-revenue-report")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--backends", default="bwrap,docker")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {"task": args.task}
    for backend in args.backends.split(","):
        r = measure(args.task, backend, args.episodes)
        out[backend] = r
        print(
            f"{backend:6s} verify ({r['episodes']} episodes, oracle solved): hardened p50 "
            f"{r['hardened_p50_ms']:.0f} ms (p95 {r['hardened_p95_ms']:.0f}), in-sandbox p50 "
            f"{r['in_sandbox_p50_ms']:.0f} ms (p95 {r['in_sandbox_p95_ms']:.0f}); added p50 "
            f"{r['added_p50_ms']:.0f} ms, mean {r['added_mean_ms']:.0f} ms; ratio of medians "
            f"{r['ratio_of_medians']:.2f}x"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
