"""Policies: what produces the assistant's replies.

* :class:`OpenAIPolicy`: any OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs).
* :class:`HFPolicy`: a local transformers checkpoint (optionally with a PEFT adapter), batching the
  requests of concurrent episodes into one ``generate`` call.
* :class:`OraclePolicy`: types the task's reference solution, then declares completion.
* :class:`NopPolicy`: declares completion at once.
* :class:`ReplayPolicy`: replays the assistant turns of recorded trajectories.

Scripted policies write their replies in the episode's scaffold format (``EpisodeContext.scaffold``), and
those replies go through :meth:`~ltenv.agents.scaffolds.Scaffold.parse` like any model's, so their
conversations are real training-format chats.

One policy object is shared by concurrent episodes (threads): every policy here is thread-safe, and
pickles without its clients/models (Ray ships policies to workers; they reconnect or reload lazily).

Example:
    >>> policy = make_policy("openai:Qwen/Qwen3-8B", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltenv.agents.scaffolds import get_scaffold

if TYPE_CHECKING:
    from ltenv.tasks import Task

log = logging.getLogger(__name__)


class PolicyError(RuntimeError):
    """The policy could not produce a reply (endpoint down after retries, bad request, no replay...)."""


class ContextOverflow(PolicyError):
    """The conversation no longer fits the model's context window."""


@dataclass
class EpisodeContext:
    """What a policy may know about the episode it is replying in. ``turn``: index of the reply asked
    for (the number of assistant messages so far). ``scaffold``: the scaffold's name (scripted policies
    reply in its format)."""

    task: Task
    attempt: int = 0
    turn: int = 0
    seed: int | None = None
    scaffold: str = "terminus"


@dataclass
class Completion:
    """One reply. ``usage``: token counts (``prompt_tokens``, ``completion_tokens``) where known.
    ``prompt_text``: the exact prompt text the model was given, where the policy knows it (``hf``).
    ``reasoning``: the model's reasoning (``<think>`` block) apart from ``text``; ``tool_calls``: native
    tool calls (OpenAI shape); ``tokens``: the turn's token record (:func:`ltenv.trajectory.token_record`),
    where the policy was asked for token ids. :meth:`message` is the assistant message the episode records."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    prompt_text: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tokens: dict[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        """``{"role": "assistant", "content": text}`` plus ``reasoning_content``, ``tool_calls`` and
        ``tokens`` where present."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.reasoning:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        if self.tokens is not None:
            msg["tokens"] = self.tokens
        return msg


