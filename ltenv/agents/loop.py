"""The episode loop: a policy, a scaffold and a :class:`~ltenv.env.TerminalEnv` (in the scaffold's action
mode) make a :class:`~ltenv.trajectory.Trajectory`.

Example:
    >>> from ltenv.agents import make_policy, run_episode
    >>> traj = run_episode(load_task("envs_registry/coding/x"), make_policy("oracle"))   # doctest: +SKIP
    >>> traj.reward, traj.termination                                                   # doctest: +SKIP
    (1.0, 'submitted')
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import IO, Any

import ltenv
from ltenv.agents.policies import ContextOverflow, EpisodeContext, Policy, PolicyError
from ltenv.agents.scaffolds import (
    DEFAULT_DURATION,
    Action,
    ActionResult,
    Parsed,
    ParseError,
    Scaffold,
    get_scaffold,
)
from ltenv.tasks import Task, load_task
from ltenv.trajectory import Step, Trajectory, now_iso, versions

log = logging.getLogger(__name__)

MAX_HANDOFFS = 3
"""Scaffolds that summarize (``terminus-2``): how many times one episode may hand off to a fresh context
before a context overflow ends it."""
_SUMMARY_TRIES = 4  # summary requests per hand-off, each with fewer of the oldest turns

STEPS_PER_TURN = 20
"""Default ``max_steps`` of the environment is ``max(100, STEPS_PER_TURN * max_turns)``: a turn may run
several commands, and the turn budget (``max_turns``) is what bounds an episode."""


class CastWriter:
    """An asciinema v2 recording (``.cast``): a JSON header line, then ``[seconds, "o", text]`` events
    with times relative to the start. Terminal newlines are written as CRLF."""

    def __init__(self, path: str | Path, *, width: int = 160, height: int = 40, title: str = ""):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self._t0 = time.monotonic()
        header: dict[str, Any] = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(time.time()),
            "env": {"SHELL": "/bin/bash", "TERM": "xterm-256color"},
        }
        if title:
            header["title"] = title
        self._write(header)

    def _write(self, obj: Any) -> None:
        if self._f is not None:
            self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def output(self, text: str) -> None:
        if text:
            crlf = text.replace("\r\n", "\n").replace("\n", "\r\n")
            self._write([round(time.monotonic() - self._t0, 6), "o", crlf])

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class _AgentTimeout(Exception):
    """The policy did not reply within what is left of the episode's wall-clock budget."""


def _complete_within(policy: Policy, messages: list[dict[str, Any]], ctx: EpisodeContext, seconds: float):
    """``policy.complete`` bounded by ``seconds`` of wall-clock time, as Terminal-Bench and Harbor bound the
    agent's whole run. A call still running then is left to finish on its daemon thread (a blocking client
    cannot be interrupted); its reply is discarded and :class:`_AgentTimeout` is raised."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["completion"] = policy.complete(messages, ctx)
        except BaseException as e:  # handed to the episode's thread
            box["error"] = e

    worker = threading.Thread(target=call, name="ltenv-policy", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if worker.is_alive():
        raise _AgentTimeout
    if "error" in box:
        raise box["error"]
    return box["completion"]


class _KeysTerminal:
    """Keys mode as Terminus-2 sees it: keystrokes sent to the environment's live terminal, and what each
    batch printed as an :class:`ActionResult`.

    Terminus-2 computes its "new output" by diffing tmux's scrollback, from the start of the line the
    cursor was on at the previous capture: the shell prompt in front of a typed command is part of it.
    The terminal's byte stream starts after that prompt, so the first output after a capture is prefixed
    with the cursor's row as it was then (not when a full-screen program had the alternate screen)."""

    def __init__(self, env: Any):
        self.env = env
        self._line = ""
        self.capture()

    def capture(self) -> None:
        """Terminus-2 read the terminal (the end of a turn): the next output starts from here."""
        self._line = self._cursor_line()

    def _cursor_line(self) -> str:
        shell = self.env.shell
        if shell is None or getattr(shell, "alternate", True):
            return ""
        y, x = shell.cursor
        rows = shell.screen().split("\n")
        return rows[y][:x].ljust(x) if y < len(rows) else ""

    def send(self, keystrokes: str, wait: float) -> tuple[ActionResult, bool, dict[str, Any]]:
        """Type ``keystrokes`` (one tmux ``send-keys`` argument; ``""``: nothing) and watch the terminal for
        ``wait`` seconds (capped by the environment's ``command_timeout``): (result, episode over, info)."""
        env = self.env
        wait = max(0.0, min(wait, env.command_timeout))
        keys = [keystrokes] if keystrokes else []
        obs, _r, terminated, truncated, info = env.step(json.dumps({"keys": keys, "wait": wait}))
        out = obs["output"] if isinstance(obs, dict) else str(obs)
        shell = env.shell
        result = ActionResult(
            command=keystrokes,
            output=self._line + out if out else "",  # the first output since the capture only
            duration_s=float(info.get("duration_s", info.get("wait_s", 0.0))),
            screen=shell.screen() if shell is not None else env.render() or "",
            alternate=bool(getattr(shell, "alternate", False)),
        )
        if out:
            self._line = ""
        return result, bool(terminated or truncated), info


