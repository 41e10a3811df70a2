"""Recorded Terminus-2 replies get the same per-task outcomes under ``terminus-2`` as typed into tmux.

Each script in ``fixtures/replay/scripts`` is a recorded Terminus-2 conversation (the model's replies,
written for these tests) for one task of ``fixtures/replay/tasks`` -- interactive tasks that need a real
terminal: vi, a Python REPL left with ``C-d``, a job stopped with ``C-c`` (or ``C-z``), ``less`` -- and the
reward that conversation earns. Each script is played twice, in fresh sandboxes of the same image:

* **terminus-2**: the scripted model answers through a real OpenAI-compatible server on 127.0.0.1; the
  episode runs the project's ``terminus-2`` scaffold (keys mode) and its verifier;
* **tmux**: what Terminal-Bench's harness does with the same replies -- each ``keystrokes`` string is one
  ``tmux send-keys`` argument to a pane running bash, followed by its ``duration`` -- then the same
  verifier.

The two outcomes must agree with each other and with the script's recorded reward; half of the scripts
fail their task (a discarded edit, a wrong answer, a job killed instead of interrupted, keys typed into a
pager), so a scaffold that ignored the keys could not pass.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ltenv.agents import OpenAIPolicy, run_episode
from ltenv.sandbox import create_sandbox
from ltenv.tasks import load_task
from ltenv.verify import verify
from tests.support.openai_server import openai_server  # noqa: F401  (fixture)

REPLAY = Path(__file__).parent / "fixtures" / "replay"
SCRIPTS = {p.stem: json.loads(p.read_text()) for p in sorted((REPLAY / "scripts").glob("*.json"))}
ROWS, COLS = 40, 160
"""Terminus-2's tmux pane and the ``terminus-2`` scaffold's terminal: 160 x 40."""


def _commands(script: dict) -> list[tuple[str, float]]:
    return [(c["keystrokes"], c["duration"]) for r in script["replies"] for c in r["commands"]]


def _under_terminus2(name: str, server, backend: str, store) -> float:
    """The episode under the ``terminus-2`` scaffold; the script is chosen by the request's model name."""
    policy = OpenAIPolicy(name, base_url=server.base_url, api_key="x", max_retries=0, backoff=0.01)
    script = SCRIPTS[name]
    traj = run_episode(
        REPLAY / "tasks" / script["task"], policy, scaffold="terminus-2", backend=backend, image_store=store
    )
    assert traj.termination == "submitted", (name, traj.termination, traj.error)
    assert traj.parse_errors == 0 and traj.verifier_status == "ok", (name, traj.error)
    assert [(s.action, s.model_extra["duration"]) for s in traj.steps] == _commands(script), name
    return traj.reward


def _typed_into_tmux(name: str, backend: str, store) -> float:
    """The same keystrokes typed into a tmux pane as Terminal-Bench's harness types them, then verified."""
    script = SCRIPTS[name]
    task = load_task(REPLAY / "tasks" / script["task"])
    sb = create_sandbox(task, backend=backend, store=store)
    try:
        sb.start()
        new = ["tmux", "-f", "/dev/null", "new-session", "-d", "-s", "S", "-x", str(COLS), "-y", str(ROWS)]
        res = sb.exec([*new, "-c", "/app", "bash"], timeout=20)
        assert res.ok, res.text
        for keystrokes, duration in _commands(script):
            # One send-keys argument, no -l: a key name (C-c, Escape) is that key, anything else is text.
            res = sb.exec(["tmux", "send-keys", "-t", "S", keystrokes], timeout=20)
            assert res.ok, res.text
            time.sleep(duration)
        return verify(sb, task).reward
    finally:
        sb.close()


def test_scripts_cover_passing_and_failing_outcomes_of_every_task():
    tasks = {p.name for p in (REPLAY / "tasks").iterdir()}
    assert {s["task"] for s in SCRIPTS.values()} == tasks
    for task in tasks:
        rewards = {s["expect_reward"] for s in SCRIPTS.values() if s["task"] == task}
        assert rewards == {0.0, 1.0}, (task, rewards)
    for name, s in SCRIPTS.items():
        assert [r["task_complete"] for r in s["replies"]][-2:] == [True, True], name


def test_same_outcomes_under_terminus2_and_in_tmux(openai_server, backend, store):  # noqa: F811
    def respond(body: dict) -> str:
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        return json.dumps(SCRIPTS[body["model"]]["replies"][turn])

    openai_server.responder = respond
    for s in SCRIPTS.values():  # build the image once, before the episodes run side by side
        store.prepare(load_task(REPLAY / "tasks" / s["task"]))
    jobs = [(name, way) for name in SCRIPTS for way in ("terminus-2", "tmux")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            job: pool.submit(
                _under_terminus2 if job[1] == "terminus-2" else _typed_into_tmux,
                *((job[0], openai_server) if job[1] == "terminus-2" else (job[0],)),
                backend,
                store,
            )
            for job in jobs
        }
        outcomes = {job: f.result() for job, f in futures.items()}
    table = {name: (outcomes[name, "terminus-2"], outcomes[name, "tmux"]) for name in SCRIPTS}
    expected = {name: (s["expect_reward"], s["expect_reward"]) for name, s in SCRIPTS.items()}
    assert table == expected, json.dumps(table, indent=1)
