"""``TerminalEnv``: a task as a Gymnasium environment with text actions and terminal observations.

Example:
    >>> import gymnasium as gym, ltenv
    >>> env = gym.make("LiteCoder/csv-column-stats")             # doctest: +SKIP
    >>> obs, info = env.reset()                                  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step("ls -la")
    >>> obs, reward, terminated, truncated, info = env.step(ltenv.SUBMIT)   # runs the verifier
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
from ltenv.terminal import ShellSession
from ltenv.terminal.session import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT
from ltenv.verify import VerifierResult, verify

log = logging.getLogger(__name__)


MAX_ACTION_CHARS = 1 << 20
MAX_OBSERVATION_CHARS = 1 << 22


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


class TerminalEnv(gym.Env[str, str]):
    """One task as an environment. Every ``reset`` starts a fresh sandbox from the task image.

    Args:
        task: a task folder path or a loaded :class:`~ltenv.tasks.Task`.
        backend: sandbox backend (``"bwrap"``).
        action_mode: ``"command"``: an action is shell input run to completion in a persistent bash.
        max_steps: commands before the episode is truncated (the verifier still runs).
        max_episode_seconds: wall-clock budget; defaults to the task's ``[agent] timeout_sec``.
        command_timeout: per-command limit; a command past it gets Ctrl-C, then SIGKILL.
        max_output_bytes: observation budget per command (head and tail kept).
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"`` (prints it).
        info_timings: put wall-clock measurements (``duration_s``, ``elapsed_s``...) in ``info``. They differ
            between runs, so ``gymnasium.utils.env_checker.check_env``'s step-determinism check needs ``False``.
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
    ):
        if action_mode != "command":
            raise ValueError(f"action_mode {action_mode!r} is not supported yet; use 'command'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.task = task if isinstance(task, Task) else load_task(task)
        self.backend = backend
        self.action_mode = action_mode
        self.max_steps = max_steps
        self.max_episode_seconds = max_episode_seconds or self.task.config.agent.timeout_sec
        self.command_timeout = command_timeout
        self.max_output_bytes = max_output_bytes
        self.render_mode = render_mode
        self._store = image_store
        self.info_timings = info_timings
        self.observation_space = TerminalText(MAX_OBSERVATION_CHARS)
        self.action_space = TerminalText(MAX_ACTION_CHARS)
        self.sandbox: Sandbox | None = None
        self.shell: ShellSession | None = None
        self._steps = 0
        self._t0 = 0.0
        self._done = True
        self._transcript: list[str] = []
        self.last_verification: VerifierResult | None = None

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self._teardown()
        t0 = time.monotonic()
        try:
            if self._store is None and self.backend == "bwrap":
                from ltenv.sandbox.images import ImageStore

                self._store = ImageStore()  # one per env: it remembers the task's digest across resets
            self.sandbox = create_sandbox(self.task, backend=self.backend, store=self._store)
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
        workdir = self.sandbox.spec.workdir
        obs = f"{self.task.instruction.rstrip()}\n\nCurrent terminal state:\n{_initial_screen(workdir)}"
        self._transcript = [obs]
        info = {
            "task": self.task.name,
            "domain": self.task.domain,
            "difficulty": self.task.difficulty,
            "instruction": self.task.instruction,
            "workdir": workdir,
            "backend": self.backend,
        }
        if self.info_timings:
            info["reset_seconds"] = time.monotonic() - t0
        return obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._done or self.shell is None:
            raise gym.error.ResetNeeded("the episode is over (or never started): call reset()")
        if not isinstance(action, str):
            raise TypeError(f"actions are strings of shell input, got {type(action).__name__}")
        if action.strip() == SUBMIT:
            return self._finish("submitted", terminated=True, obs_prefix="")

        remaining = self.max_episode_seconds - (time.monotonic() - self._t0)
        if remaining <= 0:
            return self._finish("time_limit", terminated=False, obs_prefix="")
        self._steps += 1
        try:
            res = self.shell.run(action, timeout=min(self.command_timeout, remaining))
        except (SandboxError, ShellError) as e:
            return self._finish("sandbox_error", terminated=False, obs_prefix="", error=str(e))
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

    def _finish(
        self,
        reason: str,
        *,
        terminated: bool,
        obs_prefix: str,
        extra: dict | None = None,
        error: str | None = None,
    ) -> tuple[str, float, bool, bool, dict]:
        """End the episode: run the verifier (whatever the reason) and report the reward."""
        self._done = True
        info: dict[str, Any] = dict(extra or {})
        info["termination"] = reason
        info["shell_exited"] = reason == "shell_exited"
        if error:
            info["error"] = error
        try:
            assert self.sandbox is not None
            result = verify(self.sandbox, self.task)
        except LtenvError as e:
            result = VerifierResult(0.0, False, error=f"verification failed: {e}")
        self.last_verification = result
        info.update(
            reward=result.reward,
            passed=result.passed,
            tests=[t.__dict__ for t in result.tests],
            verifier_error=result.error,
            verifier_seconds=result.duration_s,
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
        }[reason]
        obs = obs_prefix + note
        self._transcript.append(f"[verifier] reward={result.reward:g}")
        return obs, float(result.reward), terminated, not terminated, info

    def render(self) -> str | None:
        text = "\n".join(self._transcript)
        if self.render_mode == "human":
            print(self._transcript[-1] if self._transcript else "")
            return None
        return text

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