def _run_keys(
    term: _KeysTerminal,
    actions: list[Action],
    results: list[ActionResult],
    traj: Trajectory,
    turn: int,
    timings: dict[str, float],
    cast: CastWriter | None,
) -> dict[str, Any] | None:
    """Keys mode: send each action's keystrokes raw, then wait its ``timeout`` (the reply's ``duration``);
    append to ``results`` and ``traj.steps``. A turn without actions still reads the terminal (what was
    printed while the model thought). Returns the final info when the episode ended, else ``None``."""
    batches = [(a.command, DEFAULT_DURATION if a.timeout is None else a.timeout) for a in actions]
    for keystrokes, wait in batches or [("", 0.0)]:
        t = time.monotonic()
        try:
            result, over, info = term.send(keystrokes, wait)
        finally:
            timings["env"] += time.monotonic() - t
        if cast is not None:
            cast.output(result.output)
        results.append(result)
        if batches:
            traj.steps.append(
                Step(
                    action=keystrokes,
                    observation=result.output,
                    duration_s=result.duration_s,
                    turn=turn,
                    duration=wait,
                    wait_s=float(info.get("wait_s", 0.0)),
                )
            )
        if over:
            v = float(info.get("verifier_seconds", 0.0))
            timings["env"] -= v
            timings["verifier"] += v
            return info
    term.capture()
    return None


