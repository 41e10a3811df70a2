"""Datasets from trajectories: SFT examples, multi-turn preference pairs, and ShareGPT import.

Everything goes through Hugging Face ``datasets``: the functions return :class:`datasets.Dataset` objects
(``push_to_hub``-ready) and, given ``out``, write them as JSON Lines (``.jsonl``/``.json``) or Parquet
(``.parquet``), chosen by the file's suffix.

Only episodes whose reward the verifier stands behind (``verifier_status == "ok"``) are training data: a
``verifier_error`` episode (no valid reward) is never exported, and a ``tampered`` one (the agent interfered
with the verification) is never an SFT example nor a ``chosen`` continuation, only a ``rejected`` one (with
reward 0). Pass an :class:`ExportStats` as ``stats=`` to learn how many episodes were left out and why.

- :func:`export_sft`: successful episodes as ``{"messages": [...]}`` (TRL's conversational language-modeling
  format) plus metadata columns. The messages are the trajectory's own ``messages``, i.e. exactly what the
  model saw and said; ``role`` and ``content`` are kept, and, where the trajectory has them, the assistant
  turns' ``reasoning_content``, ``tool_calls`` and recorded ``tokens`` (and a tool message's
  ``tool_call_id``: :data:`MESSAGE_FIELDS`); trailing non-assistant turns (an observation after the last
  reply) are dropped. So for every assistant turn ``i``,
  ``tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True)`` is the prompt the policy was
  given at that turn. A dataset's message schema has the optional fields only when some row has them, so
  exports of plain trajectories stay ``{role, content}``.
- :func:`export_pairs`: ``{"prompt": [...], "chosen": [...], "rejected": [...]}``: TRL's conversational
  preference format, with ``chosen``/``rejected`` multi-turn continuations (assistant and observation
  turns) of the same prompt (the messages the two episodes share: the instruction, and the assistant turns
  they agree on when they branch at a later turn, counted in ``branch_turn``).
- :func:`import_sharegpt`: the released LiteCoder-Terminal-SFT shape ``conversations: [{from, value}]``
  into ``{"messages": [...]}``.

Metadata column names avoid the keys TRL's trainers interpret (``prompt``, ``completion``, ``text``,
``tools``, ``images``, ``chat_template_kwargs``...); ``SFTTrainer``/``DPOTrainer`` drop them after
tokenization (``remove_unused_columns``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltenv.trajectory import Trajectory, TrajectoryStore

if TYPE_CHECKING:
    from datasets import Dataset, Features

log = logging.getLogger(__name__)

TRAJECTORIES_FILE = "trajectories.jsonl"

#: Terminations that are not the model's doing: such episodes are never exported (not even as rejected).
#: ``resource_limit`` is not one of them: the agent exhausted its own sandbox (a fork bomb, a memory hog), so
#: like a timeout it is the model's outcome (reward 0, a rejected example for preference pairs).
INFRA_TERMINATIONS: tuple[str, ...] = ("sandbox_error", "policy_error")

TrajectorySource = Trajectory | dict[str, Any] | str | Path


@dataclass
class ExportStats:
    """What an export read and left out; pass one as ``stats=`` to an export and it is filled in."""

    episodes: int = 0
    """Episodes read."""
    excluded: Counter[str] = field(default_factory=Counter)
    """Episodes never used, by reason: ``tampered`` or ``verifier_error`` (no reward the verifier stands
    behind; for preference pairs a tampered episode is only kept out of ``chosen``, see
    :attr:`rejected_only`) or an infrastructure termination (``sandbox_error``, ``policy_error``). Episodes
    outside ``domains`` / ``max_turns`` are not counted."""
    rejected_only: Counter[str] = field(default_factory=Counter)
    """Preference pairs: episodes that may only be ``rejected``, by reason (``tampered``, with reward 0)."""

    def summary(self) -> str:
        """E.g. ``excluded 3 episode(s): 2 tampered, 1 verifier_error; 1 tampered as rejected only`` (empty
        when nothing was left out)."""
        parts = []
        if self.excluded:
            detail = ", ".join(f"{n} {why}" for why, n in sorted(self.excluded.items()))
            parts.append(f"excluded {self.excluded.total()} episode(s): {detail}")
        if self.rejected_only:
            parts.append(
                ", ".join(f"{n} {why} as rejected only" for why, n in sorted(self.rejected_only.items()))
            )
        return "; ".join(parts)

    def _warn(self, what: str) -> None:
        untrusted = {k: v for k, v in self.excluded.items() if k in ("tampered", "verifier_error")}
        if untrusted or self.rejected_only:
            log.warning("%s: %s", what, self.summary())


# ---------------------------------------------------------------------------------------------- reading


def load_trajectories(
    sources: TrajectorySource | Iterable[TrajectorySource], *, strict: bool = False
) -> list[Trajectory]:
    """Trajectories from any mix of :class:`Trajectory` objects, dicts, trajectory JSONL files and run
    folders (``DIR/trajectories.jsonl``). A record without ``run`` gets its file's run folder name.

    Raises ``FileNotFoundError`` for a path that is neither a JSONL file nor a run folder.
    """
    if isinstance(sources, Trajectory | dict | str | Path):
        sources = [sources]
    out: list[Trajectory] = []
    for src in sources:
        if isinstance(src, Trajectory):
            out.append(src)
        elif isinstance(src, dict):
            out.append(Trajectory.model_validate(src))
        else:
            path = Path(src)
            if path.is_dir():
                path = path / TRAJECTORIES_FILE
            if not path.is_file():
                raise FileNotFoundError(
                    f"{src}: no such trajectory file or run folder (with {TRAJECTORIES_FILE})"
                )
            default_run = path.parent.name if path.name == TRAJECTORIES_FILE else path.stem
            for traj in TrajectoryStore(path).read(strict=strict):
                if not traj.run:
                    traj.run = default_run
                out.append(traj)
    return out


MESSAGE_FIELDS: tuple[str, ...] = ("reasoning_content", "tool_calls", "tool_call_id", "tokens")
"""Message fields an export keeps besides ``role`` and ``content`` (see :mod:`ltenv.trajectory`)."""


def clean_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``role`` and ``content`` of each message, unchanged, plus whichever of :data:`MESSAGE_FIELDS` it
    has (not ``None``). ``content`` must be a string (``None`` reads as ``""`` on an assistant message
    with tool calls); ``ValueError`` names the message and field otherwise."""
    cleaned = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if content is None and role == "assistant" and m.get("tool_calls"):
            content = ""
        if not isinstance(role, str) or not isinstance(content, str):
            raise ValueError(f"message {i}: needs string 'role' and 'content', got {m!r:.200}")
        msg: dict[str, Any] = {"role": role, "content": content}
        for key in MESSAGE_FIELDS:
            value = m.get(key)
            if value is None:
                continue
            if key in ("reasoning_content", "tool_call_id") and not isinstance(value, str):
                raise ValueError(f"message {i}: {key!r} must be a string, got {type(value).__name__}")
            if key == "tool_calls":
                value = _clean_tool_calls(value, i)
            if key == "tokens":
                value = _clean_tokens(value, i)
            msg[key] = value
        cleaned.append(msg)
    return cleaned


