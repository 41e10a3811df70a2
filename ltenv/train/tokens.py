"""Token-exact training data: build sequences from the token ids the policy server returned.

Re-tokenizing a conversation's text does not always give back the ids the model sampled: a reply the model
spelled with a non-canonical split of a word (``"he" "llo"`` where the tokenizer would write ``"hello"``),
text normalised on the way (whitespace, Unicode), a detokenizer that drops special tokens, or a chat
template that renders history differently from how the server rendered it. Training on re-tokenized ids then
raises or lowers the probability of sequences the policy never produced (the retokenization drift that
agent-RL stacks such as verifiers, SkyRL and prime-rl came to train on recorded ids to avoid).

Where the trajectory holds ``tokens`` records (:func:`ltenv.trajectory.token_record`: per assistant turn the
prompt ids, stored relative to the previous turn, and the completion ids), :func:`recorded_turns_of` turns
them into the segments :func:`ltenv.train.chat.assemble` makes a :class:`~ltenv.train.chat.ChatTokens` of:
turn ``t``'s trained ids are exactly its recorded completion (the end-of-turn token included when the model
stopped on it), its context is its recorded prompt minus the previous turn's sequence. This needs every
recorded prompt to start with the previous turn's prompt + completion; where it does not (the server's
template rewrote history, e.g. Qwen3 dropping old reasoning) :class:`RecordedTokensError` is raised and
:func:`~ltenv.train.chat.build_chat` re-tokenizes that conversation (counted by the callers), while
:func:`recorded_pairs_of` still gives one exact sequence per turn (:func:`~ltenv.train.chat.build_turns`).

:func:`drift_turns` compares re-tokenized segments with the recorded ones: the drift a re-tokenizing
trainer would have trained on. :func:`drift_report` sums it over a dataset for ``ltenv export``.

Example:
    >>> ct = build_chat(tokenizer, row["messages"], token_source="recorded")   # doctest: +SKIP
    >>> ct.token_source, ct.drift_turns                                        # doctest: +SKIP
    ('recorded', 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ltenv.train.chat import THINK_CLOSE, ChatBuildError, Turn
from ltenv.trajectory import recorded_turns

__all__ = [
    "DriftReport",
    "RecordedTokensError",
    "drift_report",
    "drift_turns",
    "has_recorded",
    "recorded_pairs_of",
    "recorded_turns_of",
]

THINK_OPEN = "<think>"


class RecordedTokensError(ChatBuildError):
    """Recorded token ids that cannot be used as one sequence (missing on a turn, inconsistent prompts,
    ids outside the tokenizer's vocabulary)."""


def has_recorded(messages: Sequence[dict[str, Any]]) -> bool:
    """Whether any assistant message carries a ``tokens`` record."""
    return any(m.get("role") == "assistant" and m.get("tokens") for m in messages)


def _expand(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
    try:
        turns = recorded_turns(list(messages))
    except ValueError as exc:
        raise RecordedTokensError(str(exc)) from None
    missing = [t for t, x in enumerate(turns) if x is None]
    if missing:
        raise RecordedTokensError(f"assistant turn(s) {missing} have no recorded token ids")
    vocab = len(tokenizer)
    out: list[tuple[list[int], list[int]]] = []
    for t, x in enumerate(turns):
        assert x is not None
        prompt, completion = x
        if not completion:
            raise RecordedTokensError(f"assistant turn {t}: no recorded completion ids")
        bad = next((i for i in (*prompt, *completion) if not 0 <= i < vocab), None)
        if bad is not None:
            raise RecordedTokensError(
                f"assistant turn {t}: token id {bad} is outside the tokenizer's {vocab} ids (recorded with "
                "another tokenizer?)"
            )
        out.append((prompt, completion))
    return out


def _reasoning_length(tokenizer: Any, prompt: list[int], completion: list[int]) -> int:
    """How many leading ``completion`` ids are reasoning: up to the end of the first ``</think>``; all of
    them when a ``<think>`` (opened in the completion or at the end of the prompt, as Qwen3-Thinking's
    generation prompt does) is never closed; 0 without reasoning."""

    def text(n: int) -> str:
        return tokenizer.decode(completion[:n], skip_special_tokens=False)

    whole = text(len(completion))
    if THINK_CLOSE in whole:
        lo, hi = 1, len(completion)  # smallest n with </think> in the first n ids
        while lo < hi:
            mid = (lo + hi) // 2
            if THINK_CLOSE in text(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo
    if THINK_OPEN in whole:
        return len(completion)
    tail = tokenizer.decode(prompt[-8:], skip_special_tokens=False)
    if tail.rstrip().endswith(THINK_OPEN):
        return len(completion)
    return 0


def recorded_turns_of(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, reasoning: bool = True
) -> list[Turn]:
    """Per assistant turn: the context since the previous turn (recorded prompt minus the previous turn's
    prompt + completion) and the recorded completion ids (``reasoning``: with the length of their reasoning
    part, else 0). :class:`RecordedTokensError` when a turn has no record or its recorded prompt does not
    start with the previous turn's sequence."""
    out: list[Turn] = []
    sequence: list[int] = []
    for t, (prompt, completion) in enumerate(_expand(tokenizer, messages)):
        if prompt[: len(sequence)] != sequence:
            shared = next(
                (k for k, (a, b) in enumerate(zip(prompt, sequence, strict=False)) if a != b), len(prompt)
            )
            raise RecordedTokensError(
                f"assistant turn {t}: the recorded prompt does not start with the previous turn's tokens "
                f"(they agree on {shared} of {len(sequence)}; the server rendered earlier turns differently)"
            )
        out.append(
            Turn(
                ctx=prompt[len(sequence) :],
                ids=completion,
                reasoning=_reasoning_length(tokenizer, prompt, completion) if reasoning else 0,
            )
        )
        sequence = prompt + completion
    return out


def recorded_pairs_of(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, reasoning: bool = True
) -> list[tuple[list[int], list[int], int]]:
    """Per assistant turn ``(prompt ids, completion ids, reasoning length)`` as recorded, whether or not the
    prompts extend each other (one exact sequence per turn); the length is 0 without ``reasoning``."""
    return [
        (p, c, _reasoning_length(tokenizer, p, c) if reasoning else 0)
        for p, c in _expand(tokenizer, messages)
    ]


def drift_turns(tokenizer: Any, messages: Sequence[dict[str, Any]], text_turns: Sequence[Turn]) -> int | None:
    """How many turns' re-tokenized segments (``text_turns``, as :func:`ltenv.train.chat.build_chat`
    re-tokenizes them) differ from the recorded ones: the turn's ids differ from its recorded completion,
    or, where the recorded prompt extends the previous turn's sequence, the context before it differs.
    ``None`` when the records cannot be read."""
    try:
        pairs = _expand(tokenizer, messages)
    except RecordedTokensError:
        return None
    n = 0
    sequence: list[int] = []
    for (prompt, completion), turn in zip(pairs, text_turns, strict=False):
        differs = list(turn.ids) != completion
        if not differs and prompt[: len(sequence)] == sequence:
            differs = list(turn.ctx) != prompt[len(sequence) :]
        n += differs
        sequence = prompt + completion
    return n


@dataclass
class DriftReport:
    """Re-tokenization drift over a dataset (:func:`drift_report`)."""

    rows: int = 0
    """Conversations read."""
    recorded_rows: int = 0
    """Conversations with recorded token ids on every assistant turn."""
    turns: int = 0
    """Assistant turns of the recorded conversations."""
    drift_rows: int = 0
    """Recorded conversations where at least one turn re-tokenizes differently."""
    drift_turns: int = 0
    """Turns that re-tokenize differently."""
    inconsistent_rows: int = 0
    """Recorded conversations whose recorded prompts do not extend each other (no single sequence)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Conversations that could not be compared, by reason."""

    @property
    def row_rate(self) -> float:
        return self.drift_rows / self.recorded_rows if self.recorded_rows else 0.0

    @property
    def turn_rate(self) -> float:
        return self.drift_turns / self.turns if self.turns else 0.0

    def summary(self) -> str:
        """E.g. ``token ids recorded in 4 of 5 conversation(s); re-tokenizing them differs in 1 (25.0%),
        2 of 12 turns (16.7%)``."""
        if not self.recorded_rows:
            return f"no token ids recorded in {self.rows} conversation(s)"
        text = (
            f"token ids recorded in {self.recorded_rows} of {self.rows} conversation(s); re-tokenizing them "
            f"differs in {self.drift_rows} ({100 * self.row_rate:.1f}%), {self.drift_turns} of {self.turns} "
            f"turns ({100 * self.turn_rate:.1f}%)"
        )
        if self.inconsistent_rows:
            text += f"; {self.inconsistent_rows} with recorded prompts that do not extend each other"
        if self.errors:
            text += "; not compared: " + ", ".join(f"{n} {why}" for why, n in sorted(self.errors.items()))
        return text


def drift_report(
    tokenizer: Any,
    conversations: Iterable[Sequence[dict[str, Any]]],
    *,
    template_kwargs: dict[str, Any] | None = None,
) -> DriftReport:
    """Re-tokenize every conversation with recorded token ids and count where the ids differ."""
    from ltenv.train.chat import _end_of_turn, _text_turns

    report = DriftReport()
    eot = _end_of_turn(tokenizer, None)
    for messages in conversations:
        messages = list(messages)
        report.rows += 1
        if not has_recorded(messages):
            continue
        try:
            pairs = _expand(tokenizer, messages)
        except RecordedTokensError as exc:
            why = str(exc).split(":")[-1].strip()[:60]
            report.errors[why] = report.errors.get(why, 0) + 1
            continue
        report.recorded_rows += 1
        report.turns += len(pairs)
        try:
            recorded_turns_of(tokenizer, messages, reasoning=False)
        except RecordedTokensError:
            report.inconsistent_rows += 1
        try:
            text_turns = _text_turns(tokenizer, messages, eot, dict(template_kwargs or {}), "train")[0]
        except ChatBuildError as exc:
            why = type(exc).__name__
            report.errors[why] = report.errors.get(why, 0) + 1
            report.recorded_rows -= 1
            report.turns -= len(pairs)
            continue
        n = drift_turns(tokenizer, messages, text_turns) or 0
        report.drift_turns += n
        report.drift_rows += n > 0
    return report
