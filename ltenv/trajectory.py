"""The trajectory record: one episode, exactly as it happened, one JSON line per episode.

Everything downstream reads these records: SFT and preference exports, evaluation, leaderboards, replays.
``messages`` is exactly what the model saw and said (the chat the policy was given, turn by turn), so an
export can be re-tokenized into what the policy was trained or sampled on; ``steps`` is what the
environment did with each action.

An assistant message holds ``role`` and ``content`` and, where the policy reported them:

- ``reasoning_content``: the model's reasoning (the ``<think>`` block), kept apart from ``content`` as
  vLLM, SGLang and DeepSeek return it; chat templates that know the field (Qwen3) render it back.
- ``tool_calls``: native tool calls in the OpenAI shape ``[{"id", "type": "function", "function":
  {"name", "arguments": "<JSON text>"}}]``.
- ``tokens``: the exact token ids of the turn (:func:`token_record`), when the server returned them:
  ``completion_ids`` (what the model generated, end-of-turn token included when it stopped on it),
  ``logprobs`` (one per completion id, or ``None``), and the prompt as ``prompt_offset`` + ``prompt_ids``:
  the prompt is the first ``prompt_offset`` tokens of the previous turn's sequence (its prompt + completion)
  followed by ``prompt_ids``, so a long episode stores each context token once. :func:`recorded_turns`
  expands them. ``prompt_offset`` short of the previous sequence means the server rendered earlier turns
  differently in this prompt (a template that rewrites history, such as Qwen3 dropping old reasoning).

Records written before these fields existed load unchanged (the fields are simply absent).

Example:
    >>> store = TrajectoryStore("runs/oracle/trajectories.jsonl")      # doctest: +SKIP
    >>> for traj in store.read(): print(traj.task, traj.reward)        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

Termination = Literal[
    "submitted",  # the agent declared the task complete (verifier ran)
    "max_steps",  # turn budget used up (verifier ran)
    "time_limit",  # wall-clock budget used up (verifier ran)
    "shell_exited",  # the agent's shell exited (verifier ran)
    "sandbox_error",  # the sandbox died or could not be driven
    "resource_limit",  # the agent exhausted its sandbox's memory or process limit, which broke it (reward 0)
    "parse_error",  # too many consecutive malformed replies
    "context_overflow",  # the prompt no longer fits the model's context
    "policy_error",  # the policy failed otherwise (endpoint down after retries...)
]

VERIFIER_STATUSES: tuple[str, ...] = (
    "ok",  # a reward the verifier stands behind
    "verifier_error",  # no valid reward could be read (``verifier_error`` says why); reward 0
    "tampered",  # evidence the agent interfered with the verification; reward 0
)
"""The values of :attr:`Trajectory.verifier_status` (``ltenv.verify.VerifierResult.status``)."""


class Step(BaseModel):
    """One action the environment executed and what it returned."""

    model_config = ConfigDict(extra="allow")

    action: str
    observation: str
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    turn: int = 0
    """Index of the model turn (assistant message) this action came from."""


class Trajectory(BaseModel):
    """One episode. Stable, versioned JSON (``schema_version``); unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    run: str = ""
    """Name of the run (the output folder's name) this episode belongs to."""
    task: str
    task_path: str = ""
    task_checksum: str = ""
    task_format: str = "harbor"
    domain: str | None = None
    difficulty: str = "unknown"
    attempt: int = 0
    seed: int | None = None
    policy: str = ""
    model: str | None = None
    scaffold: str = ""
    action_mode: str = "command"
    backend: str = "bwrap"
    messages: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    reward: float = 0.0
    passed: bool = False
    termination: str = "submitted"
    tests: list[dict[str, Any]] = Field(default_factory=list)
    verifier_error: str | None = None
    verifier_status: str = "ok"
    """One of :data:`VERIFIER_STATUSES`. Only ``ok`` episodes count as passes (:attr:`verified`) and become
    training data. Records written before this field existed read as ``verifier_error`` when they carry a
    ``verifier_error``, else ``ok``."""
    error: str | None = None
    parse_errors: int = 0
    usage: dict[str, int] = Field(default_factory=dict)
    """Token counts summed over the episode (``prompt_tokens``, ``completion_tokens``) where known."""
    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds: ``reset``, ``policy``, ``env``, ``verifier``, ``total``."""
    started_at: str = ""
    finished_at: str = ""
    versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _derive_verifier_status(cls, data: Any) -> Any:
        """Old records have no ``verifier_status``: a recorded ``verifier_error`` means the reward was not
        valid."""
        if isinstance(data, dict) and data.get("verifier_status") is None:
            data = {**data, "verifier_status": "verifier_error" if data.get("verifier_error") else "ok"}
        return data

    @property
    def verified(self) -> bool:
        """Whether the verifier stands behind ``reward`` (``verifier_status == "ok"``). ``passed`` counts
        only when this holds: a tampered episode is never a pass, whatever its record says."""
        return self.verifier_status == "ok"

    @property
    def key(self) -> tuple[str, int]:
        """(task, attempt): what a resumed run skips when it is already recorded."""
        return (self.task, self.attempt)

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m.get("role") == "assistant")


TOKEN_FIELDS = ("prompt_offset", "prompt_ids", "completion_ids", "logprobs")
"""The keys of an assistant message's ``tokens`` record (see the module docstring)."""


