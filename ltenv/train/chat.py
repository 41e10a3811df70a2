"""Multi-turn chat → token ids with assistant-only labels and per-turn indices.

:func:`build_chat` renders a conversation with the tokenizer's own chat template and marks the tokens of
every assistant turn. For assistant turn ``t`` (message index ``i``) it renders

- ``P_t = apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=False)``: the prompt the
  policy was given (what :class:`ltenv.agents.HFPolicy` sends to ``generate``);
- ``F = apply_chat_template(messages, tokenize=False)``: the whole conversation,

and requires ``F`` to start with every ``P_t`` (the *prefix property*; otherwise :class:`ChatBuildError`).
Turn ``t``'s trained span is ``F[len(P_t) : end of the first end-of-turn marker after it]``: the content
and the end-of-turn token (``<|im_end|>``), never the ``<|im_start|>assistant\\n`` header, which belongs to
the prompt. Everything else (system, user/observation, tool messages, headers, the newline after
``<|im_end|>``) has label ``-100`` and turn index ``-1``.

Tokenization is per segment (context / turn 0 / context / turn 1 / ...), each tokenized on its own without
added special tokens. Each prompt ``P_t`` is therefore tokenized exactly as the policy tokenized it (a
segment boundary inside ``P_t`` always follows the special end-of-turn token, where no BPE merge can cross),
and each turn's tokens start fresh after the prompt, as generated tokens do. For the Qwen/ChatML templates
this equals tokenizing ``F`` in one go unless an assistant reply starts with a character that would merge
with the header's trailing newline (e.g. another newline): then the per-segment form is the faithful one.

Templates that rewrite earlier assistant turns (Qwen3's official template drops the ``<think>...</think>``
block of assistant turns before the last user message): the prompts still are prefixes of ``F`` (each
``P_t`` rewrites the history the same way ``F`` does), so every turn is trained in the exact context the
policy saw, but the trained tokens of such a rewritten turn are its rewritten form (the answer without the
reasoning), not the text the policy generated. Turns whose trained text is not exactly the message content
followed by the end-of-turn marker are counted in :attr:`ChatTokens.rewritten_turns`, so a caller can log or
skip them (Qwen3-style templates also add an empty ``<think>\n\n</think>\n\n`` to a last turn without one).
A template whose prompts are *not* prefixes of the whole rendering (Qwen3's hybrid template with
``enable_thinking=False``: the prompt ends with an empty think block that history turns do not have) raises
:class:`PrefixBreakError`; :func:`build_turns` then builds one exact sequence per turn from the incremental
renderings ``P_t`` and ``apply_chat_template(messages[: i + 1])``.

Truncation (``max_length``) keeps whole turns: the latest turns that do not fit are dropped (never a turn
cut in half) and counted in :attr:`ChatTokens.truncated_turns`; unlabeled context after the last kept turn
is cut. If not even the first assistant turn fits, :class:`ChatBuildError`. ``truncation="error"`` raises
instead of dropping turns.

Reasoning and tool calls: an assistant message may carry ``reasoning_content`` and OpenAI-style
``tool_calls`` (as :class:`ltenv.agents.OpenAIPolicy` records them). They are passed to the template as they
are (tool-call ``arguments`` given as JSON text are parsed into objects first, as vLLM does before it
renders), so a template that knows them renders them as the model saw and produced them: Qwen3's emits
``<think>\nR\n</think>\n\n`` before the answer and ``<tool_call>{...}</tool_call>`` after it. A turn with
reasoning or tool calls counts as rewritten when its span in the whole conversation differs from the
template's rendering of it as the newest message (how the server rendered what the model generated).
``reasoning="mask"`` keeps the reasoning in the context but labels it ``-100`` (and ``turn_index`` ``-1``, so
DMPO gives it weight 0): the tokens of a turn up to the end of its ``</think>`` are masked; ``"train"`` (the
default) trains on them. Qwen3's template drops the reasoning of every turn before the last user message, so
in one multi-turn sequence only the last turns keep theirs (the others count as rewritten). There is no
template switch for this in Qwen3's official template: the faithful form is one sequence per turn,
:func:`build_turns`, where each turn is the newest message (rendered with its reasoning) after the exact
prompt the policy was given (with the earlier reasoning dropped, as the server dropped it).

Recorded tokens: when every assistant message carries a ``tokens`` record (token ids the server returned,
see :mod:`ltenv.trajectory`), ``token_source="auto"`` (default) or ``"recorded"`` builds the sequence from
them instead of re-tokenizing (:mod:`ltenv.train.tokens`); ``"retokenize"`` ignores them. Where both are
available the two are compared and :attr:`ChatTokens.drift_turns` counts the turns whose re-tokenized ids
differ from the recorded ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

IGNORE_INDEX = -100
REASONING_MODES = ("train", "mask")
TOKEN_SOURCES = ("auto", "recorded", "retokenize")
THINK_CLOSE = "</think>"

__all__ = [
    "IGNORE_INDEX",
    "ChatBuildError",
    "ChatTokens",
    "PrefixBreakError",
    "Turn",
    "assemble",
    "build_chat",
    "build_turns",
    "collate",
]


class ChatBuildError(ValueError):
    """A conversation that cannot be turned into training tokens (the caller counts and skips it)."""


class PrefixBreakError(ChatBuildError):
    """The chat template renders earlier turns differently in later prompts than in the whole conversation
    (e.g. Qwen3's hybrid template with ``enable_thinking=False``): no single sequence holds every turn in
    the context the policy saw. :func:`build_turns` builds one sequence per turn instead."""


@dataclass
class ChatTokens:
    """One tokenized conversation.

    ``labels[j]`` is ``input_ids[j]`` on assistant-turn tokens (content + end-of-turn token) and ``-100``
    elsewhere; ``turn_index[j]`` is ``t`` (0-based assistant turn) on the tokens of turn ``t`` and ``-1``
    elsewhere. ``n_turns`` counts the assistant turns kept, ``truncated_turns`` those dropped by
    ``max_length``, ``rewritten_turns`` kept turns whose trained text is not exactly the message content
    plus the end-of-turn marker, because the template rewrites it (see the module docstring).
    """

    input_ids: list[int]
    labels: list[int]
    turn_index: list[int]
    n_turns: int
    truncated_turns: int = 0
    rewritten_turns: int = 0
    token_source: str = "retokenized"
    """``"recorded"`` when built from the token ids the policy server returned, else ``"retokenized"``."""
    drift_turns: int | None = None
    """Turns whose re-tokenized ids differ from the recorded ones (``None``: nothing recorded to compare)."""
    fallback: str = ""
    """Why recorded token ids were not used although present (``token_source="auto"``), else ``""``."""
    turn_starts: list[int] | None = None
    """Index of the first token of each kept turn (its masked reasoning included)."""

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Turn:
    """One assistant turn as segments: ``ctx`` (the unlabeled tokens since the previous turn), ``ids`` (the
    turn's own tokens) and ``reasoning`` (how many leading ``ids`` are reasoning, masked with
    ``reasoning="mask"``)."""

    ctx: list[int]
    ids: list[int]
    reasoning: int = 0


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], gen: bool, kwargs: dict[str, Any]) -> str:
    out = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=gen, **kwargs)
    if not isinstance(out, str):  # pragma: no cover - defensive, transformers returns str for tokenize=False
        raise ChatBuildError(f"apply_chat_template returned {type(out).__name__}, expected str")
    return out


def _end_of_turn(tokenizer: Any, end_of_turn: str | None) -> str:
    if end_of_turn:
        return end_of_turn
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        return "<|im_end|>"
    if tokenizer.eos_token:
        return str(tokenizer.eos_token)
    raise ChatBuildError("cannot tell the end-of-turn token: pass end_of_turn=")


def _encode(tokenizer: Any, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _template_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as a chat template takes them: no ``tokens`` records or ``None`` fields, ``content``
    ``""`` when missing, tool-call ``arguments`` parsed from JSON text into objects (as vLLM does)."""
    out = []
    for m in messages:
        msg = {k: v for k, v in m.items() if k != "tokens" and v is not None}
        if msg.get("content") is None:
            msg["content"] = ""
        calls = msg.get("tool_calls")
        if calls:
            parsed = []
            for call in calls:
                call = dict(call)
                fn = call.get("function")
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    try:
                        fn = {**fn, "arguments": json.loads(fn["arguments"])}
                    except ValueError:
                        pass  # not JSON: the template gets the text as it is
                    call["function"] = fn
                parsed.append(call)
            msg["tool_calls"] = parsed
        elif "tool_calls" in msg:
            del msg["tool_calls"]
        out.append(msg)
    return out


def _assistant_positions(messages: Sequence[dict[str, Any]]) -> list[int]:
    positions = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not positions:
        raise ChatBuildError("no assistant turn")
    for t, i in enumerate(positions):
        m = messages[i]
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise ChatBuildError(f"assistant turn {t} (message {i}): content is not a string")
        if not (content or "").strip() and not m.get("reasoning_content") and not m.get("tool_calls"):
            raise ChatBuildError(f"assistant turn {t} (message {i}) is empty")
    return positions


def _check_options(reasoning: str, token_source: str) -> None:
    if reasoning not in REASONING_MODES:
        raise ValueError(f"reasoning must be one of {REASONING_MODES}, not {reasoning!r}")
    if token_source not in TOKEN_SOURCES:
        raise ValueError(f"token_source must be one of {TOKEN_SOURCES}, not {token_source!r}")


def _encode_turn(tokenizer: Any, text: str) -> tuple[list[int], int]:
    """A turn's ids and how many of them are reasoning (up to the end of ``</think>``), tokenized in two
    segments split there (the same ids when ``</think>`` is a special token, as in Qwen3)."""
    cut = text.find(THINK_CLOSE)
    if cut < 0:
        return _encode(tokenizer, text), 0
    head = _encode(tokenizer, text[: cut + len(THINK_CLOSE)])
    return head + _encode(tokenizer, text[cut + len(THINK_CLOSE) :]), len(head)


def _text_turns(
    tokenizer: Any, messages: list[dict[str, Any]], eot: str, kwargs: dict[str, Any], reasoning: str
) -> tuple[list[Turn], list[int], list[bool]]:
    """Re-tokenized segments of ``messages``: per assistant turn its context and ids, the tail, and which
    turns the template rewrites (see the module docstring)."""
    positions = _assistant_positions(messages)
    msgs = _template_messages(messages)
    full = _render(tokenizer, msgs, False, kwargs)
    spans: list[tuple[int, int]] = []
    rewritten: list[bool] = []
    for t, i in enumerate(positions):
        prompt = _render(tokenizer, msgs[:i], True, kwargs)
        if not full.startswith(prompt):
            raise PrefixBreakError(
                f"chat template breaks the prefix property at assistant turn {t} (message {i}): the "
                "rendered conversation does not start with the prompt the policy was given "
                "(apply_chat_template(messages[:i], add_generation_prompt=True))"
            )
        start = len(prompt)
        if spans and start < spans[-1][1]:
            raise ChatBuildError(f"assistant turn {t} starts inside turn {t - 1}")
        stop = full.find(eot, start)
        if stop < 0:
            raise ChatBuildError(f"assistant turn {t} (message {i}) has no end-of-turn marker {eot!r}")
        stop += len(eot)
        spans.append((start, stop))
        if msgs[i].get("reasoning_content") or msgs[i].get("tool_calls"):
            alone = _render(tokenizer, msgs[: i + 1], False, kwargs)
            end = alone.find(eot, start) if alone.startswith(prompt) else -1
            rewritten.append(end < 0 or full[start:stop] != alone[start : end + len(eot)])
        else:
            rewritten.append(full[start:stop] != msgs[i]["content"] + eot)
    turns: list[Turn] = []
    cursor = 0
    for t, (start, stop) in enumerate(spans):
        ctx = _encode(tokenizer, full[cursor:start])
        if reasoning == "mask":
            ids, masked = _encode_turn(tokenizer, full[start:stop])
        else:
            ids, masked = _encode(tokenizer, full[start:stop]), 0
        if not ids:
            raise ChatBuildError(f"assistant turn {t} has no tokens")
        turns.append(Turn(ctx=ctx, ids=ids, reasoning=masked))
        cursor = stop
    return turns, _encode(tokenizer, full[cursor:]), rewritten


def assemble(
    turns: Sequence[Turn],
    tail: Sequence[int],
    *,
    reasoning: str = "train",
    max_length: int | None = None,
    truncation: str = "left_turns",
) -> ChatTokens:
    """One :class:`ChatTokens` from per-turn segments (context unlabeled, turn ids labeled with
    ``turn_index`` ``t``, the first ``Turn.reasoning`` ids of a turn masked with ``reasoning="mask"``),
    truncated to ``max_length`` by whole turns (see the module docstring)."""
    input_ids: list[int] = []
    labels: list[int] = []
    turn_index: list[int] = []
    ends: list[int] = []  # token count at the end of each turn
    starts: list[int] = []
    for t, turn in enumerate(turns):
        input_ids += turn.ctx
        labels += [IGNORE_INDEX] * len(turn.ctx)
        turn_index += [-1] * len(turn.ctx)
        starts.append(len(input_ids))
        masked = turn.reasoning if reasoning == "mask" else 0
        input_ids += turn.ids
        labels += [IGNORE_INDEX] * masked + list(turn.ids[masked:])
        turn_index += [-1] * masked + [t] * (len(turn.ids) - masked)
        ends.append(len(input_ids))
    input_ids += tail
    labels += [IGNORE_INDEX] * len(tail)
    turn_index += [-1] * len(tail)

    n_all = len(turns)
    keep = n_all
    length = len(input_ids)
    if max_length is not None and length > max_length:
        keep = sum(1 for e in ends if e <= max_length)
        if truncation == "error" and keep < n_all:
            raise ChatBuildError(
                f"conversation is {length} tokens, longer than max_length={max_length} "
                f"(turn {keep} ends at token {ends[keep]})"
            )
        if keep == 0:
            raise ChatBuildError(
                f"the first assistant turn ends at token {ends[0]}, beyond max_length={max_length}"
            )
        length = ends[keep - 1] if keep < n_all else max_length
    return ChatTokens(
        input_ids=input_ids[:length],
        labels=labels[:length],
        turn_index=turn_index[:length],
        n_turns=keep,
        truncated_turns=n_all - keep,
        turn_starts=starts[:keep],
    )


def build_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    max_length: int | None = None,
    truncation: Literal["left_turns", "error"] = "left_turns",
    end_of_turn: str | None = None,
    template_kwargs: dict[str, Any] | None = None,
    reasoning: Literal["train", "mask"] = "train",
    token_source: Literal["auto", "recorded", "retokenize"] = "auto",
) -> ChatTokens:
    """Tokenize ``messages`` with ``tokenizer``'s chat template; labels only on assistant turns.

    ``truncation="left_turns"`` keeps the leftmost (earliest) whole turns that fit in ``max_length`` tokens;
    ``"error"`` raises :class:`ChatBuildError` if the conversation does not fit. ``end_of_turn`` defaults to
    ``<|im_end|>`` if the vocabulary has it, else the EOS token. ``template_kwargs`` are passed to every
    ``apply_chat_template`` call (e.g. ``{"enable_thinking": False}``); use the ones the policy used.
    ``reasoning``: ``"train"`` or ``"mask"`` the reasoning (``<think>`` block) of each turn.
    ``token_source``: ``"auto"`` uses the recorded token ids when every assistant message has them and they
    are consistent (each recorded prompt starts with the previous turn's tokens), else re-tokenizes
    (:attr:`ChatTokens.fallback` says why); ``"recorded"`` raises :class:`ChatBuildError` instead of falling
    back; ``"retokenize"`` always re-tokenizes.
    Raises :class:`ChatBuildError` for: no assistant turn, an empty assistant turn, a template without the
    prefix property, an assistant turn without an end-of-turn marker, or a first turn longer than
    ``max_length``.
    """
    if truncation not in ("left_turns", "error"):
        raise ValueError(f"truncation must be 'left_turns' or 'error', not {truncation!r}")
    _check_options(reasoning, token_source)
    from ltenv.train import tokens as recorded_tokens

    kwargs = dict(template_kwargs or {})
    eot = _end_of_turn(tokenizer, end_of_turn)
    _assistant_positions(messages)
    recorded: list[Turn] | None = None
    fallback = ""
    has_records = recorded_tokens.has_recorded(messages)
    if token_source == "recorded" and not has_records:
        raise ChatBuildError("token_source='recorded' but not every assistant turn has recorded token ids")
    if token_source != "retokenize" and has_records:
        try:
            recorded = recorded_tokens.recorded_turns_of(tokenizer, messages, reasoning=reasoning == "mask")
        except recorded_tokens.RecordedTokensError as exc:
            if token_source == "recorded":
                raise ChatBuildError(f"recorded token ids unusable: {exc}") from exc
            fallback = str(exc)
    text: tuple[list[Turn], list[int], list[bool]] | None = None
    try:
        text = _text_turns(tokenizer, messages, eot, kwargs, reasoning)
    except ChatBuildError:
        if recorded is None:
            raise
    if recorded is not None:
        ct = assemble(recorded, [], reasoning=reasoning, max_length=max_length, truncation=truncation)
        ct.token_source = "recorded"
    else:
        assert text is not None
        ct = assemble(text[0], text[1], reasoning=reasoning, max_length=max_length, truncation=truncation)
        ct.fallback = fallback
    if recorded is None and text is not None:  # recorded ids are what the policy generated: never rewritten
        ct.rewritten_turns = sum(text[2][: ct.n_turns])
    if has_records and text is not None:
        ct.drift_turns = recorded_tokens.drift_turns(tokenizer, messages, text[0])
    return ct