def split_reasoning(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a reply that carries its reasoning inline: ``<think>R</think>A``, or
    ``R</think>A`` when the chat template opened the block in the prompt (Qwen3-Thinking). The newlines
    around ``R`` and before ``A`` are stripped as Qwen3's template strips them; ``(None, text)`` otherwise."""
    head, sep, answer = text.partition("</think>")
    if not sep:
        return None, text
    stripped = head.lstrip()
    if stripped.startswith("<think>"):
        head = stripped[len("<think>") :]
    elif "<think>" in head:
        return None, text  # a think block that is not at the start: not reasoning the template would split
    return head.strip("\n"), answer.lstrip("\n")


def wire_messages(messages: list[dict[str, Any]], *, reasoning: bool = False) -> list[dict[str, Any]]:
    """``messages`` as a chat server takes them: without the ``tokens`` records and ``None`` fields, and
    without ``reasoning_content`` unless ``reasoning`` (vLLM and SGLang accept it; DeepSeek's API rejects it)."""
    out = []
    for m in messages:
        drop = {"tokens"} if reasoning else {"tokens", "reasoning_content"}
        out.append({k: v for k, v in m.items() if k not in drop and v is not None})
    return out


class RuntimeState:
    """Pickling for objects that hold process-local state (locks, clients, threads, loaded models): the
    attributes named in ``_runtime_attrs`` are left out of the pickle and rebuilt by ``_init_runtime()``
    on unpickling (a policy shipped to a Ray worker starts fresh there)."""

    _runtime_attrs: tuple[str, ...] = ()

    def _init_runtime(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in self._runtime_attrs:
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()


class Policy:
    """Base class. Subclasses implement :meth:`complete`; it must be thread-safe."""

    name: str = ""
    model: str | None = None

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients, models, threads. The policy stays usable (they come back lazily)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


# ---------------------------------------------------------------------------------------------- OpenAI
def _is_context_error(status: int | None, code: str | None, message: str) -> bool:
    text = message.lower()
    return code == "context_length_exceeded" or (
        (status in (400, 413, None))
        and any(
            s in text
            for s in (
                "maximum context length",
                "context length",
                "context_length_exceeded",
                "prompt is too long",
                "too many tokens",
            )
        )
    )


class OpenAIPolicy(RuntimeState, Policy):
    """An OpenAI-compatible chat-completions endpoint, through the ``openai`` SDK.

    Connection errors, timeouts, 408/409/429 and 5xx are retried ``max_retries`` times with exponential
    backoff (``backoff * 2**n`` seconds, jittered, at most ``max_backoff``; a ``Retry-After`` header is
    honoured up to ``max_backoff``); other 4xx fail at once. A context-length error (400 with code
    ``context_length_exceeded`` or "maximum context length" in the message) raises :class:`ContextOverflow`.
    At most ``max_concurrency`` requests are in flight per policy object.

    ``api_key`` defaults to ``$OPENAI_API_KEY`` and, failing that, a placeholder (local servers take any).
    ``extra_body`` is merged into every request (e.g. vLLM's ``{"top_k": 20}``). ``seed``: sent with each
    request when the episode has one (``send_seed=False`` to leave it out).

    Turn fidelity: the reply's reasoning (``reasoning_content``, or ``reasoning`` as newer vLLM names it) and
    native ``tool_calls`` are kept on the recorded assistant message (:meth:`Completion.message`); a reply
    with its reasoning inline (``<think>...</think>`` in ``content``, a server without a reasoning parser) is
    split the same way (``split_think=False`` keeps it inline). Earlier turns' reasoning is sent back only
    with ``history_reasoning=True``. ``return_token_ids=True`` asks the server for token ids (vLLM's
    ``return_token_ids``: ``prompt_token_ids`` on the response, ``token_ids`` on the choice) and
    ``logprobs=True`` for the sampled tokens' log-probs; both are stored per turn in the message's ``tokens``
    record, and a reply without what was asked for raises :class:`PolicyError` naming the server.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = 0.7,
        top_p: float | None = None,
        max_tokens: int | None = 4096,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 600.0,
        extra_body: dict[str, Any] | None = None,
        send_seed: bool = True,
        return_token_ids: bool = False,
        logprobs: bool = False,
        history_reasoning: bool = False,
        split_think: bool = True,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.return_token_ids = bool(return_token_ids)
        self.logprobs = bool(logprobs)
        self.history_reasoning = bool(history_reasoning)
        self.split_think = bool(split_think)
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        self.send_seed = send_seed
        self._init_runtime()

    _runtime_attrs = ("_client", "_lock", "_slots")

    def _init_runtime(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import os

                import openai

                key = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=0
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _request(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> dict[str, Any]:
        req: dict[str, Any] = {
            "model": self.model,
            "messages": wire_messages(messages, reasoning=self.history_reasoning),
        }
        if self.temperature is not None:
            req["temperature"] = self.temperature
        if self.top_p is not None:
            req["top_p"] = self.top_p
        if self.max_tokens is not None:
            req["max_tokens"] = self.max_tokens
        if self.send_seed and ctx.seed is not None:
            req["seed"] = ctx.seed
        if self.logprobs:
            req["logprobs"] = True
            req["top_logprobs"] = 0
        extra = dict(self.extra_body)
        if self.return_token_ids:
            extra["return_token_ids"] = True
        if extra:
            req["extra_body"] = extra
        return req

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        import openai

        req = self._request(messages, ctx)
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                with self._slots:
                    resp = self.client.chat.completions.create(**req)
                break
            except openai.APIStatusError as e:
                body = e.body if isinstance(e.body, dict) else {}
                err = body.get("error", body) if isinstance(body.get("error", body), dict) else body
                code = err.get("code") if isinstance(err, dict) else None
                message = str(err.get("message") if isinstance(err, dict) and err.get("message") else e)
                if _is_context_error(e.status_code, code if isinstance(code, str) else None, message):
                    raise ContextOverflow(f"context length exceeded: {message}") from e
                if e.status_code not in (408, 409, 429) and e.status_code < 500:
                    raise PolicyError(f"HTTP {e.status_code} from the model server: {message}") from e
                last = f"HTTP {e.status_code}: {message}"
                retry_after = _retry_after(e.response)
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                last = f"{type(e).__name__}: {e}"
            if attempt >= self.max_retries:
                raise PolicyError(f"model server failed after {attempt + 1} attempts: {last}")
            delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = min(self.max_backoff, max(delay, retry_after))
            log.warning("model request failed (%s); retry %d in %.1fs", last, attempt + 1, delay)
            time.sleep(delay)
            attempt += 1
        if not resp.choices:
            raise PolicyError("the model server returned no choices")
        choice = resp.choices[0]
        text = choice.message.content or ""
        usage: dict[str, int] = {}
        if resp.usage is not None:
            usage = {
                "prompt_tokens": int(resp.usage.prompt_tokens or 0),
                "completion_tokens": int(resp.usage.completion_tokens or 0),
            }
        reasoning = getattr(choice.message, "reasoning_content", None) or getattr(
            choice.message, "reasoning", None
        )
        if not isinstance(reasoning, str) or not reasoning:
            reasoning = None
            if self.split_think:
                reasoning, text = split_reasoning(text)
        tool_calls = None
        if choice.message.tool_calls:
            tool_calls = [_tool_call_dict(tc) for tc in choice.message.tool_calls]
        return Completion(
            text=text,
            usage=usage,
            finish_reason=choice.finish_reason,
            reasoning=reasoning,
            tool_calls=tool_calls,
            tokens=self._tokens(resp, choice, messages),
        )

    def _tokens(self, resp: Any, choice: Any, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The turn's token record, when asked for (``return_token_ids``)."""
        from ltenv.trajectory import last_sequence, token_record

        if not self.return_token_ids:
            return None
        prompt_ids = getattr(resp, "prompt_token_ids", None)
        completion_ids = getattr(choice, "token_ids", None)
        if not isinstance(prompt_ids, list) or not isinstance(completion_ids, list):
            raise PolicyError(
                f"the model server at {self.base_url} returned no token ids although return_token_ids was "
                "asked for (expected 'prompt_token_ids' on the response and 'token_ids' on the choice, as "
                "vLLM returns them for return_token_ids=true); use a server that supports it or drop "
                "return_token_ids"
            )
        logprobs = None
        if self.logprobs:
            content = getattr(getattr(choice, "logprobs", None), "content", None)
            if not content:
                raise PolicyError(
                    f"the model server at {self.base_url} returned no logprobs although logprobs was asked for"
                )
            logprobs = [float(item.logprob) for item in content]
        try:
            previous = last_sequence(messages)
        except ValueError:
            previous = []
        return token_record(previous, prompt_ids, completion_ids, logprobs)

    def __repr__(self) -> str:
        return f"OpenAIPolicy(model={self.model!r}, base_url={self.base_url!r})"


def _tool_call_dict(tc: Any) -> dict[str, Any]:
    """An SDK tool call as the OpenAI message dict ``{"id", "type", "function": {"name", "arguments"}}``."""
    fn = getattr(tc, "function", None)
    return {
        "id": str(getattr(tc, "id", "") or ""),
        "type": str(getattr(tc, "type", None) or "function"),
        "function": {
            "name": str(getattr(fn, "name", "") or ""),
            "arguments": str(getattr(fn, "arguments", "") or ""),
        },
    }


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


# -------------------------------------------------------------------------------------- scripted
STEP_TIMEOUT = 60.0
"""Time limit the stepwise oracle asks for each command (capped by the task's agent timeout)."""
KEYS_FIRST_WAIT = 0.5
"""Keys mode: seconds the oracle waits after typing a command before it looks at the terminal."""
KEYS_POLL = 2.0
"""Keys mode: seconds the oracle waits per turn while a command is still running."""
_AT_PROMPT = re.compile(r"[#$] ?$")  # the terminal ends with a shell prompt


def _progress(scaffold, messages: list[dict[str, Any]]) -> tuple[int, bool, int]:
    """How many of its own earlier replies sent something, whether the last one claimed completion, and how
    many replies since the last that sent something only waited."""
    sent, claimed, waits = 0, False, 0
    for m in messages:
        if m.get("role") == "assistant":
            try:
                parsed = scaffold.parse(str(m.get("content", "")))
            except ValueError:
                continue
            sent += bool(parsed.actions)
            waits = 0 if parsed.actions else waits + 1
            claimed = parsed.complete
    return sent, claimed, waits


class OraclePolicy(Policy):
    """Plays the task's reference solution, then declares completion (and confirms it).

    * With ``solution/commands.json`` (procedurally generated tasks): one command per turn, so the
      trajectory is a natural multi-turn demonstration (each command's output comes back before the next);
      the last command goes with the completion claim on scaffolds that confirm completion (terminus).
    * Otherwise ``solution/solve.sh`` (or TB ``solution.sh``) as one command, through a child bash as
      :command:`ltenv play --oracle` does. A Terminal-Bench ``solution.yaml`` (keystrokes for a live
      terminal) is not a command: PolicyError.
    * Keys-mode scaffolds (``terminus-2``): each command is typed, then the oracle waits in short turns
      (:data:`KEYS_FIRST_WAIT`, then :data:`KEYS_POLL` seconds) until the shell's prompt is back, and
      declares completion after the last one (see :meth:`_keys`). A keystroke oracle (Harbor
      ``solution/keys.json``, Terminal-Bench ``solution.yaml``) is replayed one entry per turn (see
      :meth:`_replay`); command mode cannot type it: PolicyError.
    """

    name = "oracle"
    DELIMITER = "__LTENV_ORACLE__"

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        scaffold = get_scaffold(ctx.scaffold)
        if scaffold.action_mode == "keys":
            return Completion(self._keys(scaffold, messages, ctx))
        commands = ctx.task.oracle_commands
        if commands:
            return Completion(self._stepwise(scaffold, commands, ctx))
        if ctx.turn > 0:
            return Completion(scaffold.render_reply([], complete=True, analysis="The solution has run."))
        solution = ctx.task.solution_path
        if solution is None or not solution.is_file():
            raise PolicyError(f"{ctx.task.name} has no reference solution")
        if ctx.task.keystroke_oracle:
            raise PolicyError(
                f"{ctx.task.name}: the oracle is a keystroke script ({solution.name}), which command mode "
                "cannot type; use the terminus-2 scaffold, `ltenv play --oracle` or `ltenv validate`"
            )
        command = f"bash <<'{self.DELIMITER}'\n{solution.read_text().rstrip()}\n{self.DELIMITER}"
        timeout = float(ctx.task.config.agent.timeout_sec)
        complete = scaffold.confirm_completion  # terminus: claim now, confirm next turn
        text = scaffold.render_reply(
            [command], complete=complete, timeout=timeout, analysis="Run the reference solution."
        )
        return Completion(text)

    def _keys(self, scaffold, messages: list[dict[str, Any]], ctx: EpisodeContext) -> str:
        """Keys mode (``terminus-2``): type each command, then wait in short turns until the shell's prompt
        is back, as a careful agent does, instead of asking for the longest wait every time; declare
        completion once the last command has finished, and confirm it."""
        if ctx.task.keystroke_oracle:
            return self._replay(scaffold, messages, ctx)
        commands = ctx.task.oracle_commands
        if not commands:
            solution = ctx.task.solution_path
            if solution is None or not solution.is_file():
                raise PolicyError(f"{ctx.task.name} has no reference solution")
            commands = [self.typed_script(solution.read_text())]
        sent, claimed, _ = _progress(scaffold, messages)
        last = str(messages[-1].get("content", "")) if messages else ""
        if claimed:  # the confirmation question: confirm
            return scaffold.render_reply([], complete=True, analysis="The solution has run.")
        if sent and not _AT_PROMPT.search(last):
            return scaffold.render_reply([], timeout=KEYS_POLL, analysis="The command is still running.")
        if sent >= len(commands):
            return scaffold.render_reply([], complete=True, analysis="The solution has run.")
        return scaffold.render_reply(
            [commands[sent]],
            timeout=KEYS_FIRST_WAIT,
            analysis=f"Step {sent + 1} of {len(commands)} of the reference solution.",
        )

    def _replay(self, scaffold, messages: list[dict[str, Any]], ctx: EpisodeContext) -> str:
        """Keys mode, a keystroke oracle: one entry per turn, then claim completion and confirm it.

        An entry's keystrokes are sent as written (``append_enter`` adds Enter: a newline after text, an
        ``Enter`` key after a key name) and the terminal is watched for its ``min_timeout_sec`` (a
        ``keys.json`` entry's ``duration``). A ``block`` entry that executes a line is waited on as
        Terminal-Bench waits on it: in short turns until the shell's prompt is back, but for no longer than
        its ``max_timeout_sec``."""
        from ltenv.agents.scaffolds import is_key_name
        from ltenv.verify.oracle import _executes

        spec = ctx.task.oracle_spec()
        assert spec is not None and spec.kind == "keystrokes"
        entries = spec.keystrokes
        sent, claimed, waits = _progress(scaffold, messages)
        if claimed:
            return scaffold.render_reply([], complete=True, analysis="The keystroke solution has been typed.")
        if sent:
            prev = entries[sent - 1]
            keys = prev.command + ("\n" if prev.append_enter else "")
            last = str(messages[-1].get("content", "")) if messages else ""
            waited = KEYS_FIRST_WAIT + KEYS_POLL * waits
            if (
                prev.block
                and _executes(keys)
                and not _AT_PROMPT.search(last)
                and waited < prev.max_timeout_sec
            ):
                return scaffold.render_reply(
                    [], timeout=KEYS_POLL, analysis="The blocking entry is still running."
                )
        if sent >= len(entries):
            return scaffold.render_reply([], complete=True, analysis="The keystroke solution has been typed.")
        entry = entries[sent]
        executes = entry.append_enter or _executes(entry.command)
        wait = KEYS_FIRST_WAIT if entry.block and executes else entry.min_timeout_sec
        if entry.append_enter and is_key_name(entry.command):
            commands = [
                {"keystrokes": entry.command, "duration": 0.0},
                {"keystrokes": "Enter", "duration": wait},
            ]
        else:
            keys = entry.command + ("\n" if entry.append_enter else "")
            commands = [{"keystrokes": keys, "duration": wait}]
        # Written out rather than through render_reply, which ends every command with a newline: a key
        # name (C-c, Escape) must reach the terminal as that key.
        reply = {
            "analysis": f"Keystrokes {sent + 1} of {len(entries)} of the reference solution.",
            "plan": "",
            "commands": commands,
            "task_complete": False,
        }
        return json.dumps(reply, indent=2, ensure_ascii=False)

    @classmethod
    def typed_script(cls, script: str) -> str:
        """``script`` as a command line to type into an interactive shell: through a child bash and a
        heredoc, or, when it holds tabs (readline would complete on them), decoded from base64."""
        if "\t" not in script:
            return f"bash <<'{cls.DELIMITER}'\n{script.rstrip()}\n{cls.DELIMITER}"
        import base64

        return f"echo {base64.b64encode(script.encode()).decode()} | base64 -d | bash"

    @staticmethod
    def _stepwise(scaffold, commands: list[str], ctx: EpisodeContext) -> str:
        n = len(commands)
        if ctx.turn >= n:
            return scaffold.render_reply([], complete=True, analysis="The solution has run.")
        last = ctx.turn == n - 1
        timeout = min(STEP_TIMEOUT, float(ctx.task.config.agent.timeout_sec))
        return scaffold.render_reply(
            [commands[ctx.turn]],
            complete=last and scaffold.confirm_completion,  # terminus: claim with the last command
            timeout=timeout,
            analysis=f"Step {ctx.turn + 1} of {n} of the reference solution.",
        )


class NopPolicy(Policy):
    """Declares the task complete without doing anything (a verifier sanity check: it must fail)."""

    name = "nop"

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        return Completion(get_scaffold(ctx.scaffold).render_reply([], complete=True))


class ReplayPolicy(Policy):
    """Replays the assistant messages of recorded trajectories (a JSONL of
    :class:`ltenv.trajectory.Trajectory`), matched by (task, attempt), turn by turn, with their reasoning
    and tool calls (not their token ids: a replay samples nothing). A turn past the recording, or an
    episode not recorded, raises PolicyError."""

    name = "replay"

    def __init__(self, path: str | Path):
        from ltenv.trajectory import TrajectoryStore

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no trajectory file at {self.path}")
        self._replies: dict[tuple[str, int], list[dict[str, Any]]] = {}
        models = set()
        for traj in TrajectoryStore(self.path).read(strict=True):
            self._replies[traj.key] = [m for m in traj.messages if m.get("role") == "assistant"]
            models.add(traj.model)
        self.model = models.pop() if len(models) == 1 else None

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        replies = self._replies.get((ctx.task.name, ctx.attempt))
        if replies is None:
            raise PolicyError(f"{self.path} has no episode of {ctx.task.name} attempt {ctx.attempt}")
        if ctx.turn >= len(replies):
            raise PolicyError(
                f"the recorded episode of {ctx.task.name} attempt {ctx.attempt} has only {len(replies)} turns"
            )
        m = replies[ctx.turn]
        return Completion(
            str(m.get("content") or ""), reasoning=m.get("reasoning_content"), tool_calls=m.get("tool_calls")
        )

    def __repr__(self) -> str:
        return f"ReplayPolicy({str(self.path)!r})"


# -------------------------------------------------------------------------------------- HF
@dataclass
class _Request:
    prompt: str
    future: Future = field(default_factory=Future)


class HFPolicy(RuntimeState, Policy):
    """A local transformers causal LM (``path``), with an optional PEFT adapter. Nothing is downloaded
    (``local_files_only``).

    The prompt is ``tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)``,
    tokenized without added special tokens; it is returned as ``Completion.prompt_text``. Requests from
    concurrent episodes that arrive within ``batch_window`` seconds of each other are generated together
    (left padding), up to ``batch_size`` per ``generate`` call. ``temperature=0`` decodes greedily.
    A prompt longer than the model's context minus ``max_new_tokens`` raises :class:`ContextOverflow`.
    A reply with inline reasoning (``<think>...</think>``) is split into ``reasoning`` and ``text`` (see
    :func:`split_reasoning`; ``split_think=False`` keeps it inline). ``return_token_ids=True`` records the
    prompt and generated token ids of each turn (the end-of-turn token included when generation stopped
    on it) in the message's ``tokens`` record.
    """

    name = "hf"

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        max_new_tokens: int = 1024,
        temperature: float = 0.7,
        top_p: float | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        batch_window: float = 0.02,
        dtype: str | None = None,
        max_context: int | None = None,
        return_token_ids: bool = False,
        split_think: bool = True,
    ):
        self.path = str(path)
        self.return_token_ids = bool(return_token_ids)
        self.split_think = bool(split_think)
        self.adapter = str(adapter) if adapter is not None else None
        self.model = Path(self.path).name + (f"+{Path(self.adapter).name}" if self.adapter else "")
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.device = device
        self.batch_size = max(1, batch_size)
        self.batch_window = batch_window
        self.dtype = dtype
        self.max_context = max_context
        self.batches: list[int] = []
        """Sizes of the ``generate`` calls made so far (observability and tests)."""
        self._init_runtime()

    _runtime_attrs = ("_lock", "_cond", "_queue", "_worker", "_closed", "_tok", "_lm")

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[_Request] = []
        self._worker: threading.Thread | None = None
        self._closed = False
        self._tok: Any = None
        self._lm: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            kwargs: dict[str, Any] = {"local_files_only": True}
            if self.dtype:
                kwargs["dtype"] = getattr(torch, self.dtype)
            lm = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
            if self.adapter:
                from peft import PeftModel

                lm = PeftModel.from_pretrained(lm, self.adapter, local_files_only=True)
            lm.to(self.device).eval()
            self._tok, self._lm = tok, lm
        return self._tok, self._lm

    @property
    def tokenizer(self) -> Any:
        with self._lock:
            return self._load()[0]

    def prompt_text(self, messages: list[dict[str, Any]]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _context_limit(self, lm: Any) -> int | None:
        if self.max_context is not None:
            return self.max_context
        return getattr(lm.config, "max_position_embeddings", None)

    def complete(self, messages: list[dict[str, Any]], ctx: EpisodeContext) -> Completion:
        prompt = self.prompt_text(messages)
        req = _Request(prompt)
        with self._cond:
            if self._closed:
                self._closed = False
            self._queue.append(req)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="hf-policy", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        completion: Completion = req.future.result()
        if self.split_think:
            completion.reasoning, completion.text = split_reasoning(completion.text)
        if self.return_token_ids and completion.tokens is not None:
            from ltenv.trajectory import last_sequence, token_record

            raw = completion.tokens
            completion.tokens = token_record(last_sequence(messages), raw["prompt"], raw["completion"])
        else:
            completion.tokens = None
        return completion

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait(timeout=1.0)
                if self._closed and not self._queue:
                    return
                deadline = time.monotonic() + self.batch_window
                while len(self._queue) < self.batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(timeout=left)
                batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            try:
                results = self._generate([r.prompt for r in batch])
            except BaseException as e:
                for r in batch:
                    r.future.set_exception(e)
            else:
                for r, res in zip(batch, results, strict=True):
                    if isinstance(res, BaseException):
                        r.future.set_exception(res)
                    else:
                        r.future.set_result(res)

    def _generate(self, prompts: list[str]) -> list[Completion | BaseException]:
        import torch

        with self._lock:
            tok, lm = self._load()
        out: list[Completion | BaseException | None] = [None] * len(prompts)
        limit = self._context_limit(lm)
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        todo = []
        for i, seq in enumerate(ids):
            if limit is not None and len(seq) + self.max_new_tokens > limit:
                out[i] = ContextOverflow(
                    f"prompt of {len(seq)} tokens + max_new_tokens {self.max_new_tokens} exceeds the "
                    f"context of {limit} tokens"
                )
            else:
                todo.append(i)
        if todo:
            self.batches.append(len(todo))
            width = max(len(ids[i]) for i in todo)
            pad = tok.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in todo])
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in todo])
            gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": pad}
            if self.temperature and self.temperature > 0:
                gen.update(do_sample=True, temperature=self.temperature)
                if self.top_p is not None:
                    gen["top_p"] = self.top_p
            else:
                gen["do_sample"] = False
            with torch.no_grad():
                seqs = lm.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **gen
                )
            eos = lm.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
            eos_ids.add(tok.eos_token_id)
            for row, i in enumerate(todo):
                new = seqs[row, width:].tolist()
                generated = new
                finish = "length"
                for j, t in enumerate(new):
                    if t in eos_ids:
                        new, generated, finish = new[:j], new[: j + 1], "stop"
                        break
                out[i] = Completion(
                    text=tok.decode(new, skip_special_tokens=True),
                    usage={"prompt_tokens": len(ids[i]), "completion_tokens": len(new) + (finish == "stop")},
                    finish_reason=finish,
                    prompt_text=prompts[i],
                    tokens={"prompt": list(ids[i]), "completion": generated},  # made compact in complete()
                )
        return [o if o is not None else PolicyError("no result") for o in out]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout=30)
        with self._lock:
            self._tok = self._lm = None
            self._worker = None

    def __repr__(self) -> str:
        return f"HFPolicy({self.path!r}, adapter={self.adapter!r})"