def token_record(
    previous: list[int],
    prompt_ids: list[int],
    completion_ids: list[int],
    logprobs: list[float] | None = None,
) -> dict[str, Any]:
    """The ``tokens`` record of one assistant turn: ``prompt_ids`` stored as the length of its common prefix
    with ``previous`` (the previous turn's prompt + completion, ``[]`` for the first turn) plus the rest."""
    k = 0
    limit = min(len(previous), len(prompt_ids))
    while k < limit and previous[k] == prompt_ids[k]:
        k += 1
    return {
        "prompt_offset": k,
        "prompt_ids": [int(t) for t in prompt_ids[k:]],
        "completion_ids": [int(t) for t in completion_ids],
        "logprobs": [float(x) for x in logprobs] if logprobs is not None else None,
    }


def recorded_turns(messages: list[dict[str, Any]]) -> list[tuple[list[int], list[int]] | None]:
    """``(prompt ids, completion ids)`` of each assistant message in order, expanded from their ``tokens``
    records; ``None`` for a message without one. Raises ``ValueError`` naming the message when a record is
    malformed (missing key, offset beyond the previous sequence)."""
    out: list[tuple[list[int], list[int]] | None] = []
    sequence: list[int] = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        rec = m.get("tokens")
        if not rec:
            out.append(None)
            continue
        if not isinstance(rec, dict) or any(rec.get(k) is None for k in TOKEN_FIELDS[:3]):
            raise ValueError(f"message {i}: 'tokens' needs {', '.join(TOKEN_FIELDS[:3])}, got {rec!r:.200}")
        offset = int(rec["prompt_offset"])
        if not 0 <= offset <= len(sequence):
            raise ValueError(
                f"message {i}: tokens.prompt_offset {offset} is beyond the previous turn's {len(sequence)} tokens"
            )
        prompt = sequence[:offset] + [int(t) for t in rec["prompt_ids"]]
        completion = [int(t) for t in rec["completion_ids"]]
        out.append((prompt, completion))
        sequence = prompt + completion
    return out


def last_sequence(messages: list[dict[str, Any]]) -> list[int]:
    """The token sequence (prompt + completion) of the last assistant message with a ``tokens`` record, or
    ``[]``: what the next turn's record is stored relative to."""
    for turn in reversed(recorded_turns(messages)):
        if turn is not None:
            return turn[0] + turn[1]
    return []


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def versions() -> dict[str, str]:
    from ltenv import __version__

    return {"ltenv": __version__, "python": platform.python_version()}


class TrajectoryStore:
    """An append-only JSONL file of trajectories.

    Each record is written with one ``write`` of a complete line under an exclusive lock and flushed with
    ``fsync``, so concurrent writers never interleave and a crash can at worst leave a partial last line,
    which :meth:`read` skips (and :meth:`append` terminates before writing after it).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def append(self, traj: Trajectory) -> None:
        line = traj.model_dump_json() + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as f:  # a torn last line (killed writer) must not swallow ours
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        os.write(fd, b"\n")
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def repair(self) -> int:
        """Cut a torn last line (a writer killed mid-record) off the file; returns the bytes removed.

        Only the tail after the last newline is removed, under the same lock as :meth:`append`.
        """
        if not self.path.is_file():
            return 0
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            keep = size
            while keep > 0:
                chunk = os.pread(fd, min(keep, 1 << 16), max(0, keep - (1 << 16)))
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = keep - len(chunk) + nl + 1
                    break
                keep -= len(chunk)
            if keep < size:
                os.ftruncate(fd, keep)
                os.fsync(fd)
            return size - keep
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self, *, strict: bool = False) -> Iterator[Trajectory]:
        """Every complete record in order. Torn or malformed lines are skipped (``strict``: raise, naming
        the file and line)."""
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield Trajectory.model_validate(json.loads(line))
                except ValueError as e:
                    if strict:
                        raise ValueError(f"{self.path}:{lineno}: not a trajectory record: {e}") from None

    def done(self) -> set[tuple[str, int]]:
        """(task, attempt) pairs already recorded."""
        return {t.key for t in self.read()}