def _hand_off(
    sc: Scaffold,
    policy: Policy,
    messages: list[dict[str, str]],
    task: Task,
    ctx: EpisodeContext,
    term: _KeysTerminal,
    usage: dict[str, int],
    timings: dict[str, float],
) -> tuple[str, list[dict[str, str]]] | None:
    """The conversation no longer fits: ask the policy for a hand-off summary (the oldest turns after the
    first message are dropped, more on each try, until the request fits) and start a fresh conversation
    from it and the current terminal. ``None`` when no summary could be had."""
    head, turns = messages[:1], messages[1:]
    summary = None
    for i in range(_SUMMARY_TRIES):
        keep = turns[len(turns) * i // _SUMMARY_TRIES :] if i else turns
        while keep and keep[0]["role"] != "assistant" and i:
            keep = keep[1:]  # start at an assistant turn: roles keep alternating after the first message
        request = [dict(m) for m in head + keep] + [sc.summary_request()]  # type: ignore[attr-defined]
        t = time.monotonic()
        try:
            completion = _complete_within(policy, request, ctx, term.env.seconds_left)
        except ContextOverflow:
            continue
        except _AgentTimeout:
            return None
        except Exception:  # any other failure ends the episode as the overflow it follows
            log.exception("policy %r failed to summarize", policy)
            return None
        finally:
            timings["policy"] += time.monotonic() - t
        for k, v in completion.usage.items():
            usage[k] = usage.get(k, 0) + int(v)
        summary = completion.text
        break
    if summary is None or not summary.strip():
        return None
    t = time.monotonic()
    now, _over, _info = term.send("", 0.0)
    term.capture()
    timings["env"] += time.monotonic() - t
    return summary, sc.handoff_messages(task.instruction, summary, [now])  # type: ignore[attr-defined]


def run_episode(
    task: Task | str | Path,
    policy: Policy,
    *,
    scaffold: str | Scaffold = "terminus",
    backend: str = "bwrap",
    max_turns: int = 50,
    max_parse_errors: int = 3,
    seed: int | None = None,
    attempt: int = 0,
    run: str = "",
    image_store: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    cast_path: str | Path | None = None,
) -> Trajectory:
    """Play one episode of ``task`` with ``policy`` and return its trajectory.

    Each turn the policy gets the conversation so far; its reply is parsed by the scaffold; each action
    runs in the environment (command mode, to completion, with the action's time limit capped by the
    environment's ``command_timeout``; or, for keys-mode scaffolds such as ``terminus-2``, typed raw into
    the live terminal followed by its wait, also capped by ``command_timeout``) and the outputs come back
    as the next user message. The episode ends, always with the verifier run and the reward recorded, when:

    * the model declares completion (``terminus``: twice in a row) → ``termination="submitted"``;
    * ``max_turns`` replies were used up → ``"max_steps"``;
    * the agent's wall-clock budget (the environment's ``max_episode_seconds``: the task's agent timeout,
      as ``env_kwargs["timeouts"]`` scales it) ran out, in a command or while the model was answering →
      ``"time_limit"`` (the agent timeout of Terminal-Bench and Harbor);
    * the environment truncates (its ``max_steps``, wall-clock budget, the shell exiting, a sandbox
      failure) → that reason;
    * ``max_parse_errors`` consecutive replies could not be parsed → ``"parse_error"`` (each malformed
      reply before that is answered with a parse-error message);
    * the policy raises :class:`ContextOverflow` → ``"context_overflow"`` (keys-mode scaffolds with a
      hand-off first ask for a summary and go on in a fresh conversation, at most :data:`MAX_HANDOFFS`
      times; the earlier conversations are kept in ``traj.handoffs``), any other error →
      ``"policy_error"`` (``error`` holds the message).

    ``messages`` in the trajectory are exactly the messages the policy was given, plus its replies.
    ``steps`` are the executed commands (the final verifier run is not a step). A failing ``reset`` (the
    sandbox could not start) raises: that is an infrastructure failure, not an episode. The environment is
    always closed. ``env_kwargs`` go to :class:`~ltenv.env.TerminalEnv` (``command_timeout``,
    ``max_episode_seconds``, ``max_output_bytes``, ``offline_tests``...); ``cast_path``: also write an
    asciinema v2 recording of the terminal.
    """
    from ltenv.env import TerminalEnv

    t_start = time.monotonic()
    if not isinstance(task, Task):
        task = load_task(task)
    sc = get_scaffold(scaffold)
    kwargs = {"max_steps": max(100, STEPS_PER_TURN * max_turns), **(env_kwargs or {})}
    mode = kwargs.pop("action_mode", sc.action_mode)
    if mode != sc.action_mode:
        raise ValueError(
            f"the {sc.name} scaffold drives the environment in {sc.action_mode} mode, not {mode}"
        )
    keys_mode = mode == "keys"
    traj = Trajectory(
        run=run,
        task=task.name,
        # [task] name of task.toml, when it differs from the folder name (the id).
        **({"task_display_name": task.display_name} if task.display_name != task.name else {}),
        task_path=str(task.path),
        task_checksum=task.checksum(),
        task_format=task.format,
        domain=task.domain,
        difficulty=task.difficulty,
        attempt=attempt,
        seed=seed,
        policy=policy.name,
        model=policy.model,
        scaffold=sc.name,
        action_mode=mode,
        backend=backend,
        started_at=now_iso(),
        versions=versions(),
    )
    timings = {"reset": 0.0, "policy": 0.0, "env": 0.0, "verifier": 0.0}
    usage: dict[str, int] = {}
    env = TerminalEnv(task, backend=backend, image_store=image_store, action_mode=mode, **kwargs)
    cast: CastWriter | None = None
    try:
        t = time.monotonic()
        obs, info = env.reset(seed=seed)
        timings["reset"] = time.monotonic() - t
        prompt = f"root@sandbox:{info['workdir']}# "
        if cast_path is not None:
            cast = CastWriter(cast_path, width=env.screen_cols, height=env.screen_rows, title=task.name)
            cast.output(obs["output"] if keys_mode else str(obs))
        messages = sc.initial_messages(task.instruction, obs["screen"] if keys_mode else str(obs))
        seen = len(messages)  # messages[:seen] is what the policy was given (plus its replies)
        final: dict[str, Any] | None = None  # info of the step that ran the verifier
        termination: str | None = None
        pending_confirmation = False
        consecutive_errors = 0
        handoffs = 0
        term = _KeysTerminal(env) if keys_mode else None
        if keys_mode:
            traj.handoffs = []  # earlier conversations, each ended by a summary (see _hand_off)
        turn = 0
        command_timeout = env.command_timeout
        while True:
            if turn >= max_turns:
                termination = "max_steps"
                break
            ctx = EpisodeContext(task=task, attempt=attempt, turn=turn, seed=seed, scaffold=sc.name)
            seen = len(messages)
            t = time.monotonic()
            try:
                left = env.seconds_left
                if left <= 0:
                    raise _AgentTimeout
                completion = _complete_within(policy, [dict(m) for m in messages], ctx, left)
            except _AgentTimeout:
                termination = "time_limit"
                traj.error = (
                    f"agent timeout: the {env.max_episode_seconds:g}s wall-clock budget ran out while the "
                    "policy was answering"
                )
                break
            except ContextOverflow as e:
                handoff = None
                if term is not None and handoffs < MAX_HANDOFFS and hasattr(sc, "handoff_messages"):
                    handoff = _hand_off(sc, policy, messages, task, ctx, term, usage, timings)
                if handoff is None:
                    termination, traj.error = "context_overflow", str(e)
                    break
                handoffs += 1
                traj.handoffs.append({"turn": turn, "messages": messages, "summary": handoff[0]})
                messages = handoff[1]
                continue
            except PolicyError as e:
                termination, traj.error = "policy_error", str(e)
                break
            except Exception as e:  # a policy bug must not lose the episode's sandbox or reward
                log.exception("policy %r failed", policy)
                termination, traj.error = "policy_error", f"{type(e).__name__}: {e}"
                break
            finally:
                timings["policy"] += time.monotonic() - t
            for k, v in completion.usage.items():
                usage[k] = usage.get(k, 0) + int(v)
            messages.append(completion.message())
            seen = len(messages)
            try:
                parsed: Parsed = sc.parse(completion.text)
            except ParseError as e:
                traj.parse_errors += 1
                consecutive_errors += 1
                pending_confirmation = False
                turn += 1
                if consecutive_errors >= max_parse_errors:
                    termination = "parse_error"
                    traj.error = f"{consecutive_errors} consecutive malformed replies; last: {e.message}"
                    break
                messages.append(sc.parse_error_message(e))
                continue
            consecutive_errors = 0
            results: list[ActionResult] = []
            if term is not None:
                final = _run_keys(term, parsed.actions, results, traj, turn, timings, cast)
            else:
                for action in parsed.actions:
                    limit = (
                        command_timeout if action.timeout is None else min(command_timeout, action.timeout)
                    )
                    env.command_timeout = limit
                    if cast is not None:
                        cast.output(action.command + "\n")
                    t = time.monotonic()
                    try:
                        obs, _r, terminated, truncated, info = env.step(action.command)
                    finally:
                        env.command_timeout = command_timeout
                        timings["env"] += time.monotonic() - t
                    out = str(obs)
                    traj.steps.append(
                        Step(
                            action=action.command,
                            observation=out,
                            exit_code=info.get("exit_code"),
                            timed_out=bool(info.get("timed_out", False)),
                            duration_s=float(info.get("duration_s", 0.0)),
                            turn=turn,
                        )
                    )
                    results.append(
                        ActionResult(
                            command=action.command,
                            output=out,
                            exit_code=info.get("exit_code"),
                            timed_out=bool(info.get("timed_out", False)),
                            duration_s=float(info.get("duration_s", 0.0)),
                        )
                    )
                    if cast is not None:
                        cast.output(out)
                    if terminated or truncated:
                        final = info
                        v = float(info.get("verifier_seconds", 0.0))
                        timings["env"] -= v
                        timings["verifier"] += v
                        break
                    if cast is not None:
                        cast.output(prompt)
            turn += 1
            if final is not None:
                termination = str(final.get("termination", "sandbox_error"))
                if final.get("error"):
                    traj.error = str(final["error"])
                break
            if parsed.complete:
                if sc.confirm_completion and not pending_confirmation:
                    pending_confirmation = True
                    messages.append(sc.confirmation_message(results, warnings=parsed.warnings))
                    continue
                termination = "submitted"
                break
            pending_confirmation = False
            messages.append(sc.observation_message(results, warnings=parsed.warnings))
        if final is None:
            t = time.monotonic()
            _obs, _r, _term, _trunc, final = env.step(ltenv.SUBMIT)
            timings["verifier"] += time.monotonic() - t
            if final.get("error") and not traj.error:
                traj.error = str(final["error"])
        if cast is not None:
            cast.output(f"[verifier] reward={float(final.get('reward', 0.0)):g}\n")
        traj.messages = messages[:seen]
        traj.termination = termination or "submitted"
        traj.reward = float(final.get("reward", 0.0))
        traj.passed = bool(final.get("passed", False))
        traj.tests = list(final.get("tests", []))
        traj.verifier_error = final.get("verifier_error")
        traj.verifier_status = str(
            final.get("verifier_status") or ("verifier_error" if traj.verifier_error else "ok")
        )
    finally:
        if cast is not None:
            cast.close()
        env.close()
    traj.usage = usage
    timings["total"] = time.monotonic() - t_start
    traj.timings = {k: round(v, 4) for k, v in timings.items()}
    traj.finished_at = now_iso()
    return traj
