# ruff: noqa: RUF001, RUF002
"""DMPO: Direct Multi-turn Preference Optimization (Shi et al., EMNLP 2024) on TRL's ``DPOTrainer``.

For a preference pair of multi-turn trajectories (chosen ``w``, rejected ``l``) sharing a prompt::

    L = -log σ( β Σ_t φ(t,T_w) log[πθ(a^w_t|s^w_t) / πref(a^w_t|s^w_t)]
              - β Σ_t φ(t,T_l) log[πθ(a^l_t|s^l_t) / πref(a^l_t|s^l_t)] )

``a_t`` are the tokens of assistant turn ``t`` (``t = 0..T-1``), ``s_t`` everything before it; prompt and
observation tokens are masked. ``φ(t,T) = (1-γ^(T-t))/(1-γ^T)`` (``phi="paper"``) or
``γ^t (1-γ^(T-t))/(1-γ^T)`` (``phi="code"``, the authors' released variant); both give ``(T-t)/T`` as γ→1 and
``φ = 1`` when ``T = 1``, where the loss is TRL's DPO sigmoid loss.

Branching pairs: when chosen and rejected share their first ``k`` assistant turns (the prompt holds them:
``ltenv export pairs`` puts every turn both episodes agree on there, ``branch_turn = k``), the pair's common
state is ``s_k`` and the sums run over the continuations only: ``t`` counts from the branch point (turn
``k`` of the episode is ``t = 0``, with the first weight ``φ(0,T)``), ``T`` is the continuation's number of
assistant turns, and the prompt's assistant turns are context (label ``-100``, weight 0). Shared turns
weighted into both sums would not cancel when ``T_w ≠ T_l``; as context they carry no preference, as they
should.

Long trajectories are fitted into ``max_length`` by ``DMPOConfig.truncation`` (:mod:`ltenv.train.truncate`),
the shared prompt identically on both sides. A turn keeps its position ``t`` (and ``φ(t,T)``, with ``T`` the
continuation's full length) when earlier turns are dropped; dropped turns only lose their terms.

Implementation: every trajectory is tokenized once with :func:`ltenv.train.chat.build_chat` (labels ``-100``
off assistant tokens, ``turn_index`` = ``t`` on the tokens of assistant turn ``t``) and each token gets the
weight ``φ(turn_index, T)`` (0 on masked tokens). One forward pass over ``[chosen..., rejected...]`` through
TRL's fused LM head gives per-token log-probs; the φ-weighted sums are the "log-probs" of the pair, so the
reference side (a frozen copy, the adapter-disabled base under LoRA, or precomputed once) and the metrics
(``rewards/*``, ``logps/*``) follow ``DPOTrainer`` exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer

logger = logging.getLogger(__name__)

PHI_VARIANTS = ("paper", "code")
_META_COLUMNS = ("dmpo_skip",)


class DMPODataError(ValueError):
    """A preference row DMPO cannot use (e.g. chosen and rejected do not share the prompt)."""


# --------------------------------------------------------------------------------------------- loss math


def turn_weights(n_turns: int, gamma: float, phi: str = "paper") -> list[float]:
    """``[φ(0,T), ..., φ(T-1,T)]`` for ``T = n_turns``.

    ``phi="paper"``: ``(1-γ^(T-t))/(1-γ^T)``; ``phi="code"``: ``γ^t (1-γ^(T-t))/(1-γ^T)``. ``γ = 1`` uses the
    limit ``(T-t)/T`` (times ``γ^t = 1``).
    """
    if phi not in PHI_VARIANTS:
        raise ValueError(f"phi must be one of {PHI_VARIANTS}, got {phi!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if n_turns < 1:
        raise ValueError(f"n_turns must be >= 1, got {n_turns}")
    T = n_turns
    if gamma == 1.0:
        base = [(T - t) / T for t in range(T)]
    else:
        base = [(1.0 - gamma ** (T - t)) / (1.0 - gamma**T) for t in range(T)]
    if phi == "code":
        base = [gamma**t * w for t, w in enumerate(base)]
    return base


def token_weights(turn_index: Sequence[int], n_turns: int, gamma: float, phi: str = "paper") -> list[float]:
    """Per-token weights ``φ(turn_index[i], n_turns)``, 0 where ``turn_index[i] < 0``."""
    phis = turn_weights(n_turns, gamma, phi)
    return [phis[t] if t >= 0 else 0.0 for t in turn_index]


def dmpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DMPO losses and the implicit rewards ``(losses, chosen_rewards, rejected_rewards)``.

    The inputs are φ-weighted sums of per-token log-probs (shape ``(B,)``). With ``label_smoothing = 0`` this is
    ``-log σ(β[(π_w - ref_w) - (π_l - ref_l)])``, TRL's ``sigmoid`` loss (conservative DPO otherwise).
    """
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    logits = beta * (chosen_logratios - rejected_logratios)
    losses = -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def weighted_logps(per_token_logps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_i w_i log p_i`` per row; ``per_token_logps`` is aligned with ``weights[:, 1:]`` (next-token shift)."""
    shifted = weights[:, 1:].to(per_token_logps.dtype)
    return (per_token_logps[:, -shifted.size(1) :] * shifted).sum(dim=1)


def chosen_nll(per_token_logps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the trained (assistant) tokens of the chosen half of a batch (chosen
    rows first, then rejected, as the collator stacks them); ``per_token_logps`` is aligned with
    ``labels[:, 1:]``."""
    mask = labels[:, 1:] != -100
    logps = per_token_logps[:, -mask.size(1) :]
    chosen_logps, _ = logps.chunk(2, dim=0)
    chosen_mask, _ = mask.chunk(2, dim=0)
    return -chosen_logps[chosen_mask].mean()


# --------------------------------------------------------------------------------------------- config


@dataclass
class DMPOConfig(DPOConfig):
    r"""Configuration for :class:`DMPOTrainer`: TRL's ``DPOConfig`` plus the DMPO turn weighting.

    Parameters:
        gamma (`float`, defaults to `0.7`): discount γ of the turn weights φ (in ``[0, 1]``; 1 = the limit).
        phi (`str`, defaults to `"paper"`): ``"paper"`` ``(1-γ^(T-t))/(1-γ^T)`` or ``"code"``
            ``γ^t (1-γ^(T-t))/(1-γ^T)`` (the authors' released code).
        on_bad_row (`str`, defaults to `"skip"`): what to do with a row that has an empty assistant turn or of which
            nothing fits in ``max_length``: ``"skip"`` (counted, logged, listed in ``trainer.skipped_rows``) or
            ``"error"``. A row whose chosen and rejected do not share the prompt is always an error.
        reasoning (`str`, defaults to `"train"`): ``"mask"`` keeps each turn's reasoning (``<think>`` block) in
            the context with weight 0; ``"train"`` weighs it like the rest of the turn.
        token_source (`str`, defaults to `"auto"`): ``"auto"`` builds a trajectory from the token ids its
            messages recorded (``tokens``) when every assistant turn has consistent ones, else re-tokenizes;
            ``"recorded"`` treats a trajectory without usable ones as a bad row; ``"retokenize"`` ignores them.
            Rewritten turns, recorded/re-tokenized trajectories and the re-tokenization drift are logged per
            dataset and kept in ``trainer.data_stats``.
        truncation (`str`, defaults to `"elide_middle"`): how a pair longer than ``max_length`` is fitted
            (:mod:`ltenv.train.truncate`): ``"elide_middle"`` shortens middle observations, then drops middle
            turns (the instruction and each side's last turn kept; a pair that still does not fit is a bad
            row), ``"drop_latest"`` keeps the earliest turns that fit, ``"error"`` raises
            :class:`DMPODataError` naming the row. Counts (``truncated_pairs``, ``shortened_observations``,
            ``elided_tokens``, ``dropped_turns``, ``skipped_too_long``) are logged, kept in
            ``trainer.data_stats`` and reported with the metrics as ``data/<name>``.

    ``beta`` (0.1), ``max_length``, ``precompute_ref_log_probs``, ``label_smoothing`` and the training arguments
    are DPOConfig's. ``loss_type`` is ``["sigmoid"]`` (DMPO's loss) or ``["sigmoid", "sft"]`` with
    ``loss_weights=[1.0, α]``: DMPO plus α times the chosen trajectories' mean per-token negative log-likelihood
    over their assistant turns (TRL's ``"sft"`` term; RPO). The likelihood term keeps the preference loss from
    lowering the chosen actions' probabilities along with the rejected ones, which small models and
    high learning rates are prone to. ``truncation_mode`` is ``"keep_start"`` (TRL's own setting; DMPO's is
    ``truncation``).
    """

    gamma: float = field(default=0.7, metadata={"help": "Discount γ of the DMPO turn weights φ(t, T)."})
    phi: str = field(
        default="paper",
        metadata={"help": "Turn weighting: 'paper' (1-γ^(T-t))/(1-γ^T) or 'code' γ^t(1-γ^(T-t))/(1-γ^T)."},
    )
    on_bad_row: str = field(
        default="skip",
        metadata={
            "help": "Rows with an empty assistant turn or nothing fitting max_length: 'skip' or 'error'."
        },
    )
    reasoning: str = field(
        default="train",
        metadata={
            "help": "'train' on the reasoning (<think> blocks) of assistant turns or 'mask' it (weight 0)."
        },
    )
    token_source: str = field(
        default="auto",
        metadata={
            "help": "'auto': recorded token ids where every turn has them, else re-tokenize; 'recorded': "
            "rows without usable ones are bad rows; 'retokenize': ignore them."
        },
    )
    truncation: str = field(
        default="elide_middle",
        metadata={
            "help": "Pairs longer than max_length: 'elide_middle' (shorten middle observations, then drop "
            "middle turns), 'drop_latest' (keep the earliest turns that fit) or 'error'."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.phi not in PHI_VARIANTS:
            raise ValueError(f"phi must be one of {PHI_VARIANTS}, got {self.phi!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.on_bad_row not in ("skip", "error"):
            raise ValueError(f"on_bad_row must be 'skip' or 'error', got {self.on_bad_row!r}")
        if self.reasoning not in ("train", "mask"):
            raise ValueError(f"reasoning must be 'train' or 'mask', got {self.reasoning!r}")
        if self.token_source not in ("auto", "recorded", "retokenize"):
            raise ValueError(
                f"token_source must be 'auto', 'recorded' or 'retokenize', got {self.token_source!r}"
            )
        if list(self.loss_type) not in (["sigmoid"], ["sigmoid", "sft"]):
            raise ValueError(
                "DMPO supports loss_type=['sigmoid'] (its own loss) or ['sigmoid', 'sft'] (plus a likelihood "
                f"term on the chosen trajectories), got {self.loss_type}"
            )
        if self.ld_alpha is not None or self.use_weighting or self.f_divergence_type != "reverse_kl":
            raise ValueError(
                "DMPO does not support ld_alpha, use_weighting or f_divergence_type != 'reverse_kl'"
            )
        if self.truncation_mode != "keep_start":
            raise ValueError("DMPO supports only truncation_mode='keep_start'")
        from ltenv.train.truncate import check_policy

        check_policy(self.truncation)


# --------------------------------------------------------------------------------------------- data


def _as_messages(value: Any, row: int, column: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
        raise DMPODataError(f"row {row}: {column!r} must be a list of chat messages ({{'role', 'content'}})")
    # Keep reasoning_content / tool_calls / recorded tokens (build_chat renders or uses them).
    return [
        {**{k: v for k, v in m.items() if v is not None}, "content": m.get("content") or ""} for m in value
    ]


def split_pair(example: dict[str, Any], row: int) -> tuple[list[dict], list[dict], list[dict]]:
    """``(prompt, chosen_turns, rejected_turns)`` of a conversational preference row.

    Accepts ``ltenv export pairs`` rows (``prompt`` + continuations starting with an assistant turn) and TRL's
    implicit-prompt rows (full ``chosen``/``rejected`` conversations). Messages before the first assistant turn
    belong to the prompt; if chosen and rejected then disagree on it, raises :class:`DMPODataError` naming the row.
    Leading turns chosen and rejected share (same replies, same observations) move into the prompt too
    (:func:`ltenv.data.branch_point`): the pair branches after them, so the prompt may hold assistant turns.
    """
    from ltenv.data import branch_point

    prompt = _as_messages(example.get("prompt") or [], row, "prompt")
    chosen = _as_messages(example.get("chosen"), row, "chosen")
    rejected = _as_messages(example.get("rejected"), row, "rejected")

    def lead(msgs: list[dict]) -> int:
        return next((i for i, m in enumerate(msgs) if m["role"] == "assistant"), len(msgs))

    lc, lr = lead(chosen), lead(rejected)
    if chosen[:lc] != rejected[:lr]:
        raise DMPODataError(
            f"row {row}: chosen and rejected do not share the prompt (the messages before their first "
            f"assistant turn differ: {len(chosen[:lc])} vs {len(rejected[:lr])} messages)"
        )
    cut = branch_point(chosen, rejected) if lc < len(chosen) and lr < len(rejected) else 0
    cut = max(cut, lc)
    return prompt + chosen[:cut], chosen[cut:], rejected[cut:]


def _tokenize_pair(
    example: dict[str, Any],
    row: int,
    tokenizer: Any,
    max_length: int | None,
    gamma: float,
    phi: str,
    on_bad_row: str,
    reasoning: str = "train",
    token_source: str = "auto",
    truncation: str = "elide_middle",
) -> dict[str, Any]:
    from ltenv.train.chat import ChatBuildError, ChatTokens, build_chat
    from ltenv.train.truncate import DoesNotFit, fit_conversations, token_counter

    prompt, chosen, rejected = split_pair(example, row)
    k = sum(m["role"] == "assistant" for m in prompt)  # the branch turn: prompt turns are context
    out: dict[str, Any] = {
        "chosen_ids": [],
        "chosen_turn_index": [],
        "chosen_weights": [],
        "rejected_ids": [],
        "rejected_turn_index": [],
        "rejected_weights": [],
        "chosen_n_turns": 0,
        "rejected_n_turns": 0,
        "dmpo_skip": "",
        # per-row data stats summed in DMPOTrainer.data_stats: rewritten turns, sides built from recorded
        # token ids, sides that fell back to re-tokenizing, sides compared with / drift turns against them
        "dmpo_rewritten": 0,
        "dmpo_recorded": 0,
        "dmpo_fallback": 0,
        "dmpo_compared": 0,
        "dmpo_drift": 0,
        # truncation (ltenv.train.truncate) and branching: pair changed, observations shortened, tokens
        # elided from them, turns dropped, skipped as too long; the branch turn k
        "dmpo_truncated": 0,
        "dmpo_shortened": 0,
        "dmpo_elided": 0,
        "dmpo_dropped": 0,
        "dmpo_too_long": 0,
        "dmpo_branch_turn": k,
    }
    opts = {"reasoning": reasoning, "token_source": token_source}
    sides = {"chosen": prompt + chosen, "rejected": prompt + rejected}
    n_turns = {
        side: sum(m["role"] == "assistant" for m in turns)
        for side, turns in (("chosen", chosen), ("rejected", rejected))
    }
    built: dict[str, ChatTokens] = {}
    kept: dict[str, list[int]] = {}
    side = "chosen"
    try:
        for side in sides:
            if n_turns[side] == 0:
                raise ChatBuildError("no assistant turn")
        if truncation == "elide_middle" and max_length is not None:
            cache: list[tuple[list[dict], ChatTokens]] = []

            def measure(msgs: list[dict]) -> int:
                ct = next((c for m, c in reversed(cache) if m == msgs), None)
                if ct is None:
                    ct = build_chat(tokenizer, msgs, **opts)  # type: ignore[arg-type]
                    cache.append((msgs, ct))
                return len(ct)

            for side, msgs in sides.items():  # noqa: B007 - the except below names the side
                measure(msgs)
            side = "pair"
            try:
                fit = fit_conversations(
                    list(sides.values()),
                    max_length,
                    measure=measure,
                    count_tokens=token_counter(tokenizer),
                    shared=len(prompt),
                )
            except DoesNotFit:
                out["dmpo_too_long"] = 1
                raise
            for name, msgs, turns in zip(sides, fit.conversations, fit.kept_turns, strict=True):
                side = name
                hit = next((ct for m, ct in reversed(cache) if m == msgs), None)
                built[name] = hit or build_chat(tokenizer, msgs, **opts)  # type: ignore[arg-type]
                kept[name] = turns
            if fit.changed:
                out["dmpo_truncated"] = 1
                out["dmpo_shortened"] = fit.shortened_observations
                out["dmpo_elided"] = fit.elided_tokens
                out["dmpo_dropped"] = fit.dropped_turns
        else:
            mode = "error" if truncation == "error" else "left_turns"
            for name, msgs in sides.items():
                side = name
                ct = build_chat(tokenizer, msgs, max_length=max_length, truncation=mode, **opts)  # type: ignore[arg-type]
                built[name] = ct
                kept[name] = list(range(ct.n_turns))
                out["dmpo_dropped"] += ct.truncated_turns
                out["dmpo_truncated"] |= int(ct.truncated_turns > 0)
        for name, ct in built.items():
            side = name
            if not any(t >= 0 and kept[name][t] >= k for t in ct.turn_index):
                raise ChatBuildError("no assistant token of the continuation left after truncation")
    except ChatBuildError as exc:
        msg = f"row {row}: {side}: {exc}"
        if on_bad_row == "error" or (truncation == "error" and "max_length" in str(exc)):
            raise DMPODataError(msg) from exc
        out["dmpo_skip"] = msg
        return out

    for name, ct in built.items():
        # turn_index counts from the branch point: the prompt's turns are context (-1, weight 0); a kept
        # turn keeps its position in the continuation when earlier turns were dropped
        local = [kept[name][t] - k if t >= 0 and kept[name][t] >= k else -1 for t in ct.turn_index]
        out[f"{name}_ids"] = list(ct.input_ids)
        out[f"{name}_turn_index"] = local
        # T is the continuation's number of assistant turns; turns cut by max_length only lose their terms.
        out[f"{name}_weights"] = token_weights(local, n_turns[name], gamma, phi)
        out[f"{name}_n_turns"] = n_turns[name]
        out["dmpo_rewritten"] += ct.rewritten_turns
        out["dmpo_recorded"] += ct.token_source == "recorded"
        out["dmpo_fallback"] += bool(ct.fallback)
        if ct.drift_turns is not None:
            out["dmpo_compared"] += 1
            out["dmpo_drift"] += ct.drift_turns

    def prompt_len(name: str) -> int | None:
        """Tokens before the continuation's first turn, None when that turn was dropped."""
        ct = built[name]
        if k not in kept[name]:
            return None
        g = kept[name].index(k)
        if ct.turn_starts and g < len(ct.turn_starts):  # where the turn starts, masked reasoning included
            return ct.turn_starts[g]
        return next(i for i, t in enumerate(ct.turn_index) if t == g)

    # The shared prompt must give the same tokens on both sides (a template may render history differently
    # depending on what follows). Where a side had to drop its first continuation turns, its prompt is the
    # same messages by construction but no longer a token prefix to compare.
    pc, pr = prompt_len("chosen"), prompt_len("rejected")
    both = pc is not None and pr is not None
    if both and list(built["chosen"].input_ids[:pc]) != list(built["rejected"].input_ids[:pr]):
        raise DMPODataError(f"row {row}: chosen and rejected do not share the prompt (tokens differ)")
    return out


@dataclass
class DataCollatorForMultiTurnPreference:
    """Pads tokenized pairs into ``[chosen..., rejected...]`` (right padding).

    Returns ``input_ids``, ``attention_mask``, ``labels`` (``-100`` off assistant tokens and on padding),
    ``turn_index`` (``-1`` off assistant tokens), ``turn_weights`` (φ per token, 0 off assistant tokens) and,
    when present, ``ref_chosen_logps``/``ref_rejected_logps``.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from ltenv.train.chat import IGNORE_INDEX, ChatTokens, collate

        seqs = [(e["chosen_ids"], e["chosen_turn_index"], e["chosen_weights"]) for e in examples]
        seqs += [(e["rejected_ids"], e["rejected_turn_index"], e["rejected_weights"]) for e in examples]
        chats = [
            ChatTokens(
                input_ids=list(ids),
                labels=[i if t >= 0 else IGNORE_INDEX for i, t in zip(ids, turns, strict=True)],
                turn_index=list(turns),
                n_turns=max(turns, default=-1) + 1,
            )
            for ids, turns, _ in seqs
        ]
        batch = collate(chats, self.pad_token_id)
        weights = torch.zeros(batch["input_ids"].shape, dtype=torch.float32)
        for i, (_, _, w) in enumerate(seqs):
            weights[i, : len(w)] = torch.as_tensor(w, dtype=torch.float32)
        batch["turn_weights"] = weights
        if self.pad_to_multiple_of:
            extra = -batch["input_ids"].size(1) % self.pad_to_multiple_of
            fill = {
                "input_ids": self.pad_token_id,
                "attention_mask": 0,
                "labels": IGNORE_INDEX,
                "turn_index": -1,
            }
            for key, value in fill.items():
                batch[key] = F.pad(batch[key], (0, extra), value=value)
            batch["turn_weights"] = F.pad(batch["turn_weights"], (0, extra), value=0.0)
        if "ref_chosen_logps" in examples[0]:
            batch["ref_chosen_logps"] = torch.tensor([float(e["ref_chosen_logps"]) for e in examples])
            batch["ref_rejected_logps"] = torch.tensor([float(e["ref_rejected_logps"]) for e in examples])
        return batch


# --------------------------------------------------------------------------------------------- trainer


class DMPOTrainer(DPOTrainer):
    """TRL ``DPOTrainer`` with the DMPO loss over multi-turn preference pairs.

    Same constructor as ``DPOTrainer`` (``model`` path or instance, ``ref_model``, ``args: DMPOConfig``,
    ``train_dataset``/``eval_dataset`` of conversational pairs, ``processing_class``, ``peft_config``...).
    Reference log-probs come from ``ref_model``, else a frozen copy loaded from the model's path, else (PEFT)
    the adapter-disabled base, or are precomputed once (``precompute_ref_log_probs=True``).
    ``skipped_rows`` maps a dataset name to the reasons of the rows skipped (``on_bad_row="skip"``).
    """

    _tag_names = ["trl", "dmpo"]
    _name = "DMPO"
    _paper = {
        "title": "Direct Multi-Turn Preference Optimization for Language Agents",
        "id": "2406.14868",
        "citation": (
            "@inproceedings{shi2024dmpo,\n  title={Direct Multi-Turn Preference Optimization for Language Agents},\n"
            "  author={Shi, Wentao and Yuan, Mengqi and Wu, Junkang and Wang, Qifan and Feng, Fuli},\n"
            "  booktitle={EMNLP}, year={2024}\n}"
        ),
    }

    def __init__(
        self, model: Any, ref_model: Any = None, args: DMPOConfig | None = None, **kwargs: Any
    ) -> None:
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if args is None:
            args = DMPOConfig(output_dir="dmpo-output")
        if not isinstance(args, DMPOConfig):
            raise TypeError(f"DMPOTrainer needs a DMPOConfig, got {type(args).__name__}")
        processing_class = kwargs.get("processing_class")
        if processing_class is None:
            from transformers import AutoTokenizer

            name = model if isinstance(model, str) else model.config._name_or_path
            processing_class = AutoTokenizer.from_pretrained(name, trust_remote_code=args.trust_remote_code)
            kwargs["processing_class"] = processing_class
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        if kwargs.get("data_collator") is None:
            kwargs["data_collator"] = DataCollatorForMultiTurnPreference(
                pad_token_id=processing_class.pad_token_id,
                pad_to_multiple_of=args.pad_to_multiple_of
                if isinstance(args.pad_to_multiple_of, int)
                else None,
            )
        self.skipped_rows: dict[str, list[str]] = {}
        self.data_stats: dict[str, dict[str, int]] = {}
        super().__init__(model, ref_model=ref_model, args=args, **kwargs)
        self.gamma = args.gamma
        self.phi = args.phi

    # ---- data
    def _prepare_dataset(
        self, dataset: Any, processing_class: Any, args: DMPOConfig, dataset_name: str
    ) -> Any:
        from datasets import Dataset
        from trl.trainer.utils import global_then_local_main_first

        first = next(iter(dataset))
        if "chosen_ids" in first and "chosen_weights" in first:  # already prepared (evaluate() re-entry)
            return dataset
        map_kwargs: dict[str, Any] = {}
        if isinstance(dataset, Dataset):
            map_kwargs["num_proc"] = args.dataset_num_proc
            map_kwargs["desc"] = f"Tokenizing {dataset_name} dataset (DMPO)"
        with global_then_local_main_first():
            dataset = dataset.map(
                _tokenize_pair,
                with_indices=True,
                fn_kwargs={
                    "tokenizer": processing_class,
                    "max_length": args.max_length,
                    "gamma": args.gamma,
                    "phi": args.phi,
                    "on_bad_row": args.on_bad_row,
                    "reasoning": args.reasoning,
                    "token_source": args.token_source,
                    "truncation": args.truncation,
                },
                **map_kwargs,
            )
            if isinstance(dataset, Dataset):
                self._record_data_stats(dataset, dataset_name)
                reasons = [r for r in dataset["dmpo_skip"] if r]
                if reasons:
                    self.skipped_rows[dataset_name] = reasons
                    logger.warning(
                        "DMPO: skipped %d of %d %s rows, e.g. %s",
                        len(reasons),
                        len(dataset),
                        dataset_name,
                        "; ".join(reasons[:3]),
                    )
                    if len(reasons) == len(dataset):
                        raise DMPODataError(
                            f"DMPO: every row of the {dataset_name} dataset is unusable: {reasons[0]}"
                        )
                    map_kwargs.pop("desc", None)
                    dataset = dataset.filter(lambda e: not e["dmpo_skip"], **map_kwargs)
            else:
                dataset = dataset.filter(lambda e: not e["dmpo_skip"])
        return dataset

    def _record_data_stats(self, dataset: Any, dataset_name: str) -> None:
        """Sum the per-row data stats of a tokenized dataset into ``self.data_stats[dataset_name]``, log them
        (as the SFT script logs its own); the training set's are logged with the metrics as ``data/<name>``."""
        used = [not r for r in dataset["dmpo_skip"]]
        stats = {
            name: int(sum(v for v, ok in zip(dataset[f"dmpo_{name}"], used, strict=True) if ok))
            for name in ("rewritten", "recorded", "fallback", "compared", "drift")
        }
        stats = {
            "rewritten_turns": stats["rewritten"],
            "recorded_sides": stats["recorded"],
            "fallback_sides": stats["fallback"],
            "compared_sides": stats["compared"],
            "drift_turns": stats["drift"],
        }
        truncation = {
            name: int(sum(v for v, ok in zip(dataset[f"dmpo_{col}"], used, strict=True) if ok))
            for name, col in (
                ("truncated_pairs", "truncated"),
                ("shortened_observations", "shortened"),
                ("elided_tokens", "elided"),
                ("dropped_turns", "dropped"),
            )
        }
        truncation["branch_pairs"] = sum(
            k > 0 for k, ok in zip(dataset["dmpo_branch_turn"], used, strict=True) if ok
        )
        truncation["skipped_too_long"] = int(sum(dataset["dmpo_too_long"]))
        stats.update(truncation)
        self.data_stats[dataset_name] = stats
        if truncation["truncated_pairs"] or truncation["skipped_too_long"]:
            logger.warning(
                "DMPO %s: %d pairs longer than max_length fitted (%d observations shortened by %d tokens, "
                "%d turns dropped), %d skipped as too long even so",
                dataset_name,
                truncation["truncated_pairs"],
                truncation["shortened_observations"],
                truncation["elided_tokens"],
                truncation["dropped_turns"],
                truncation["skipped_too_long"],
            )
        if stats["rewritten_turns"]:
            logger.warning(
                "DMPO %s: the chat template rewrites %d assistant turns (e.g. drops earlier reasoning); they "
                "are trained in their rewritten form",
                dataset_name,
                stats["rewritten_turns"],
            )
        if stats["recorded_sides"] or stats["compared_sides"]:
            logger.warning(
                "DMPO %s: %d trajectories on recorded token ids, %d re-tokenized although recorded; "
                "re-tokenizing differs from the recorded ids in %d turns",
                dataset_name,
                stats["recorded_sides"],
                stats["fallback_sides"],
                stats["drift_turns"],
            )

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = [
                "chosen_ids",
                "chosen_turn_index",
                "chosen_weights",
                "rejected_ids",
                "rejected_turn_index",
                "rejected_weights",
                "ref_chosen_logps",
                "ref_rejected_logps",
            ]

    # ---- log-probs
    @staticmethod
    def _model_kwargs(inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {
            "input_ids": inputs["input_ids"],
            "attention_mask": inputs["attention_mask"],
            "use_cache": False,
        }

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """φ-weighted reference log-probs ``(chosen, rejected)`` of one padded batch."""
        from trl.models.utils import disable_gradient_checkpointing
        from trl.trainer.utils import use_adapter

        adapter_context: Any = contextlib.nullcontext()
        if self.ref_model is None and _is_peft_model(self.model):
            unwrapped = self.accelerator.unwrap_model(self.model)
            adapter_context = use_adapter(
                unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None
            )
            model = self.model
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapter_context,
            self.accelerator.autocast(),
        ):
            out = model(**self._model_kwargs(inputs), labels=inputs["labels"], fused_lm_head=True)
        return weighted_logps(out.log_probs, inputs["turn_weights"]).chunk(2, dim=0)

    def _compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool) -> Any:
        mode = "train" if self.model.training else "eval"
        model_kwargs = self._model_kwargs(inputs)
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        labels = inputs["labels"]
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        logps = weighted_logps(outputs.log_probs, inputs["turn_weights"])
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)

        if self.precompute_ref_logps:
            ref_chosen_logps = inputs["ref_chosen_logps"].to(logps.dtype)
            ref_rejected_logps = inputs["ref_rejected_logps"].to(logps.dtype)
        else:
            ref = self.ref_model if self.ref_model is not None else self.model
            ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(ref, inputs)

        losses, chosen_rewards, rejected_rewards = dmpo_loss(
            chosen_logps,
            rejected_logps,
            ref_chosen_logps,
            ref_rejected_logps,
            self.beta,
            self.label_smoothing,
        )
        loss = self.loss_weights[0] * losses.mean()
        if "sft" in self.loss_types:
            nll = chosen_nll(outputs.log_probs, labels)
            loss = loss + self.loss_weights[1] * nll
            self._metrics[mode]["nll/chosen"].append(
                self.accelerator.gather_for_metrics(nll.detach()).mean().item()
            )
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
            self._metrics[mode]["aux_loss"].append(
                self.accelerator.gather_for_metrics(outputs.aux_loss.detach()).mean().item()
            )
        self._log_metrics(
            mode, inputs, outputs, chosen_logps, rejected_logps, chosen_rewards, rejected_rewards
        )
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss

    def _log_metrics(
        self,
        mode: str,
        inputs: dict[str, torch.Tensor],
        outputs: Any,
        chosen_logps: torch.Tensor,
        rejected_logps: torch.Tensor,
        chosen_rewards: torch.Tensor,
        rejected_rewards: torch.Tensor,
    ) -> None:
        acc = self.accelerator
        metrics = self._metrics[mode]
        mask = (inputs["labels"][:, 1:] != -100).float()
        if outputs.entropy is not None:
            ent = acc.gather_for_metrics((outputs.entropy.detach() * mask).sum()).sum()
            n = acc.gather_for_metrics(mask.sum()).sum()
            metrics["entropy"].append((ent / n).item() if n > 0 else 0.0)
        if mode == "train":
            n_tokens = acc.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += n_tokens // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        for key, value in self.data_stats.get(mode, {}).items():
            metrics[f"data/{key}"] = [float(value)]
        chosen_rewards_g = acc.gather(chosen_rewards)
        rejected_rewards_g = acc.gather(rejected_rewards)
        metrics["rewards/chosen"].append(chosen_rewards_g.mean().item())
        metrics["rewards/rejected"].append(rejected_rewards_g.mean().item())
        metrics["rewards/accuracies"].append((chosen_rewards_g > rejected_rewards_g).float().mean().item())
        metrics["rewards/margins"].append((chosen_rewards_g - rejected_rewards_g).mean().item())
        metrics["logps/chosen"].append(acc.gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(acc.gather(rejected_logps.detach()).mean().item())
        turns = inputs["turn_index"].max(dim=1).values.float() + 1  # turns present after truncation
        chosen_turns, rejected_turns = turns.chunk(2, dim=0)
        metrics["turns/chosen"].append(acc.gather(chosen_turns).mean().item())
        metrics["turns/rejected"].append(acc.gather(rejected_turns).mean().item())


def _is_peft_model(model: Any) -> bool:
    from accelerate.utils import is_peft_model

    return is_peft_model(model)


def dmpo_reference_loss(
    chosen_turn_logratios: Sequence[float],
    rejected_turn_logratios: Sequence[float],
    beta: float = 0.1,
    gamma: float = 0.7,
    phi: str = "paper",
) -> float:
    """The DMPO loss of one pair from per-turn log-ratios ``log πθ(a_t|s_t) - log πref(a_t|s_t)`` (pure Python)."""
    wc = turn_weights(len(chosen_turn_logratios), gamma, phi)
    wr = turn_weights(len(rejected_turn_logratios), gamma, phi)
    z = beta * (
        sum(w * x for w, x in zip(wc, chosen_turn_logratios, strict=True))
        - sum(w * x for w, x in zip(wr, rejected_turn_logratios, strict=True))
    )
    return math.log1p(math.exp(-z)) if z > -30 else -z
