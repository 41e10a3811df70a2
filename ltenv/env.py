"""``TerminalEnv``: a task as a Gymnasium environment with text actions and terminal observations.

Example:
    >>> import gymnasium as gym, ltenv
    >>> env = gym.make("LiteCoder/csv-column-stats")             # doctest: +SKIP
    >>> obs, info = env.reset()                                  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step("ls -la")
    >>> obs, reward, terminated, truncated, info = env.step(ltenv.SUBMIT)   # runs the verifier

Keys mode (keystrokes into an interactive terminal, observations are the rendered screen):
    >>> env = gym.make("LiteCoder/csv-column-stats", action_mode="keys")   # doctest: +SKIP
    >>> obs, info = env.reset()                                  # doctest: +SKIP
    >>> obs, *_ = env.step(ltenv.keys("python3", "Enter", wait=2))         # doctest: +SKIP
    >>> print(obs["screen"])                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import string
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from ltenv import SUBMIT
from ltenv.errors import LtenvError, SandboxError, ShellError
from ltenv.sandbox import DEFAULT_BACKEND, Sandbox, create_sandbox
from ltenv.tasks import Task, load_task
from ltenv.tasks.model import Timeouts
from ltenv.terminal import KeysSession, ShellSession, parse_keys_action
from ltenv.terminal.keys import DEFAULT_WAIT
from ltenv.terminal.session import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT
from ltenv.verify import VerifierResult, verify

log = logging.getLogger(__name__)


MAX_ACTION_CHARS = 1 << 20
MAX_OBSERVATION_CHARS = 1 << 22
ACTION_MODES = ("command", "keys")


class TerminalText(spaces.Text):
    """A :class:`gymnasium.spaces.Text` that admits any Unicode text up to ``max_length`` characters.

    Terminal output and shell input can hold any character; sampling draws from printable ASCII.
    """

    def __init__(self, max_length: int, *, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TerminalText(max_length={self.max_length})"


def _initial_screen(workdir: str) -> str:
    return f"root@sandbox:{workdir}# "


class TerminalEnv(gym.Env[str | dict[str, str], str]):
    """One task as an environment. Every ``reset`` starts a fresh sandbox from the task image.

    Action modes:

    * ``"command"`` (default): an action is shell input run to completion in a persistent bash; the
      observation is its output (a string); ``info`` has ``exit_code``, ``timed_out``...
    * ``"keys"``: an action is keystrokes typed into an interactive ``bash -i`` on a
      ``screen_rows`` x ``screen_cols`` terminal (readline, echo, prompt ``root@sandbox:/app#``), like
      Terminal-Bench's tmux agents: a JSON object ``{"keys": ["vi a.txt", "Enter"], "wait": 2}`` (tmux
      ``send-keys`` key names, see :func:`ltenv.terminal.keys.encode_keys`; build it with
      :func:`ltenv.keys`), a JSON list ``["ls", "Enter"]``, or plain text typed as is (``"ls\\n"``).
      After sending, the terminal is read for ``wait`` seconds (default ``keys_wait``). The observation
      is ``{"screen": <rendered screen>, "output": <text printed meanwhile>}``; ``info`` has ``step``,
      ``wait_s``, ``shell_exited``, ``truncated_bytes`` (``action_error`` for an action that could not
      be parsed: nothing is typed, the step counts, the observation explains the error).

    In both modes :data:`ltenv.SUBMIT` runs the verifier and ends the episode.

    A step in which the sandbox hit its memory or process limit (the kernel's counters say so) names it in
    the observation and in ``info["limits_hit"]``; the episode goes on, in command mode with a fresh shell
    if the kernel killed the shell. Where the exhaustion leaves the sandbox unusable (it died, its shell
    cannot be restarted, or the verifier cannot run in it) the episode ends with ``termination`` set to
    ``"resource_limit"`` and reward 0: the agent's outcome, not an infrastructure error.

    Args:
        task: a task folder path or a loaded :class:`~ltenv.tasks.Task`.
        backend: sandbox backend: ``"bwrap"`` (daemonless, default) or ``"docker"``.
        action_mode: ``"command"`` or ``"keys"`` (above).
        max_steps: actions before the episode is truncated (the verifier still runs).
        max_episode_seconds: wall-clock budget; defaults to the task's ``[agent] timeout_sec``
            (``max_agent_timeout_sec`` of a Terminal-Bench task) as ``timeouts`` scales it.
        timeouts: a :class:`~ltenv.tasks.model.Timeouts` (or its fields as a dict): multipliers or global
            values for the agent's and the verifier's timeouts, as Terminal-Bench and Harbor runs offer.
            The verifier's budget bounds the task's tests.
        command_timeout: per-command limit; a command past it gets Ctrl-C, then SIGKILL. In keys mode it
            caps an action's ``wait``.
        max_output_bytes: observation budget per action (head and tail kept).
        render_mode: ``"ansi"`` (``render()`` returns the transcript; in keys mode the screen) or
            ``"human"`` (prints it).
        info_timings: put wall-clock measurements (``duration_s``, ``elapsed_s``...) in ``info``. They differ
            between runs, so ``gymnasium.utils.env_checker.check_env``'s step-determinism check needs ``False``.
        keys_wait: keys mode: seconds to read the terminal after an action that gives no ``wait``.
        screen_rows, screen_cols: keys mode: terminal size (the PTY and the rendered screen).
        offline_tests: verify with the image's own pytest where the task's test script would download its
            tools (Terminal-Bench ``run-tests.sh`` with uv); reported in ``info["verifier_runner"]`` and
            ``info["verifier_notes"]``.
        force_build: build the task's image from ``environment/Dockerfile`` even when ``task.toml`` names a
            prebuilt ``[environment] docker_image`` (Harbor's ``--force-build``); ``None``: the image store's
            setting.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(
        self,
        task: str | Path | Task,
        *,
        backend: str = DEFAULT_BACKEND,
        action_mode: str = "command",
        max_steps: int = 100,
        max_episode_seconds: float | None = None,
        command_timeout: float = DEFAULT_TIMEOUT,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
        render_mode: str | None = None,
        image_store=None,
        info_timings: bool = True,
        offline_tests: bool = False,
        keys_wait: float = DEFAULT_WAIT,
        screen_rows: int = 40,
        screen_cols: int = 160,
        force_build: bool | None = None,
        timeouts: Timeouts | dict[str, Any] | None = None,
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {list(ACTION_MODES)}, got {action_mode!r}")
        if keys_wait < 0:
            raise ValueError(f"keys_wait must be >= 0, got {keys_wait}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.task = task if isinstance(task, Task) else load_task(task)
        self.backend = backend
        self.action_mode = action_mode
        self.max_steps = max_steps
        self.timeouts = (
            timeouts if isinstance(timeouts, Timeouts) else Timeouts.model_validate(timeouts or {})
        )
        self.max_episode_seconds = max_episode_seconds or self.timeouts.agent_timeout(self.task)
        self.verifier_timeout = self.timeouts.verifier_timeout(self.task)
        self.command_timeout = command_timeout
        self.max_output_bytes = max_output_bytes
        self.render_mode = render_mode
        self._store = image_store
        self.force_build = force_build
        self.info_timings = info_timings
        self.offline_tests = offline_tests
        self.keys_wait = keys_wait
        self.screen_rows, self.screen_cols = screen_rows, screen_cols
        if action_mode == "keys":
            self.observation_space = spaces.Dict(
                {"screen": TerminalText(MAX_OBSERVATION_CHARS), "output": TerminalText(MAX_OBSERVATION_CHARS)}
            )
        else:
            self.observation_space = TerminalText(MAX_OBSERVATION_CHARS)
        self.action_space = TerminalText(MAX_ACTION_CHARS)
        self.sandbox: Sandbox | None = None
        self.shell: ShellSession | KeysSession | None = None
        self._last_screen = ""
        self._steps = 0
        self._t0 = 0.0
        self._done = True
        self._transcript: list[str] = []
        self.last_verification: VerifierResult | None = None
        self._limit_counts: dict[str, int] = {}  # the sandbox's resource_events() at the last reading
        self._step_limits: list[str] = []  # limits hit during the current step

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str | dict[str, str], dict]:
        super().reset(seed=seed)
        self._teardown()
        t0 = time.monotonic()
        try:
            if self._store is None:
                from ltenv.sandbox.images import ImageStore

                # One per env: it remembers the task's digest across resets.
                self._store = ImageStore(force_build=bool(self.force_build))
            elif self.force_build is not None:
                self._store = self._store.with_options(force_build=self.force_build)
            self.sandbox = create_sandbox(self.task, backend=self.backend, store=self._store)
            if self.action_mode == "keys":
                self.shell = KeysSession(
                    self.sandbox,
                    self.screen_rows,
                    self.screen_cols,
                    wait=self.keys_wait,
                    max_output_bytes=self.max_output_bytes,
                )
            else:
                self.shell = ShellSession(
                    self.sandbox, timeout=self.command_timeout, max_output_bytes=self.max_output_bytes
                )
            self.sandbox.start(pty=self.shell.pty_request())  # the shell boots while the sandbox does
            self.shell.start()
        except BaseException:
            self._teardown()
            raise
        self._steps = 0
        self._t0 = time.monotonic()
        self._done = False
        self.last_verification = None
        self._limit_counts, self._step_limits = self.sandbox.resource_events(), []
        workdir = self.sandbox.spec.workdir
        intro = f"{self.task.instruction.rstrip()}\n\nCurrent terminal state:\n"
        obs: str | dict[str, str]
        if isinstance(self.shell, KeysSession):
            text = intro + self.shell.initial_output
            self._last_screen = self.shell.screen()
            obs = {"screen": self._last_screen, "output": text}
        else:
            obs = text = intro + _initial_screen(workdir)
        self._transcript = [text]
        info = {
            "task": self.task.name,
            "task_name": self.task.display_name,
            "domain": self.task.domain,
            "difficulty": self.task.difficulty,
            "instruction": self.task.instruction,
            "workdir": workdir,
            "backend": self.backend,
        }
        if self.info_timings:
            info["reset_seconds"] = time.monotonic() - t0
        return obs, info

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict]:
        if self._done or self.shell is None:
            raise gym.error.ResetNeeded("the episode is over (or never started): call reset()")
        if not isinstance(action, str):
            raise TypeError(f"actions are strings of shell input, got {type(action).__name__}")
        if action.strip() == SUBMIT:
            return self._finish("submitted", terminated=True, obs_prefix="")
        if isinstance(self.shell, KeysSession):
            return self._step_keys(self.shell, action)

        remaining = self.max_episode_seconds - (time.monotonic() - self._t0)
        if remaining <= 0:
            return self._finish("time_limit", terminated=False, obs_prefix="")
        self._steps += 1
        self._step_limits = []
        try:
            res = self.shell.run(action, timeout=min(self.command_timeout, remaining))
        except (SandboxError, ShellError) as e:
            return self._finish("sandbox_error", terminated=False, obs_prefix="", error=self._died(str(e)))
        obs = res.output
        if res.timed_out:
            limit = min(self.command_timeout, remaining)
            obs += f"\n[command timed out after {limit:g}s and was interrupted]\n"
        info: dict[str, Any] = {
            "exit_code": res.exit_code,
            "timed_out": res.timed_out,
            "duration_s": res.duration_s,
            "truncated_bytes": res.truncated_bytes,
            "shell_restarted": res.shell_restarted,
            "step": self._steps,
        }
        if hit := self._poll_limits():
            obs += f"\n[{self._limit_text(hit)}]\n"
            info["limits_hit"] = hit
            if res.shell_exited and self.sandbox is not None and self.sandbox.alive:
                # The kernel killed the shell, not the agent's `exit`: the sandbox lives, so the episode does.
                try:
                    self.shell.restart()
                except (SandboxError, ShellError) as e:
                    self._transcript.append(f"$ {action}\n{obs}")
                    why = f"the shell was killed and could not be restarted ({self._died(str(e))})"
                    return self._finish(
                        "resource_limit", terminated=False, obs_prefix=obs, extra=info, error=why
                    )
                res.shell_exited, info["shell_restarted"] = False, True
                obs += (
                    "[the shell was killed; a new one started (working directory, variables, jobs reset)]\n"
                )
        self._transcript.append(f"$ {action}\n{obs}")
        if self.render_mode == "human":
            self.render()
        if not self.info_timings:
            info.pop("duration_s")
        if res.shell_exited:
            return self._finish("shell_exited", terminated=False, obs_prefix=obs, extra=info)
        if self._steps >= self.max_steps:
            return self._finish("max_steps", terminated=False, obs_prefix=obs, extra=info)
        if time.monotonic() - self._t0 >= self.max_episode_seconds:
            return self._finish("time_limit", terminated=False, obs_prefix=obs, extra=info)
        return obs, 0.0, False, False, info

    def _step_keys(self, session: KeysSession, action: str) -> tuple[dict[str, str], float, bool, bool, dict]:
        remaining = self.max_episode_seconds - (time.monotonic() - self._t0)
        if remaining <= 0:
            return self._finish("time_limit", terminated=False, obs_prefix="")
        self._steps += 1
        self._step_limits = []
        info: dict[str, Any] = {
            "step": self._steps,
            "wait_s": 0.0,
            "shell_exited": False,
            "truncated_bytes": 0,
        }
        try:
            parsed = parse_keys_action(action)
        except ValueError as e:
            output = f"[action not sent: {e}]\n"
            info["action_error"] = str(e)
            res = None
        else:
            wait = parsed.wait if parsed.wait is not None else self.keys_wait
            wait = max(0.0, min(wait, self.command_timeout, remaining))
            try:
                res = session.send(parsed.keys, wait, literal=parsed.literal)
            except (SandboxError, ShellError) as e:
                return self._finish(
                    "sandbox_error", terminated=False, obs_prefix="", error=self._died(str(e))
                )
            output = res.output
            info.update(wait_s=wait, shell_exited=res.shell_exited, truncated_bytes=res.truncated_bytes)
            if res.unsent_bytes:
                output += (
                    f"\n[{res.unsent_bytes} bytes of keystrokes not sent: the terminal's input stayed full]\n"
                )
                info["unsent_bytes"] = res.unsent_bytes
            if self.info_timings:
                info["duration_s"] = res.duration_s
            if hit := self._poll_limits():
                output += f"\n[{self._limit_text(hit)}]\n"
                info["limits_hit"] = hit
        self._last_screen = session.screen()
        self._transcript.append(f"[keys] {action}\n{output}")
        if self.render_mode == "human":
            self.render()
        if res is not None and res.shell_exited:
            # A shell the kernel killed at a limit is not restarted in keys mode (the screen would lie).
            reason = "resource_limit" if self._step_limits else "shell_exited"
            why = "the shell was killed" if self._step_limits else None
            return self._finish(reason, terminated=False, obs_prefix=output, extra=info, error=why)
        if self._steps >= self.max_steps:
            return self._finish("max_steps", terminated=False, obs_prefix=output, extra=info)
        if time.monotonic() - self._t0 >= self.max_episode_seconds:
            return self._finish("time_limit", terminated=False, obs_prefix=output, extra=info)
        return {"screen": self._last_screen, "output": output}, 0.0, False, False, info

    def _died(self, fallback: str) -> str:
        """The error to report when a step failed: the sandbox's death if it died, else ``fallback``."""
        if self.sandbox is not None and not self.sandbox.alive:
            return f"the sandbox died: {self.sandbox.exit_reason()}"
        return fallback

    def _poll_limits(self) -> list[str]:
        """The limits (``memory``, ``pids``) the sandbox hit since the last reading of its counters; they are
        also added to the current step's list."""
        if self.sandbox is None:
            return []
        counts = self.sandbox.resource_events()
        hit = [k for k in sorted(counts) if counts[k] > self._limit_counts.get(k, 0)]
        self._limit_counts.update(counts)
        self._step_limits += [k for k in hit if k not in self._step_limits]
        return hit

    def _limit_text(self, hit: list[str]) -> str:
        assert self.sandbox is not None
        spec = self.sandbox.spec
        what = {
            "memory": f"its memory limit ({spec.memory_mb} MB): the kernel killed a process (out of memory)",
            "pids": f"its process limit ({spec.pids_limit} processes): new processes could not be started",
        }
        return "the sandbox hit " + "; and ".join(what.get(k, f"its {k} limit") for k in hit)

    def _finish(
        self,
        reason: str,
        *,
        terminated: bool,
        obs_prefix: str,
        extra: dict | None = None,
        error: str | None = None,
    ) -> tuple[Any, float, bool, bool, dict]:
        """End the episode: run the verifier and report the reward.

        The verifier runs whatever the reason, except ``resource_limit``: the agent exhausted a limit of its
        own sandbox (memory, processes) and that left the sandbox or its shell unusable, or kept the verifier
        from running. The reward is then 0, an outcome of the agent's like a timeout, not an infrastructure
        error: the counters of the sandbox's cgroup (:meth:`~ltenv.sandbox.Sandbox.resource_events`) show the
        limit hit while the failing step or the verifier ran.
        """
        self._done = True
        if reason == "shell_exited" and self.sandbox is not None and not self.sandbox.alive:
            # Not the agent's `exit`: the sandbox itself died (killed, out of memory, lifetime over).
            reason, error = "sandbox_error", self._died("")
        hits = self._step_limits  # hit during the step that ends the episode
        if reason == "sandbox_error":
            self._poll_limits()
            if hits:
                reason = "resource_limit"
        if reason == "resource_limit":
            result = VerifierResult(
                0.0, False, notes=["not verified: the agent exhausted its sandbox's limits"]
            )
        else:
            try:
                assert self.sandbox is not None
                result = verify(
                    self.sandbox, self.task, offline=self.offline_tests, timeout=self.verifier_timeout
                )
            except LtenvError as e:
                result = VerifierResult(0.0, False, error=f"verification failed: {e}")
            if result.error and not result.tampered and (hits := self._poll_limits()):
                reason, error = "resource_limit", "the verifier could not run"
                result = VerifierResult(
                    0.0,
                    False,
                    runner=result.runner,
                    notes=[
                        *result.notes,
                        "not verified: the agent exhausted its sandbox's limits",
                        f"the verifier could not run: {result.error}",
                    ],
                )
        if reason == "resource_limit":
            error = f"{self._limit_text(hits)}; {error or 'the sandbox is unusable'}"
        self.last_verification = result
        info: dict[str, Any] = dict(extra or {})
        info["termination"] = reason
        info["shell_exited"] = reason == "shell_exited"
        if error:
            info["error"] = error
        info.update(
            reward=result.reward,
            passed=result.passed,
            tests=[t.__dict__ for t in result.tests],
            verifier_error=result.error,
            verifier_status=result.status,
            verifier_seconds=result.duration_s,
            verifier_runner=result.runner,
            verifier_notes=list(result.notes),
            steps=self._steps,
        )
        if self.info_timings:
            info["elapsed_s"] = time.monotonic() - self._t0
        else:
            info.pop("verifier_seconds")
            for t in info["tests"]:
                t.pop("duration_s", None)
        note = {
            "submitted": "",
            "max_steps": f"[episode truncated: max_steps={self.max_steps} reached]\n",
            "time_limit": f"[episode truncated: {self.max_episode_seconds:g}s wall-clock budget used]\n",
            "shell_exited": "[the shell exited; episode over]\n",
            "sandbox_error": f"[sandbox error: {error}]\n",
            "resource_limit": f"[episode over: {error}]\n",
        }[reason]
        obs: str | dict[str, str] = obs_prefix + note
        if isinstance(self.shell, KeysSession):
            self._last_screen = self.shell.screen()
            obs = {"screen": self._last_screen, "output": obs_prefix + note}
        self._transcript.append(f"[verifier] reward={result.reward:g}")
        return obs, float(result.reward), terminated, not terminated, info

    def render(self) -> str | None:
        if self.action_mode == "keys":
            screen = self.shell.screen() if isinstance(self.shell, KeysSession) else self._last_screen
            if self.render_mode == "human":
                print(screen)
                return None
            return screen
        text = "\n".join(self._transcript)
        if self.render_mode == "human":
            print(self._transcript[-1] if self._transcript else "")
            return None
        return text

    @property
    def seconds_left(self) -> float:
        """Seconds left of the episode's wall-clock budget (``max_episode_seconds``), counted from the end
        of :meth:`reset`; 0 once the episode is over."""
        if self._done:
            return 0.0
        return self.max_episode_seconds - (time.monotonic() - self._t0)

    def close(self) -> None:
        self._teardown()
        super().close()

    def _teardown(self) -> None:
        if self.shell is not None:
            with contextlib.suppress(Exception):
                self.shell.close()
            self.shell = None
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                self.sandbox.close()
            self.sandbox = None
        self._done = True

    def __del__(self):
        with contextlib.suppress(Exception):
            self._teardown()
