"""Fitting long agent conversations into ``max_length``: the truncation policy of SFT and DMPO.

A 25-35-turn terminal trajectory easily exceeds a training context: its observations (command output) are
most of its tokens. Cutting it at ``max_length`` keeps the earliest turns and drops the latest, which are
where the task is solved or failed. The default policy, ``elide_middle``, keeps every assistant turn
where it can and gives up context instead, in this order:

1. **Shorten middle observations**, oldest first: a user/tool message between assistant turns keeps its
   first and last lines around an explicit marker ``[... N lines elided ...]`` (``[... N characters
   elided ...]`` for an observation without enough line breaks), down to at most
   :data:`MIN_OBSERVATION_TOKENS` tokens each. Never shortened: the messages before the first assistant
   turn (system prompt and task instruction), the observation just before the last assistant turn, and
   assistant turns themselves (they are the trained tokens).
2. **Drop whole middle turns**, oldest first: an assistant turn with its observation. The observation
   just before the first kept turn stays (the kept turn answers it), prefixed with ``[... N earlier turns
   elided ...]``. The last assistant turn is never dropped.
3. **Skip** the conversation (SFT) or pair (DMPO) when even the instruction plus the last turn does not fit
   (:class:`DoesNotFit`, counted by the trainers).

Trade-off: an elided observation changes the context the later turns are trained in. The policy saw the
whole output when it chose its next action; training sees a shortened one, so a turn may be trained to
act on information that is now behind a marker. Elision keeps each observation's head and tail (the
command echo, the error at the end) and only the oldest observations lose anything when the deficit is
small, which is the trade most long-context agent setups make at inference too; a researcher who prefers
exact contexts uses ``drop_latest`` (the earliest turns that fit, exact, the latest lost) or ``error``.
An elided conversation no longer matches its recorded token ids (:mod:`ltenv.train.tokens`), so its
``tokens`` records are removed and it is re-tokenized.

Preference pairs (DMPO) are fitted together: the shared prompt (which holds assistant turns when the
pair branches at a later turn) is shortened and its turns dropped identically on both sides, before each
side's own continuation, so the prompt tokens still agree; each side then fits its own continuation.

Policies (``truncation`` in ``SFTDataArguments`` and ``DMPOConfig``):

- ``elide_middle`` (default): the steps above.
- ``drop_latest``: the earliest whole turns that fit are kept, the latest dropped (the behaviour before
  this policy existed; :func:`ltenv.train.build_chat`'s ``max_length``).
- ``error``: a conversation longer than ``max_length`` stops the run with an error naming its row.

Example:
    >>> fit = fit_conversations([messages], 4096, measure=lambda m: len(build_chat(tok, m)),
    ...                         count_tokens=token_counter(tok))                       # doctest: +SKIP
    >>> fit.conversations[0], fit.shortened_observations, fit.dropped_turns           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltenv.train.chat import ChatBuildError

__all__ = [
    "MIN_OBSERVATION_TOKENS",
    "TRUNCATION_POLICIES",
    "DoesNotFit",
    "Truncation",
    "check_policy",
    "elide_text",
    "fit_conversations",
    "token_counter",
]

TRUNCATION_POLICIES = ("elide_middle", "drop_latest", "error")
#: An observation is shortened to no fewer than this many tokens (its head and tail around the marker).
MIN_OBSERVATION_TOKENS = 64
OBSERVATION_ROLES = ("user", "tool")
_ROUNDS = 6  # measure-and-shorten rounds before turns are dropped (each round re-renders the conversation)
_MESSAGE_OVERHEAD = (
    4  # template tokens around a message's content (ChatML: <|im_start|>role\n ... <|im_end|>\n)
)


class DoesNotFit(ChatBuildError):
    """Even the instruction plus the last assistant turn is longer than ``max_length``."""


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`TRUNCATION_POLICIES`, else ``ValueError``."""
    if policy not in TRUNCATION_POLICIES:
        raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {policy!r}")
    return policy


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """``text -> number of tokens`` with ``tokenizer`` (no special tokens added)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    return count


@dataclass
class Truncation:
    """The fitted conversations and what it took.

    ``kept_turns[i]`` lists, for each assistant message left in ``conversations[i]``, its index among the
    original conversation's assistant turns (so a trainer can keep each turn's position ``t``). Counts are
    per group, a shared prompt's observations and turns counted once.
    """

    conversations: list[list[dict[str, Any]]]
    kept_turns: list[list[int]]
    shortened_observations: int = 0
    elided_tokens: int = 0
    """Tokens removed from shortened observations (counted on each message's own text)."""
    dropped_turns: int = 0
    changed: bool = False


def elide_text(text: str, keep_tokens: int, count_tokens: Callable[[str], int]) -> str:
    """``text`` shortened to about ``keep_tokens`` tokens: its first and last lines around
    ``[... N lines elided ...]``, or its first and last characters around ``[... N characters elided ...]``
    when whole lines cannot make it (one long line). Returns ``text`` unchanged if it already fits."""
    if count_tokens(text) <= keep_tokens:
        return text
    lines = text.splitlines(keepends=True)
    if len(lines) >= 3:
        marker_cost = count_tokens(f"[... {len(lines)} lines elided ...]\n")
        budget = max(keep_tokens - marker_cost, 0)
        head_budget, tail_budget = budget // 2, budget - budget // 2
        costs = [count_tokens(line) for line in lines]
        head = used = 0
        while head < len(lines) and used + costs[head] <= head_budget:
            used += costs[head]
            head += 1
        tail = used = 0
        while tail < len(lines) - head and used + costs[-1 - tail] <= tail_budget:
            used += costs[-1 - tail]
            tail += 1
        n = len(lines) - head - tail
        if n > 0 and head + tail > 0:
            first = "".join(lines[:head])
            if first and not first.endswith(("\n", "\r")):
                first += "\n"
            return f"{first}[... {n} lines elided ...]\n{''.join(lines[len(lines) - tail :])}"
    # characters: as many as the text's own characters-per-token ratio allows
    ratio = len(text) / max(count_tokens(text), 1)
    marker_cost = count_tokens(f"\n[... {len(text)} characters elided ...]\n")
    keep = max(int(max(keep_tokens - marker_cost, 2) * ratio), 2)
    if keep >= len(text):
        return text
    a = keep // 2
    b = keep - a
    return f"{text[:a]}\n[... {len(text) - keep} characters elided ...]\n{text[len(text) - b :]}"


@dataclass
class _Conv:
    orig: list[dict[str, Any]]
    positions: list[int]
    text: dict[int, str] = field(default_factory=dict)  # message index -> shortened content
    cost: dict[int, int] = field(default_factory=dict)  # message index -> its content's tokens now
    dropped: int = 0

    def eligible(self) -> set[int]:
        """Observations that may be shortened: after the first assistant turn, before the final observation
        (the one the last assistant turn answers)."""
        a = self.positions
        last_block = a[-2] + 1 if len(a) >= 2 else a[-1]
        return {
            j
            for j in range(a[0] + 1, last_block)
            if self.orig[j].get("role") in OBSERVATION_ROLES and isinstance(self.orig[j].get("content"), str)
        }

    def render(self) -> list[dict[str, Any]]:
        msgs = [
            {**m, "content": self.text[j]} if j in self.text else dict(m) for j, m in enumerate(self.orig)
        ]
        m = self.dropped
        if m:
            a = self.positions
            block = msgs[a[m - 1] + 1 : a[m]]
            marker = f"[... {m} earlier turn{'s' if m > 1 else ''} elided ...]"
            if block:
                block[0] = {**block[0], "content": f"{marker}\n{block[0].get('content') or ''}"}
            else:
                block = [{"role": "user", "content": marker}]
            msgs = msgs[: a[0]] + block + msgs[a[m] :]
        if self.text or m:  # recorded token ids describe the original text, not this one
            msgs = [{k: v for k, v in x.items() if k != "tokens"} for x in msgs]
        return msgs

    def kept(self) -> list[int]:
        return list(range(self.dropped, len(self.positions)))


def fit_conversations(
    conversations: Sequence[list[dict[str, Any]]],
    max_length: int,
    *,
    measure: Callable[[list[dict[str, Any]]], int],
    count_tokens: Callable[[str], int],
    shared: int = 0,
    min_observation_tokens: int = MIN_OBSERVATION_TOKENS,
) -> Truncation:
    """Fit each conversation into ``max_length`` tokens by the ``elide_middle`` policy (module docstring).

    ``measure(messages)`` is the token length the trainer will build (e.g. ``len(build_chat(...))``);
    ``count_tokens(text)`` counts a message text's tokens. The first ``shared`` messages are the same in
    every conversation (a preference pair's prompt) and stay the same. Conversations that already fit
    come back unchanged (``changed`` False). Raises :class:`DoesNotFit` when even the messages before the
    first assistant turn plus the last turn are too long, :class:`ChatBuildError` for a conversation
    without an assistant turn.
    """
    convs: list[_Conv] = []
    for msgs in conversations:
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=-1)
        if last < 0:
            raise ChatBuildError("no assistant turn")
        convs.append(_Conv(list(msgs), [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]))
    lengths = [measure(c.render()) for c in convs]
    if all(n <= max_length for n in lengths):
        return Truncation([list(c) for c in conversations], [c.kept() for c in convs])
    for i, c in enumerate(convs):
        last = c.positions[-1]
        if lengths[i] > max_length and last + 1 < len(c.orig):  # unlabeled messages after the last turn
            c.orig = c.orig[: last + 1]
            lengths[i] = measure(c.render())

    eligible = [c.eligible() for c in convs]
    shared_eligible = sorted(set.intersection(*eligible) & set(range(shared)))
    own = [sorted(j for j in e if j >= shared) for e in eligible]

    def shrink(c_list: list[_Conv], indices: list[int], need: int) -> int:
        """Shorten ``indices`` (in every conversation of ``c_list``, identically) oldest first by about
        ``need`` tokens; returns the tokens saved."""
        saved = 0
        base = c_list[0]
        for j in indices:
            if saved >= need:
                break
            text = base.orig[j]["content"]
            cur = base.cost.get(j)
            if cur is None:
                cur = count_tokens(text)
            if cur <= min_observation_tokens:
                continue
            target = max(min_observation_tokens, cur - (need - saved))
            new = elide_text(text, target, count_tokens)
            new_cost = count_tokens(new)
            if new_cost >= cur:
                continue
            for c in c_list:
                c.text[j] = new
                c.cost[j] = new_cost
            saved += cur - new_cost
        return saved

    def slack(deficit: int) -> int:
        return deficit + deficit // 50 + 4  # a rendered cut costs a little more than its text's count

    for _ in range(_ROUNDS):
        deficits = [max(0, n - max_length) for n in lengths]
        if not any(deficits):
            break
        saved_shared = shrink(convs, shared_eligible, slack(max(deficits))) if shared_eligible else 0
        saved = saved_shared
        for i, c in enumerate(convs):
            rest = deficits[i] - saved_shared
            if rest > 0 and own[i]:
                saved += shrink([c], own[i], slack(rest))
        if not saved:
            break
        lengths = [measure(c.render()) for c in convs]

    if any(n > max_length for n in lengths):
        _drop_turns(convs, lengths, max_length, measure, count_tokens, shared)

    counted: set[int] = set()
    shortened = elided = 0
    for c in convs:
        gone = set(range(c.positions[0], c.positions[c.dropped - 1] + 1)) if c.dropped else set()
        for j in c.text:
            if j in gone or (j < shared and j in counted):
                continue
            if j < shared:
                counted.add(j)
            shortened += 1
            elided += count_tokens(c.orig[j]["content"]) - c.cost[j]
    k_shared = sum(1 for p in convs[0].positions if p < shared)
    shared_drop = min(min(c.dropped for c in convs), k_shared)
    dropped = shared_drop + sum(c.dropped - shared_drop for c in convs)
    return Truncation(
        [c.render() for c in convs],
        [c.kept() for c in convs],
        shortened_observations=shortened,
        elided_tokens=elided,
        dropped_turns=dropped,
        changed=True,
    )