def build_turns(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    max_length: int | None = None,
    end_of_turn: str | None = None,
    template_kwargs: dict[str, Any] | None = None,
    reasoning: Literal["train", "mask"] = "train",
    token_source: Literal["auto", "recorded", "retokenize"] = "auto",
) -> list[ChatTokens]:
    """One sequence per assistant turn ``t``: the tokens of ``P_t`` (``apply_chat_template(messages[:i],
    add_generation_prompt=True)``, unlabeled) followed by the turn as rendered when it is the last message
    (labeled, ``turn_index`` = ``t``, each with ``n_turns=1``). Exact for any template, including ones that
    rewrite history (:class:`PrefixBreakError`) or drop earlier turns' reasoning (each turn keeps its own
    here), at the cost of re-encoding the context once per turn. With recorded token ids (``token_source``
    as in :func:`build_chat`) each sequence is the turn's recorded prompt + completion, which is exact even
    where the recorded prompts do not extend each other. Turns longer than ``max_length`` are dropped and
    counted in ``truncated_turns`` of every returned item (the latest ones first, like :func:`build_chat`);
    empty turns or none fitting → :class:`ChatBuildError`.
    """
    _check_options(reasoning, token_source)
    from ltenv.train import tokens as recorded_tokens

    kwargs = dict(template_kwargs or {})
    eot = _end_of_turn(tokenizer, end_of_turn)
    positions = _assistant_positions(messages)
    per_turn: list[tuple[list[int], list[int], int]] | None = None
    source = "retokenized"
    if token_source != "retokenize" and recorded_tokens.has_recorded(messages):
        try:
            per_turn = recorded_tokens.recorded_pairs_of(tokenizer, messages, reasoning=reasoning == "mask")
            source = "recorded"
        except recorded_tokens.RecordedTokensError as exc:
            if token_source == "recorded":
                raise ChatBuildError(f"recorded token ids unusable: {exc}") from exc
    elif token_source == "recorded":
        raise ChatBuildError("token_source='recorded' but not every assistant turn has recorded token ids")
    if per_turn is None:
        msgs = _template_messages(messages)
        per_turn = []
        for t, i in enumerate(positions):
            prompt = _render(tokenizer, msgs[:i], True, kwargs)
            alone = _render(tokenizer, msgs[: i + 1], False, kwargs)
            if not alone.startswith(prompt):
                raise ChatBuildError(f"assistant turn {t} (message {i}) is not rendered after its own prompt")
            stop = alone.find(eot, len(prompt))
            if stop < 0:
                raise ChatBuildError(f"assistant turn {t} (message {i}) has no end-of-turn marker {eot!r}")
            turn, masked = _encode_turn(tokenizer, alone[len(prompt) : stop + len(eot)])
            per_turn.append((_encode(tokenizer, prompt), turn, masked))
    out: list[ChatTokens] = []
    for t, (ctx, turn, masked) in enumerate(per_turn):
        if max_length is not None and len(ctx) + len(turn) > max_length:
            break  # later turns have longer prompts
        m = masked if reasoning == "mask" else 0
        out.append(
            ChatTokens(
                input_ids=ctx + turn,
                labels=[IGNORE_INDEX] * (len(ctx) + m) + turn[m:],
                turn_index=[-1] * (len(ctx) + m) + [t] * (len(turn) - m),
                n_turns=1,
                token_source=source,
                turn_starts=[len(ctx)],
            )
        )
    if not out:
        raise ChatBuildError(f"the first assistant turn does not fit in max_length={max_length}")
    for x in out:
        x.truncated_turns = len(positions) - len(out)
    return out


def collate(batch: Sequence[ChatTokens], pad_token_id: int) -> dict[str, Any]:
    """Right-pad a batch: ``input_ids`` (``pad_token_id``), ``attention_mask`` (0), ``labels`` (-100),
    ``turn_index`` (-1); all ``torch.long`` of shape ``(batch, longest)``."""
    import torch

    if not batch:
        raise ValueError("empty batch")
    width = max(len(x.input_ids) for x in batch)
    n = len(batch)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    turn_index = torch.full((n, width), -1, dtype=torch.long)
    for r, x in enumerate(batch):
        k = len(x.input_ids)
        input_ids[r, :k] = torch.tensor(x.input_ids, dtype=torch.long)
        attention_mask[r, :k] = 1
        labels[r, :k] = torch.tensor(x.labels, dtype=torch.long)
        turn_index[r, :k] = torch.tensor(x.turn_index, dtype=torch.long)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "turn_index": turn_index,
    }