def _clean_tool_calls(calls: Any, i: int) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise ValueError(f"message {i}: 'tool_calls' must be a list, got {type(calls).__name__}")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ValueError(f"message {i}: tool_calls[{j}] needs function.name, got {call!r:.200}")
        args = fn.get("arguments", "")
        if not isinstance(args, str):  # stored as JSON text, as the OpenAI API sends it
            args = json.dumps(args, ensure_ascii=False)
        out.append(
            {
                "id": str(call.get("id") or ""),
                "type": str(call.get("type") or "function"),
                "function": {"name": fn["name"], "arguments": args},
            }
        )
    return out


def _clean_tokens(rec: Any, i: int) -> dict[str, Any]:
    from ltenv.trajectory import TOKEN_FIELDS

    if not isinstance(rec, dict) or any(rec.get(k) is None for k in TOKEN_FIELDS[:3]):
        raise ValueError(f"message {i}: 'tokens' needs {', '.join(TOKEN_FIELDS[:3])}, got {rec!r:.200}")
    return {k: rec.get(k) for k in TOKEN_FIELDS}


def _trim_to_last_assistant(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    return messages[: last + 1]


def _split_prompt(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(messages before the first assistant turn, the rest)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    return messages[:first], messages[first:]


def _same_turn(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two messages say the same (recorded token records and log-probs aside: two samples of the
    same text differ there)."""
    return {k: v for k, v in a.items() if k != "tokens"} == {k: v for k, v in b.items() if k != "tokens"}


def branch_point(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    """Where two conversations of the same task part: the index of the first message of their
    continuations, the longest shared prefix of messages that ends right before an assistant turn in both.

    The shared prefix holds the instruction and every assistant turn (with its observation) the two agree
    on; ``a[:i]`` (== ``b[:i]``) is a preference pair's prompt and ``a[i:]``/``b[i:]`` its continuations,
    which start with an assistant turn. When the same reply met different observations (a non-deterministic
    environment), that reply starts the continuations; neither continuation is ever empty. Returns 0 when
    no such prefix exists (the messages before the first assistant turn differ).
    """
    n = 0
    while n < min(len(a), len(b)) and _same_turn(a[n], b[n]):
        n += 1
    for i in range(min(n, len(a) - 1, len(b) - 1), -1, -1):
        if a[i].get("role") == "assistant" and b[i].get("role") == "assistant":
            return i
    return 0


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _message_feature(fields: Sequence[str] = ()) -> dict[str, Any]:
    from datasets import List, Value

    optional: dict[str, Any] = {
        "reasoning_content": Value("string"),
        "tool_calls": List(
            {
                "id": Value("string"),
                "type": Value("string"),
                "function": {"name": Value("string"), "arguments": Value("string")},
            }
        ),
        "tool_call_id": Value("string"),
        "tokens": {
            "prompt_offset": Value("int64"),
            "prompt_ids": List(Value("int64")),
            "completion_ids": List(Value("int64")),
            "logprobs": List(Value("float64")),
        },
    }
    message = {"role": Value("string"), "content": Value("string")}
    message.update({k: optional[k] for k in MESSAGE_FIELDS if k in fields})
    return message


@cache
def features(kind: str, message_fields: tuple[str, ...] = ()) -> Features:
    """The ``datasets`` schema of an export: ``"sft"``, ``"pairs"`` or ``"sharegpt"``; messages have
    ``role``, ``content`` and the optional ``message_fields`` (of :data:`MESSAGE_FIELDS`)."""
    from datasets import Features, List, Value

    messages = List(_message_feature(message_fields))

    sft = Features(
        {
            "messages": messages,
            "task": Value("string"),
            "domain": Value("string"),
            "difficulty": Value("string"),
            "attempt": Value("int64"),
            "reward": Value("float64"),
            "run": Value("string"),
            "policy": Value("string"),
            "model": Value("string"),
            "scaffold": Value("string"),
            "turns": Value("int64"),
        }
    )

    pairs = Features(
        {
            "prompt": messages,
            "chosen": messages,
            "rejected": messages,
            "task": Value("string"),
            "domain": Value("string"),
            "difficulty": Value("string"),
            "chosen_reward": Value("float64"),
            "rejected_reward": Value("float64"),
            "margin": Value("float64"),
            "chosen_run": Value("string"),
            "rejected_run": Value("string"),
            "chosen_attempt": Value("int64"),
            "rejected_attempt": Value("int64"),
            "chosen_turns": Value("int64"),
            "rejected_turns": Value("int64"),
            "branch_turn": Value("int64"),
        }
    )

    sharegpt = Features(
        {
            "messages": messages,
            "source_row": Value("int64"),
            "terminus": Value("bool"),
        }
    )
    return {"sft": sft, "pairs": pairs, "sharegpt": sharegpt}[kind]


# ---------------------------------------------------------------------------------------------- writing


def write_dataset(ds: Dataset, out: str | Path) -> Path:
    """Write ``ds`` as JSON Lines (``.jsonl``, ``.json``) or Parquet (``.parquet``) by ``out``'s suffix."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise ValueError(
            f"{path}: unsupported dataset file type {suffix or '(none)'!r}: use .jsonl or .parquet"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        ds.to_parquet(str(path))
    else:
        ds.to_json(str(path), lines=True, force_ascii=False)
    return path


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by :func:`write_dataset` (JSON Lines or Parquet, by suffix)."""
    from datasets import Dataset

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return Dataset.from_parquet(str(p))
    if suffix in (".jsonl", ".json"):
        return Dataset.from_json(str(p))
    raise ValueError(f"{p}: unsupported dataset file type {suffix or '(none)'!r}: use .jsonl or .parquet")


def align_messages(parts: Sequence[Dataset], columns: Sequence[str] = ("messages",)) -> list[Dataset]:
    """``parts`` with one message schema in ``columns`` (``role``, ``content`` and the union of the optional
    :data:`MESSAGE_FIELDS` the parts have), so that ``datasets.concatenate_datasets`` accepts files written
    from plain and from reasoning / token-id trajectories together."""
    from datasets import Features, List

    fields: set[str] = set()
    for ds in parts:
        for column in columns:
            feature = ds.features.get(column)
            if isinstance(feature, List) and isinstance(feature.feature, dict):
                fields |= set(feature.feature) & set(MESSAGE_FIELDS)
    message = List(_message_feature(tuple(sorted(fields))))
    keys = ["role", "content", *(k for k in MESSAGE_FIELDS if k in fields)]
    out = []
    for ds in parts:
        present = [c for c in columns if c in ds.column_names]
        target = Features({**ds.features, **dict.fromkeys(present, message)})
        if ds.features == target:
            out.append(ds)
            continue

        def fill(row: dict[str, Any], present: list[str] = present) -> dict[str, Any]:
            return {c: [{k: m.get(k) for k in keys} for m in row[c] or []] for c in present}

        out.append(ds.map(fill, features=target, desc="aligning message fields"))
    return out


def _dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """``rows`` as a Dataset of ``features``, its message columns widened by the optional message fields
    (:data:`MESSAGE_FIELDS`) that some row's messages have."""
    from datasets import Dataset, Features, List

    present = {
        key
        for row in rows
        for value in row.values()
        if isinstance(value, list)
        for m in value
        if isinstance(m, dict)
        for key in m
        if key in MESSAGE_FIELDS
    }
    if present:
        message = List(_message_feature(tuple(sorted(present))))
        features = Features(
            {
                k: message
                if isinstance(v, List) and isinstance(v.feature, dict) and "role" in v.feature
                else v
                for k, v in features.items()
            }
        )
    if not rows:
        return Dataset.from_dict({k: [] for k in features}, features=features)
    return Dataset.from_list(rows, features=features)


# ---------------------------------------------------------------------------------------------- SFT


def _selected(traj: Trajectory, domains: set[str] | None, max_turns: int | None) -> bool:
    if domains is not None and traj.domain not in domains:
        return False
    return not (max_turns is not None and traj.turns > max_turns)


def _unusable(traj: Trajectory, exclude: set[str]) -> str | None:
    """Why an episode is no training data: its verifier status (``tampered``, ``verifier_error``) or an
    excluded termination; None if it is usable."""
    if not traj.verified:
        return traj.verifier_status
    if traj.termination in exclude:
        return traj.termination
    return None


def sft_examples(
    trajectories: TrajectorySource | Iterable[TrajectorySource],
    *,
    min_reward: float = 1.0,
    domains: Iterable[str] | None = None,
    max_turns: int | None = None,
    dedupe: bool = True,
    exclude_terminations: Iterable[str] = INFRA_TERMINATIONS,
    stats: ExportStats | None = None,
) -> list[dict[str, Any]]:
    """The rows :func:`export_sft` builds, as plain dicts."""
    wanted = set(domains) if domains is not None else None
    exclude = set(exclude_terminations)
    warn = stats is None  # a caller who passes stats reports them itself
    stats = stats if stats is not None else ExportStats()
    seen: set[str] = set()
    rows = []
    for traj in load_trajectories(trajectories):
        stats.episodes += 1
        if not _selected(traj, wanted, max_turns):
            continue
        if (why := _unusable(traj, exclude)) is not None:
            stats.excluded[why] += 1
            continue
        if traj.reward < min_reward:
            continue
        messages = _trim_to_last_assistant(clean_messages(traj.messages))
        if not any(m["role"] == "assistant" for m in messages):
            continue
        if dedupe:
            h = _digest(messages)
            if h in seen:
                continue
            seen.add(h)
        rows.append(
            {
                "messages": messages,
                "task": traj.task,
                "domain": traj.domain,
                "difficulty": traj.difficulty,
                "attempt": traj.attempt,
                "reward": float(traj.reward),
                "run": traj.run,
                "policy": traj.policy,
                "model": traj.model,
                "scaffold": traj.scaffold,
                "turns": sum(m["role"] == "assistant" for m in messages),
            }
        )
    if warn:
        stats._warn("SFT export")
    return rows


def export_sft(
    trajectories: TrajectorySource | Iterable[TrajectorySource],
    out: str | Path | None = None,
    *,
    min_reward: float = 1.0,
    domains: Iterable[str] | None = None,
    max_turns: int | None = None,
    dedupe: bool = True,
    exclude_terminations: Iterable[str] = INFRA_TERMINATIONS,
    stats: ExportStats | None = None,
) -> Dataset:
    """SFT examples from successful episodes: ``reward >= min_reward``, optionally only ``domains`` and at
    most ``max_turns`` assistant turns; ``dedupe`` drops episodes whose messages repeat an earlier one.
    Episodes ended by infrastructure (``exclude_terminations``), episodes whose verifier reported
    ``tampered`` or ``verifier_error`` (whatever reward they record) and episodes without a reply are
    skipped; ``stats`` (an :class:`ExportStats`) counts the exclusions.

    Columns: ``messages`` (list of ``{role, content}``, ending with the last assistant turn), ``task``,
    ``domain``, ``difficulty``, ``attempt``, ``reward``, ``run``, ``policy``, ``model``, ``scaffold``,
    ``turns``. Written to ``out`` (``.jsonl``/``.parquet``) if given.
    """
    ds = _dataset(
        sft_examples(
            trajectories,
            min_reward=min_reward,
            domains=domains,
            max_turns=max_turns,
            dedupe=dedupe,
            exclude_terminations=exclude_terminations,
            stats=stats,
        ),
        features("sft"),
    )
    if out is not None:
        write_dataset(ds, out)
    return ds


# ---------------------------------------------------------------------------------------------- pairs


@dataclass
class _Candidate:
    traj: Trajectory
    prompt: list[dict[str, str]]
    continuation: list[dict[str, str]]
    index: int
    reward: float
    """The reward pairs are made by: 0 for a tampered episode, whatever its record says."""
    may_be_chosen: bool


def _branch(a: _Candidate, b: _Candidate) -> tuple[list[dict], list[dict], list[dict], int]:
    """``(prompt, chosen, rejected, branch_turn)`` of a pair: the prompt holds the assistant turns both
    episodes share (see :func:`branch_point`), ``branch_turn`` is how many."""
    full_a, full_b = a.prompt + a.continuation, b.prompt + b.continuation
    i = branch_point(full_a, full_b) or len(a.prompt)
    k = sum(m["role"] == "assistant" for m in full_a[:i])
    return full_a[:i], full_a[i:], full_b[i:], k


def preference_pairs(
    trajectories: TrajectorySource | Iterable[TrajectorySource],
    *,
    min_margin: float = 0.0,
    max_pairs_per_task: int | None = None,
    seed: int = 0,
    domains: Iterable[str] | None = None,
    max_turns: int | None = None,
    dedupe: bool = True,
    exclude_terminations: Iterable[str] = INFRA_TERMINATIONS,
    stats: ExportStats | None = None,
    branch: bool = False,
) -> list[dict[str, Any]]:
    """The rows :func:`export_pairs` builds, as plain dicts."""
    wanted = set(domains) if domains is not None else None
    exclude = set(exclude_terminations)
    warn = stats is None  # a caller who passes stats reports them itself
    stats = stats if stats is not None else ExportStats()
    groups: dict[tuple[str, ...], list[_Candidate]] = {}
    for i, traj in enumerate(load_trajectories(trajectories)):
        stats.episodes += 1
        if not _selected(traj, wanted, max_turns):
            continue
        why = _unusable(traj, exclude)
        # A tampered episode is a fine rejected example (a cheat, reward 0), never a chosen one; an episode
        # whose verifier failed has no reward to rank by, and infrastructure failures are not the model's.
        rejected_only = why == "tampered" and traj.termination not in exclude
        if why is not None and not rejected_only:
            stats.excluded[why] += 1
            continue
        prompt, rest = _split_prompt(clean_messages(traj.messages))
        rest = _trim_to_last_assistant(rest)
        if not prompt or not rest:
            continue
        if rejected_only:
            stats.rejected_only[why] += 1
        cand = _Candidate(
            traj,
            prompt,
            rest,
            i,
            reward=0.0 if rejected_only else float(traj.reward),
            may_be_chosen=not rejected_only,
        )
        # branching pairs replay the same environment instance: the same seed as well as the same prompt
        key = (traj.task, _digest(prompt), str(traj.seed) if branch else "")
        groups.setdefault(key, []).append(cand)

    by_task: dict[str, list[tuple[_Candidate, _Candidate]]] = {}
    for (task, *_), cands in sorted(groups.items()):
        cands.sort(key=lambda c: (-c.reward, c.traj.run, c.traj.attempt, c.index))
        for a in cands:
            if not a.may_be_chosen:
                continue
            for b in cands:
                margin = a.reward - b.reward
                if margin > 0 and margin >= min_margin:
                    if branch and _branch(a, b)[3] == 0:
                        continue  # not a branching pair: they part at the first turn
                    by_task.setdefault(task, []).append((a, b))

    rng = random.Random(seed)
    rows = []
    seen: set[str] = set()
    for task in sorted(by_task):
        pairs = by_task[task]
        if dedupe:
            unique = []
            for a, b in pairs:
                h = _digest(list(_branch(a, b)[:3]))
                if h not in seen:
                    seen.add(h)
                    unique.append((a, b))
            pairs = unique
        if max_pairs_per_task is not None and len(pairs) > max_pairs_per_task:
            keep = sorted(rng.sample(range(len(pairs)), max_pairs_per_task))
            pairs = [pairs[j] for j in keep]
        for a, b in pairs:
            prompt, chosen, rejected, k = _branch(a, b)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "task": task,
                    "domain": a.traj.domain,
                    "difficulty": a.traj.difficulty,
                    "chosen_reward": a.reward,
                    "rejected_reward": b.reward,
                    "margin": a.reward - b.reward,
                    "chosen_run": a.traj.run,
                    "rejected_run": b.traj.run,
                    "chosen_attempt": a.traj.attempt,
                    "rejected_attempt": b.traj.attempt,
                    "chosen_turns": sum(m["role"] == "assistant" for m in chosen),
                    "rejected_turns": sum(m["role"] == "assistant" for m in rejected),
                    "branch_turn": k,
                }
            )
    if warn:
        stats._warn("preference export")
    return rows


def export_pairs(
    trajectories: TrajectorySource | Iterable[TrajectorySource],
    out: str | Path | None = None,
    *,
    min_margin: float = 0.0,
    max_pairs_per_task: int | None = None,
    seed: int = 0,
    domains: Iterable[str] | None = None,
    max_turns: int | None = None,
    dedupe: bool = True,
    exclude_terminations: Iterable[str] = INFRA_TERMINATIONS,
    stats: ExportStats | None = None,
    branch: bool = False,
) -> Dataset:
    """Multi-turn preference pairs. Episodes are grouped by task and prompt (the messages before the first
    assistant turn: system + first user message); within a group every two episodes with different
    rewards make a pair, the higher reward ``chosen`` (ties dropped), if the reward difference is at least
    ``min_margin``. ``max_pairs_per_task`` keeps a random subset (``random.Random(seed)``) of each task's
    pairs; the result is deterministic given the input order and ``seed``.

    A pair's ``prompt`` is everything the two episodes share (:func:`branch_point`): the instruction and
    every assistant turn, with its observation, on which they agree; ``branch_turn`` counts those turns
    (0 when they part at the first reply) and ``chosen``/``rejected`` continue from there. DMPO trains the
    continuations only, its turn weights starting at the branch turn. ``branch=True`` keeps only branching
    pairs (``branch_turn >= 1``: episodes of the same task, seed and prompt that agree on their first
    turns and part later, e.g. rollouts resumed from a replayed prefix), the most informative pairs.

    Episodes ended by infrastructure (``exclude_terminations``) and episodes whose verifier reported
    ``verifier_error`` are left out; a ``tampered`` episode may only be ``rejected``, with reward 0 whatever
    its record says. ``stats`` (an :class:`ExportStats`) counts both.

    Columns: ``prompt``, ``chosen``, ``rejected`` (lists of ``{role, content}``; ``chosen``/``rejected``
    start with an assistant turn and end with the episode's last assistant turn), ``task``, ``domain``,
    ``difficulty``, ``chosen_reward``, ``rejected_reward``, ``margin``, ``chosen_run``, ``rejected_run``,
    ``chosen_attempt``, ``rejected_attempt``, ``chosen_turns``, ``rejected_turns`` (assistant turns of
    each continuation), ``branch_turn``.
    """
    ds = _dataset(
        preference_pairs(
            trajectories,
            min_margin=min_margin,
            max_pairs_per_task=max_pairs_per_task,
            seed=seed,
            domains=domains,
            max_turns=max_turns,
            dedupe=dedupe,
            exclude_terminations=exclude_terminations,
            stats=stats,
            branch=branch,
        ),
        features("pairs"),
    )
    if out is not None:
        write_dataset(ds, out)
    return ds


# ---------------------------------------------------------------------------------------------- ShareGPT

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


class DataFormatError(ValueError):
    """A malformed input row; the message names the file, the row and the field."""

    def __init__(self, path: Path | str, row: int, field: str, problem: str):
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        super().__init__(f"{path}: row {row}: {field}: {problem}")


def is_terminus_reply(text: str) -> bool:
    """Whether an assistant reply is a Terminus-2 JSON object (``analysis``/``plan``/``commands``/
    ``task_complete``), allowing a code fence or text around the object as Terminus-2's parser does."""
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`").removeprefix("json").strip()
    start, end = s.find("{"), s.rfind("}")
    if start < 0 or end < start:
        return False
    try:
        obj = json.loads(s[start : end + 1])
    except ValueError:
        return False
    if not isinstance(obj, dict):
        return False
    commands = obj.get("commands")
    return (isinstance(commands, list) or "task_complete" in obj) and bool(
        {"analysis", "plan", "commands"} & obj.keys()
    )


def sharegpt_to_messages(record: Any, *, path: str | Path = "<input>", row: int = 0) -> list[dict[str, str]]:
    """``{"conversations": [{"from", "value"}...]}`` to chat messages; :class:`DataFormatError` names the
    field when the record is malformed."""
    if not isinstance(record, dict):
        raise DataFormatError(path, row, "(row)", f"expected a JSON object, got {type(record).__name__}")
    conv = record.get("conversations")
    if conv is None:
        raise DataFormatError(path, row, "conversations", "missing")
    if not isinstance(conv, list) or not conv:
        raise DataFormatError(path, row, "conversations", "expected a non-empty list of {from, value}")
    messages = []
    for i, turn in enumerate(conv):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise DataFormatError(path, row, where, f"expected an object, got {type(turn).__name__}")
        src = turn.get("from")
        if src is None:
            raise DataFormatError(path, row, f"{where}.from", "missing")
        if not isinstance(src, str) or src.lower() not in SHAREGPT_ROLES:
            raise DataFormatError(
                path, row, f"{where}.from", f"unknown speaker {src!r} (expected human, gpt or system)"
            )
        value = turn.get("value")
        if value is None:
            raise DataFormatError(path, row, f"{where}.value", "missing")
        if not isinstance(value, str):
            raise DataFormatError(
                path, row, f"{where}.value", f"expected a string, got {type(value).__name__}"
            )
        role = SHAREGPT_ROLES[src.lower()]
        if role == "system" and i != 0:
            raise DataFormatError(path, row, f"{where}.from", "a system turn is only allowed first")
        messages.append({"role": role, "content": value})
    if not any(m["role"] == "assistant" for m in messages):
        raise DataFormatError(path, row, "conversations", "no gpt (assistant) turn")
    first = next(m for m in messages if m["role"] != "system")
    if first["role"] != "user":
        raise DataFormatError(path, row, "conversations", "the first non-system turn must be from human")
    return messages


def _read_records(path: Path) -> Iterable[tuple[int, Any, str | None]]:
    """(row number, record or None, parse error) for each row: JSONL lines (1-based line numbers), a JSON
    array (0-based index) or Parquet rows (0-based index)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, rec in enumerate(pq.read_table(path).to_pylist()):
            yield i, rec, None
        return
    if suffix not in (".jsonl", ".json"):
        raise ValueError(
            f"{path}: unsupported file type {suffix or '(none)'!r}: use .jsonl, .json or .parquet"
        )
    with open(path, encoding="utf-8") as f:
        head = f.read(1024).lstrip()
        f.seek(0)
        if head.startswith("["):
            try:
                data = json.load(f)
            except ValueError as e:
                raise DataFormatError(path, 0, "(file)", f"not valid JSON: {e}") from None
            for i, rec in enumerate(data):
                yield i, rec, None
            return
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except ValueError as e:
                yield lineno, None, f"not valid JSON: {e}"


def import_sharegpt(
    path: str | Path,
    out: str | Path | None = None,
    *,
    strict: bool = False,
    errors: list[DataFormatError] | None = None,
) -> Dataset:
    """Convert a ShareGPT file (JSONL, a JSON array, or Parquet; the released LiteCoder-Terminal-SFT shape
    ``conversations: [{"from": "human"|"gpt"|"system", "value": str}]``) to ``{"messages": [...]}``.

    Malformed rows raise :class:`DataFormatError` (naming file, row and field) with ``strict``; otherwise
    they are skipped, logged, and appended to ``errors`` if a list is given. Rows are JSONL line numbers
    (1-based) or array/Parquet indexes (0-based). Columns: ``messages``, ``source_row``, ``terminus``
    (every assistant reply is a Terminus-2 JSON object).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    rows = []
    for row, rec, parse_error in _read_records(p):
        try:
            if parse_error is not None:
                raise DataFormatError(p, row, "(row)", parse_error)
            messages = sharegpt_to_messages(rec, path=p, row=row)
        except DataFormatError as e:
            if strict:
                raise
            log.warning("skipped: %s", e)
            if errors is not None:
                errors.append(e)
            continue
        terminus = all(is_terminus_reply(m["content"]) for m in messages if m["role"] == "assistant")
        rows.append({"messages": messages, "source_row": row, "terminus": terminus})
    ds = _dataset(rows, features("sharegpt"))
    if out is not None:
        write_dataset(ds, out)
    return ds