def _drop_turns(
    convs: list[_Conv],
    lengths: list[int],
    max_length: int,
    measure: Callable[[list[dict[str, Any]]], int],
    count_tokens: Callable[[str], int],
    shared: int,
) -> None:
    """Drop the oldest turns of each over-long conversation until it fits, the shared prompt's turns
    identically in all of them; :class:`DoesNotFit` when only the last turn is left and it still does not."""
    k_shared = sum(1 for p in convs[0].positions if p < shared)
    for i, c in enumerate(convs):
        n = len(c.positions)
        while lengths[i] > max_length:
            if c.dropped >= n - 1:
                raise DoesNotFit(
                    f"{lengths[i]} tokens with only the last assistant turn left, longer than "
                    f"max_length={max_length} (the instruction and the last turn must fit)"
                )
            # estimate how many more turns to drop from the messages that dropping them removes: going
            # from m to m' dropped turns removes messages (a[m-1]+1 or a[0]) .. a[m'-1]
            a = c.positions
            deficit = lengths[i] - max_length
            m = c.dropped
            start = a[m - 1] + 1 if m else a[0]
            removed = 0
            while m < n - 1 and removed < deficit:
                for j in range(start, a[m] + 1):
                    removed += count_tokens(c.text.get(j, c.orig[j].get("content") or "")) + _MESSAGE_OVERHEAD
                start = a[m] + 1
                m += 1
            c.dropped = max(m, c.dropped + 1)
            lengths[i] = measure(c.render())
    # the shared prompt: every conversation drops the same of its turns
    shared_drop = min(max(c.dropped for c in convs), k_shared)
    for i, c in enumerate(convs):
        if c.dropped < shared_drop:
            c.dropped = shared_drop
            lengths[i] = measure(c.render())
