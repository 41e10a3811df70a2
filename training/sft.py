"""Supervised fine-tuning on multi-turn agent trajectories with TRL's ``SFTTrainer``.

Data: ``{"messages": [...]}`` rows (``ltenv export sft`` output, ``ltenv import sharegpt`` output), JSON Lines
or Parquet, any number of files. Every conversation is pre-tokenized with :func:`ltenv.train.build_chat`
(the model's own chat template; each turn's prompt is exactly what the policy was given) into ``input_ids``
+ ``assistant_masks``, the pre-tokenized form TRL 1.16's ``SFTTrainer`` turns into labels: the loss is on
every assistant turn (content + ``<|im_end|>``) and nothing else. Conversations longer than ``max_length``
are fitted by ``--truncation`` (:mod:`ltenv.train.truncate`; default ``elide_middle``: middle observations
shortened, then middle turns dropped, the instruction and the last turn always kept; ``drop_latest`` keeps
the earliest turns that fit); conversations that cannot be used (no room for the instruction and last turn,
empty turn...) are skipped, counted, logged and written to ``OUTPUT_DIR/data_stats.json``. Templates that rewrite history
so that no single sequence fits every turn's prompt (Qwen3 hybrid with ``enable_thinking=False``) are split
into one sequence per turn (``--on_prefix_break split``, default) or skipped (``skip``).

Full fine-tuning, or LoRA with ``--use_peft --lora_r 16 ...`` (TRL ``ModelConfig``). The checkpoint in
``output_dir`` (model or adapter, with the tokenizer) loads in ``ltenv.agents.HFPolicy(output_dir)`` (full)
or ``HFPolicy(base, adapter=output_dir)`` (LoRA); ``--merge_adapter`` also writes a merged model to
``output_dir/merged``.

    accelerate launch --config_file training/configs/cpu.yaml training/sft.py --config training/configs/sft_tiny.yaml
    accelerate launch --config_file training/configs/zero3.yaml training/sft.py \\
        --config training/configs/sft_qwen3_4b_instruct_2507.yaml --train_files data/sft.jsonl
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("ltenv.training.sft")


@dataclass
class SFTDataArguments:
    """Our data options (the rest comes from TRL's ``SFTConfig`` and ``ModelConfig``)."""

    train_files: list[str] = field(
        default_factory=list,
        metadata={"help": "Training data: .jsonl/.parquet files of {'messages': [...]}."},
    )
    eval_files: list[str] = field(
        default_factory=list, metadata={"help": "Held-out data (same format); enables eval loss."}
    )
    eval_fraction: float = field(
        default=0.0, metadata={"help": "Without --eval_files: hold out this fraction of the training rows."}
    )
    template_kwargs: str | None = field(
        default=None,
        metadata={"help": "JSON dict passed to apply_chat_template, e.g. '{\"enable_thinking\": false}'."},
    )
    on_prefix_break: str = field(
        default="split",
        metadata={"help": "Template without the prefix property: 'split' (one row per turn) or 'skip'."},
    )
    skip_rewritten: bool = field(
        default=False, metadata={"help": "Skip conversations where the template rewrites an assistant turn."}
    )
    split_rewritten: bool = field(
        default=False,
        metadata={
            "help": "Build conversations where the template rewrites a turn (Qwen3 drops earlier reasoning), "
            "or whose recorded token ids do not extend each other, as one sequence per turn, each turn "
            "trained as generated."
        },
    )
    reasoning: str = field(
        default="train",
        metadata={
            "help": "'train' on the reasoning (<think> blocks) of assistant turns or 'mask' it (context only)."
        },
    )
    token_source: str = field(
        default="auto",
        metadata={
            "help": "'auto': train on recorded token ids where every turn has them, else re-tokenize; "
            "'recorded': skip rows without usable ones; 'retokenize': ignore them."
        },
    )
    truncation: str = field(
        default="elide_middle",
        metadata={
            "help": "Conversations longer than max_length: 'elide_middle' (shorten middle observations, then "
            "drop middle turns; instruction and last turn kept), 'drop_latest' (keep the earliest turns "
            "that fit) or 'error'. See ltenv.train.truncate."
        },
    )
    merge_adapter: bool = field(
        default=False,
        metadata={"help": "With --use_peft: also save base+adapter merged in OUTPUT_DIR/merged."},
    )


def read_messages(files: list[str]) -> Any:
    """The ``messages`` column of all ``files`` (.jsonl/.parquet) as one ``datasets.Dataset``."""
    from datasets import concatenate_datasets

    from ltenv.data import align_messages, read_dataset

    if not files:
        raise ValueError("no data files given (--train_files)")
    parts = []
    for f in files:
        ds = read_dataset(f)
        if "messages" not in ds.column_names:
            raise ValueError(f"{f}: no 'messages' column (columns: {ds.column_names})")
        parts.append(ds.select_columns(["messages"]))
    return concatenate_datasets(align_messages(parts)) if len(parts) > 1 else parts[0]


def tokenize(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int | None,
    template_kwargs: dict[str, Any] | None = None,
    on_prefix_break: str = "split",
    skip_rewritten: bool = False,
    num_proc: int | None = None,
    reasoning: str = "train",
    token_source: str = "auto",
    split_rewritten: bool = False,
    truncation: str = "elide_middle",
) -> tuple[Any, Counter[str]]:
    """``{"messages"}`` rows → ``{"input_ids", "assistant_masks"}`` rows (TRL's pre-tokenized form) and
    counters: ``rows``, ``kept``, ``split_rows``, ``truncated_rows``, ``truncated_turns``,
    ``rewritten_turns``, ``recorded_rows`` (built from recorded token ids), ``fallback_rows`` (recorded ids
    present but unusable: re-tokenized), ``compared_rows``/``drift_rows``/``drift_turns`` (re-tokenized ids
    that differ from the recorded ones), and ``skipped:<reason>`` per skipped row. ``reasoning`` and
    ``token_source`` are :func:`ltenv.train.build_chat`'s; ``split_rewritten`` builds a conversation in which
    the template rewrites a turn (Qwen3 dropping old reasoning), or whose recorded token ids do not extend
    each other, as one sequence per turn instead (from the recorded ids where there are some).

    ``truncation`` (:mod:`ltenv.train.truncate`) fits conversations longer than ``max_length``:
    ``"elide_middle"`` counts ``truncated_rows``, ``shortened_observations``, ``elided_tokens`` and
    ``dropped_turns`` (middle turns), and skips what cannot fit as ``skipped:DoesNotFit``; ``"drop_latest"``
    counts ``truncated_rows`` and ``truncated_turns`` (latest turns dropped); ``"error"`` raises
    ``ValueError`` naming the first row that does not fit."""
    from ltenv.train import ChatBuildError, PrefixBreakError, build_chat, build_turns
    from ltenv.train.truncate import check_policy, fit_conversations, token_counter

    if on_prefix_break not in ("split", "skip"):
        raise ValueError(f"on_prefix_break must be 'split' or 'skip', not {on_prefix_break!r}")
    if reasoning not in ("train", "mask"):
        raise ValueError(f"reasoning must be 'train' or 'mask', not {reasoning!r}")
    if token_source not in ("auto", "recorded", "retokenize"):
        raise ValueError(f"token_source must be 'auto', 'recorded' or 'retokenize', not {token_source!r}")
    check_policy(truncation)
    count_tokens = token_counter(tokenizer)

    def fn(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("input_ids", "assistant_masks", "_status", "_trunc", "_rewr", "_tok", "_fit")
        }

        def emit(
            ids: list[int],
            mask: list[int],
            status: str,
            trunc: int = 0,
            rewr: int = 0,
            tok: Any = None,
            fit: Any = None,
        ) -> None:
            out["input_ids"].append(ids)
            out["assistant_masks"].append(mask)
            out["_status"].append(status)
            out["_trunc"].append(trunc)
            out["_rewr"].append(rewr)
            # [built from recorded ids, re-tokenization drift in turns (-1: nothing recorded), fell back]
            out["_tok"].append(tok or [0, -1, 0])
            # elide_middle: [observations shortened, tokens elided, middle turns dropped]
            out["_fit"].append(fit or [0, 0, 0])

        opts = {"template_kwargs": template_kwargs, "reasoning": reasoning, "token_source": token_source}

        def build(messages: list[dict[str, Any]], limit: int | None) -> tuple[list[Any], str]:
            try:
                items = [build_chat(tokenizer, messages, max_length=limit, **opts)]
                status = "ok"
                if split_rewritten and (items[0].rewritten_turns or items[0].fallback):
                    # one exact sequence per turn: rendered as the newest message, or as recorded
                    first = items[0]
                    items = build_turns(tokenizer, messages, max_length=limit, **opts)
                    items[0].drift_turns = first.drift_turns
                    items[0].fallback = "" if items[0].token_source == "recorded" else first.fallback
                    status = "split"
            except PrefixBreakError:
                if on_prefix_break == "skip":
                    raise
                items = build_turns(tokenizer, messages, max_length=limit, **opts)
                status = "split"
            return items, status

        for row, messages in zip(indices, batch["messages"], strict=True):
            fit = None
            try:
                if truncation == "drop_latest" or max_length is None:
                    items, status = build(messages, max_length)
                else:
                    built: list[tuple[list[dict[str, Any]], tuple[list[Any], str]]] = []

                    def measure(msgs: list[dict[str, Any]], built: list[Any] = built) -> int:
                        result = build(msgs, None)
                        built.append((msgs, result))
                        return max(len(x) for x in result[0])

                    longest = measure(messages)
                    if longest > max_length and truncation == "error":
                        raise ValueError(
                            f"row {row}: the conversation is {longest} tokens, longer than "
                            f"max_length={max_length} (truncation='error')"
                        )
                    done = fit_conversations(
                        [messages], max_length, measure=measure, count_tokens=count_tokens
                    )
                    fitted = done.conversations[0]
                    items, status = next((r for m, r in reversed(built) if m == fitted), None) or build(
                        fitted, None
                    )
                    if done.changed:
                        fit = [done.shortened_observations, done.elided_tokens, done.dropped_turns]
            except ChatBuildError as e:
                emit([], [], f"skipped:{type(e).__name__}: {str(e).split(':')[0][:80]}")
                continue
            if skip_rewritten and any(x.rewritten_turns for x in items):
                emit([], [], "skipped:template rewrites an assistant turn")
                continue
            for k, x in enumerate(items):  # per-conversation counts on its first row only
                mask = [int(lab != -100) for lab in x.labels]
                if k == 0:
                    drift = -1 if x.drift_turns is None else x.drift_turns
                    tok = [int(x.token_source == "recorded"), drift, int(bool(x.fallback))]
                    emit(x.input_ids, mask, status, x.truncated_turns, x.rewritten_turns, tok, fit)
                else:
                    emit(x.input_ids, mask, "split_extra")
        return out

    cols = dataset.column_names
    ds = dataset.map(
        fn,
        batched=True,
        with_indices=True,
        batch_size=64,
        remove_columns=cols,
        num_proc=num_proc,
        desc="build_chat",
    )
    stats: Counter[str] = Counter()
    stats["rows"] = len(dataset)
    columns = (ds["_status"], ds["_trunc"], ds["_rewr"], ds["_tok"], ds["_fit"])
    for status, trunc, rewr, tok, fit in zip(*columns, strict=True):
        if status in ("ok", "split"):
            recorded, drift, fell_back = tok
            stats["recorded_rows"] += recorded
            stats["fallback_rows"] += fell_back
            if drift >= 0:
                stats["compared_rows"] += 1
                stats["drift_rows"] += drift > 0
                stats["drift_turns"] += drift
        if status.startswith("skipped:"):
            stats[status] += 1
        elif status in ("ok", "split"):
            stats["kept"] += 1
            stats["split_rows"] += status == "split"
            stats["truncated_rows"] += trunc > 0 or any(fit)
            stats["truncated_turns"] += trunc
            stats["rewritten_turns"] += rewr
            stats["shortened_observations"] += fit[0]
            stats["elided_tokens"] += fit[1]
            stats["dropped_turns"] += fit[2]
    ds = ds.filter(lambda s: not s.startswith("skipped:"), input_columns="_status")
    return ds.remove_columns(["_status", "_trunc", "_rewr", "_tok", "_fit"]), stats


def _log_stats(name: str, stats: Counter[str]) -> None:
    skipped = sum(v for k, v in stats.items() if k.startswith("skipped:"))
    logger.warning(
        "%s: %d conversations, %d kept, %d skipped, %d truncated (%d observations shortened by %d tokens, "
        "%d middle turns dropped, %d latest turns dropped), %d rewritten turns",
        name,
        stats["rows"],
        stats["kept"],
        skipped,
        stats["truncated_rows"],
        stats["shortened_observations"],
        stats["elided_tokens"],
        stats["dropped_turns"],
        stats["truncated_turns"],
        stats["rewritten_turns"],
    )
    if stats["compared_rows"] or stats["recorded_rows"]:
        logger.warning(
            "%s: %d conversations trained on recorded token ids, %d re-tokenized although recorded; "
            "re-tokenizing differs from the recorded ids in %d of %d conversations (%d turns)",
            name,
            stats["recorded_rows"],
            stats["fallback_rows"],
            stats["drift_rows"],
            stats["compared_rows"],
            stats["drift_turns"],
        )
    for k, v in sorted(stats.items()):
        if k.startswith("skipped:"):
            logger.warning("%s: skipped %d: %s", name, v, k.removeprefix("skipped:"))


def build_trainer(data_args: SFTDataArguments, training_args: Any, model_args: Any) -> Any:
    """Load tokenizer + data, pre-tokenize, and return a ready ``trl.SFTTrainer`` (with ``.data_stats``)."""
    from transformers import AutoTokenizer
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    if not model_args.model_name_or_path:
        raise ValueError("--model_name_or_path is required")
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=getattr(training_args, "trust_remote_code", False),
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # training; HFPolicy sets left padding for generation itself

    model_init_kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(training_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    model_init_kwargs = {k: v for k, v in model_init_kwargs.items() if v is not None}
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    tkw = json.loads(data_args.template_kwargs) if data_args.template_kwargs else None
    common = {
        "max_length": training_args.max_length,
        "template_kwargs": tkw,
        "on_prefix_break": data_args.on_prefix_break,
        "skip_rewritten": data_args.skip_rewritten,
        "split_rewritten": data_args.split_rewritten,
        "reasoning": data_args.reasoning,
        "token_source": data_args.token_source,
        "truncation": data_args.truncation,
        "num_proc": training_args.dataset_num_proc,
    }
    raw = read_messages(data_args.train_files)
    raw_eval = read_messages(data_args.eval_files) if data_args.eval_files else None
    if raw_eval is None and data_args.eval_fraction > 0:
        split = raw.train_test_split(test_size=data_args.eval_fraction, seed=training_args.seed)
        raw, raw_eval = split["train"], split["test"]
    with training_args.main_process_first(desc="tokenize"):
        train_ds, stats = tokenize(raw, tokenizer, **common)
        eval_ds, eval_stats = (
            tokenize(raw_eval, tokenizer, **common) if raw_eval is not None else (None, None)
        )
    _log_stats("train", stats)
    if eval_stats is not None:
        _log_stats("eval", eval_stats)
    if len(train_ds) == 0:
        raise ValueError(f"no usable training conversation ({dict(stats)})")

    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    trainer.data_stats = {"train": dict(stats), "eval": dict(eval_stats) if eval_stats is not None else None}
    return trainer


def merge_adapter(base: str, adapter: str | Path, out: str | Path) -> Path:
    """Save ``base`` + LoRA ``adapter`` merged into a plain model (with the adapter's tokenizer) in ``out``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(out)
    return Path(out)


def main(data_args: SFTDataArguments, training_args: Any, model_args: Any) -> Any:
    trainer = build_trainer(data_args, training_args, model_args)
    logger.info(
        "SFT: %d process(es) (%s)", trainer.accelerator.num_processes, trainer.accelerator.distributed_type
    )
    out = Path(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data_stats.json").write_text(json.dumps(trainer.data_stats, indent=2))
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if trainer.eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    trainer.save_model(str(out))  # model or adapter (+ tokenizer); gathers ZeRO-3 / FSDP shards
    trainer.accelerator.wait_for_everyone()
    if model_args.use_peft and data_args.merge_adapter and trainer.accelerator.is_main_process:
        merge_adapter(model_args.model_name_or_path, out, out / "merged")
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.print(f"saved to {out}")
    return trainer


def make_parser() -> Any:
    """This script's argument parser: ``SFTDataArguments``, TRL's ``SFTConfig`` and ``ModelConfig``."""
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser((SFTDataArguments, SFTConfig, ModelConfig))


if __name__ == "__main__":
    from ltenv.train.launch import LaunchConfigError, check_launch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parsed = make_parser().parse_args_and_config()
    try:
        check_launch(parsed[1])
    except LaunchConfigError as e:
        raise SystemExit(str(e)) from None
    main(*parsed)
