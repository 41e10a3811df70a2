"""Synthesis throughput: how fast candidates are validated by execution, with a zero-latency scripted LLM.

Two measurements, side by side in one run:

* **validation** of one candidate (``validate_candidate``: image, leak check, oracle, nop and two attacks,
  each twice, in fresh bwrap sandboxes), with the image cache **warm** (the same candidate again) and
  **cold** (a new input file per candidate, so its image is built and unpacked). Target: warm < 5 s.
* **pipeline** candidates per minute through :class:`ltenv.synth.Synthesizer` (all eight LLM stages over
  real HTTP to a scripted loopback server that answers instantly, plus validation and acceptance) at 1 and 4
  workers, warm (every candidate has the same environment, so the engine's layer cache holds) and cold (a
  new environment per candidate).

Run from a source checkout (the scripted server lives in ``tests/support``)::

    python benchmarks/synth_validation.py            # prints a table
    python benchmarks/synth_validation.py --json     # and the figures as JSON
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ltenv.sandbox.images import ImageStore  # noqa: E402
from ltenv.synth.execution import validate_candidate  # noqa: E402
from ltenv.synth.llm import SynthLLM  # noqa: E402
from ltenv.synth.pipeline import SynthConfig, Synthesizer  # noqa: E402
from tests.support.openai_server import ScriptedOpenAIServer  # noqa: E402
from tests.support.synth_world import WORDS, SynthWorld, good_task  # noqa: E402

TARGET_WARM_SECONDS = 5.0


class _SaltedWorld(SynthWorld):
    """Good replies; with ``cold``, each ``environment`` reply ships a different input file."""

    def __init__(self, cold: bool):
        super().__init__(good_task())
        self._n = itertools.count()
        if cold:
            self.replies["environment"] = self._environment

    def _environment(self, body: dict[str, Any]) -> dict[str, Any]:
        env = json.loads(json.dumps(good_task()["environment"]))
        env["files"][0]["content"] = WORDS + f"salt{next(self._n)}x {time.time_ns()}\n"
        return env


def _candidate_dir(root: Path, salt: str | None) -> tuple[Path, dict[str, str]]:
    from ltenv.synth.candidate import Candidate

    replies = good_task()
    cand = Candidate(id="bench", domain="data_science", seed={"difficulty": "easy"})
    cand.name = "bench-word-frequency"
    cand.instruction = replies["instruction"]["instruction"]
    env = replies["environment"]
    if salt:
        env["files"][0]["content"] = WORDS + f"{salt}\n"
    cand.set_environment(env, base_image="ltenv/base:bookworm")
    cand.solve_sh = replies["solution"]["solve_sh"]
    cand.set_tests(replies["tests"])
    cand.meta = replies["task_toml"]
    attacks = {a["name"]: a["script"] for a in replies["attack"]["attacks"]}
    return cand.write(root / (salt or "warm") / cand.name), attacks


def bench_validation(store: ImageStore, reps: int, tmp: Path) -> dict[str, Any]:
    warm_dir, attacks = _candidate_dir(tmp, None)
    first = validate_candidate(warm_dir, attacks, store=store, runs=2, jobs=4)
    assert first.ok, first.detail
    warm = []
    for _ in range(reps):
        r = validate_candidate(warm_dir, attacks, store=store, runs=2, jobs=4)
        assert r.ok, r.detail
        warm.append(r.seconds)
    cold = []
    for i in range(max(2, reps // 2)):
        d, attacks = _candidate_dir(tmp, f"cold{i}-{time.time_ns()}")
        r = validate_candidate(d, attacks, store=store, runs=2, jobs=4)
        assert r.ok, r.detail
        cold.append(r.seconds)
    return {
        "episodes_per_candidate": len(first.runs),
        "warm_p50_s": round(statistics.median(warm), 3),
        "warm_max_s": round(max(warm), 3),
        "cold_p50_s": round(statistics.median(cold), 3),
        "cold_max_s": round(max(cold), 3),
    }


def bench_pipeline(store: ImageStore, n: int, workers: int, cold: bool, tmp: Path) -> dict[str, Any]:
    server = ScriptedOpenAIServer(_SaltedWorld(cold))
    server.start()
    try:
        out = tmp / f"pipe-{workers}-{'cold' if cold else 'warm'}-{time.time_ns()}"
        config = SynthConfig(
            out=out,
            n=n,
            model="scripted-model",
            base_url=server.base_url,
            api_key="bench",
            domains=["data_science"],
            workers=workers,
            jobs=4,
            repair_rounds=0,
            dedupe=False,  # identical candidates on purpose: no near-duplicate rejections
        )
        llm = SynthLLM(
            config.model, base_url=config.base_url, api_key="bench", cache_dir=None, max_concurrency=16
        )
        synth = Synthesizer(config, llm=llm, store=store)
        t0 = time.monotonic()
        records = synth.run()
        wall = time.monotonic() - t0
        llm.close()
    finally:
        server.stop()
    accepted = sum(r.verdict == "accepted" for r in records)
    bad = [f"{r.id}: {r.reason}: {r.detail}" for r in records if r.verdict != "accepted"]
    return {
        "workers": workers,
        "cache": "cold" if cold else "warm",
        "candidates": len(records),
        "accepted": accepted,
        "wall_s": round(wall, 2),
        "candidates_per_min": round(60 * len(records) / wall, 2),
        "requests": len(server.requests),
        "rejections": bad[:3],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="candidates per pipeline measurement")
    ap.add_argument("--reps", type=int, default=5, help="warm validations measured")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    store = ImageStore()
    store.log = lambda msg: None
    with tempfile.TemporaryDirectory(prefix="ltenv-synth-bench-") as d:
        tmp = Path(d)
        validation = bench_validation(store, args.reps, tmp)
        pipeline = [
            bench_pipeline(store, args.n, workers, cold, tmp) for cold in (False, True) for workers in (1, 4)
        ]
    result = {
        "validation": validation,
        "pipeline": pipeline,
        "target_warm_s": TARGET_WARM_SECONDS,
        "target_met": validation["warm_p50_s"] < TARGET_WARM_SECONDS,
        "threads": threading.active_count(),
    }
    v = validation
    print(
        f"validation of one candidate ({v['episodes_per_candidate']} episodes: oracle, nop, 2 attacks, x2):"
    )
    print(f"  warm image cache: p50 {v['warm_p50_s']:.2f} s (max {v['warm_max_s']:.2f} s)")
    print(f"  cold image cache: p50 {v['cold_p50_s']:.2f} s (max {v['cold_max_s']:.2f} s)")
    print(
        f"  target warm < {TARGET_WARM_SECONDS:g} s: {'met' if result['target_met'] else 'NOT met'} "
        f"({v['warm_p50_s'] / TARGET_WARM_SECONDS:.2f}x of the budget)"
    )
    print("pipeline (8 LLM stages, zero-latency scripted server, validation, acceptance):")
    print(f"  {'cache':<6}{'workers':>8}{'candidates':>12}{'accepted':>10}{'wall s':>9}{'cand/min':>10}")
    for p in pipeline:
        print(
            f"  {p['cache']:<6}{p['workers']:>8}{p['candidates']:>12}{p['accepted']:>10}"
            f"{p['wall_s']:>9.1f}{p['candidates_per_min']:>10.1f}"
        )
    by = {(p["cache"], p["workers"]): p["candidates_per_min"] for p in pipeline}
    for cache in ("warm", "cold"):
        print(f"  {cache}: 4 workers / 1 worker = {by[(cache, 4)] / by[(cache, 1)]:.2f}x")
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