# -------------------------------------------------------------------------------------- factory
def make_policy(spec: str, **kwargs: Any) -> Policy:
    """A policy from a spec: ``openai:MODEL``, ``hf:PATH``, ``oracle``, ``nop``, ``replay:FILE``.
    ``kwargs`` go to the policy's constructor (``base_url``, ``temperature``, ``adapter``...)."""
    kind, _, arg = spec.partition(":")
    if kind == "openai":
        if not arg:
            raise ValueError("openai policy needs a model: openai:MODEL")
        return OpenAIPolicy(arg, **kwargs)
    if kind == "hf":
        if not arg:
            raise ValueError("hf policy needs a checkpoint folder: hf:PATH")
        return HFPolicy(arg, **kwargs)
    if kind in ("oracle", "nop") and not arg:
        if kwargs:
            log.debug("the %s policy ignores options %s", kind, sorted(kwargs))
        return OraclePolicy() if kind == "oracle" else NopPolicy()
    if kind == "replay":
        if not arg:
            raise ValueError("replay policy needs a trajectory file: replay:FILE")
        return ReplayPolicy(arg, **kwargs)
    raise ValueError(f"unknown policy spec {spec!r}; use openai:MODEL, hf:PATH, oracle, nop or replay:FILE")


__all__ = [
    "Completion",
    "ContextOverflow",
    "EpisodeContext",
    "HFPolicy",
    "NopPolicy",
    "OpenAIPolicy",
    "OraclePolicy",
    "Policy",
    "PolicyError",
    "ReplayPolicy",
    "make_policy",
    "split_reasoning",
    "wire_messages",
]
