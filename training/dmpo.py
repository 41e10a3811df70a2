"""DMPO (Direct Multi-turn Preference Optimization) on multi-turn preference pairs from ``ltenv export pairs``.

    accelerate launch [--config_file training/configs/<accelerate>.yaml] training/dmpo.py \\
        --config training/configs/dmpo_tiny.yaml [--dataset_path pairs.jsonl ...] [--use_peft] [...]

Arguments: ``ScriptArguments`` below, :class:`ltenv.train.dmpo.DMPOConfig` (TRL's ``DPOConfig`` + ``gamma``,
``phi``, ``on_bad_row``, ``truncation``...) and TRL's ``ModelConfig`` (``model_name_or_path``, ``dtype``, ``use_peft``,
``lora_r``...); any of them in the YAML given by ``--config`` or on the command line (which wins).
Full fine-tuning saves a complete model + tokenizer in ``output_dir`` (``HFPolicy(output_dir)``); with
``--use_peft`` it saves the LoRA adapter + tokenizer (``HFPolicy(model_name_or_path, adapter=output_dir)``).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, concatenate_datasets
from trl import ModelConfig, TrlParser, get_peft_config

from ltenv.data import align_messages, read_dataset
from ltenv.train.dmpo import DMPOConfig, DMPOTrainer
from ltenv.train.launch import LaunchConfigError, check_launch

logger = logging.getLogger("training.dmpo")
PAIR_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass
class ScriptArguments:
    dataset_path: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Preference pairs from `ltenv export pairs` (.jsonl/.parquet); several are concatenated."
        },
    )
    eval_dataset_path: list[str] = field(
        default_factory=list, metadata={"help": "Held-out pairs (.jsonl/.parquet) for evaluation."}
    )
    eval_fraction: float = field(
        default=0.0,
        metadata={"help": "Hold out this fraction of the training pairs when no eval_dataset_path."},
    )


def load_pairs(paths: list[str]) -> Dataset:
    """Read and concatenate pair files, keeping the columns DMPO uses (metadata schemas may differ)."""
    parts = []
    for path in paths:
        ds = read_dataset(path)
        missing = [c for c in ("chosen", "rejected") if c not in ds.column_names]
        if missing:
            raise SystemExit(f"{path}: not a preference-pairs file (missing columns {missing})")
        parts.append(ds.select_columns([c for c in PAIR_COLUMNS if c in ds.column_names]))
    return concatenate_datasets(align_messages(parts, PAIR_COLUMNS)) if len(parts) > 1 else parts[0]


def make_parser() -> TrlParser:
    """This script's argument parser: ``ScriptArguments``, ``DMPOConfig``, ``ModelConfig``."""
    return TrlParser((ScriptArguments, DMPOConfig, ModelConfig))


def main(argv: list[str] | None = None) -> None:
    script_args, args, model_args = make_parser().parse_args_and_config(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        check_launch(args)
    except LaunchConfigError as e:
        raise SystemExit(str(e)) from None
    if not script_args.dataset_path:
        raise SystemExit(
            "--dataset_path is required (one or more .jsonl/.parquet files from `ltenv export pairs`)"
        )
    if not model_args.model_name_or_path:
        raise SystemExit("--model_name_or_path is required (a local model directory)")

    train = load_pairs(script_args.dataset_path)
    evaluation = load_pairs(script_args.eval_dataset_path) if script_args.eval_dataset_path else None
    if evaluation is None and script_args.eval_fraction > 0:
        split = train.train_test_split(test_size=script_args.eval_fraction, seed=args.seed)
        train, evaluation = split["train"], split["test"]

    init_kwargs = dict(args.model_init_kwargs or {})
    if model_args.dtype is not None:
        init_kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation is not None:
        init_kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    init_kwargs.setdefault("local_files_only", Path(model_args.model_name_or_path).is_dir())
    args.model_init_kwargs = init_kwargs

    trainer = DMPOTrainer(
        model_args.model_name_or_path,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        peft_config=get_peft_config(model_args),
    )
    for name, reasons in trainer.skipped_rows.items():
        logger.warning("skipped %d %s rows (first: %s)", len(reasons), name, reasons[0])
    logger.info(
        "DMPO: %d training pairs, %d process(es) (%s), beta=%s gamma=%s phi=%s",
        len(trainer.train_dataset),
        trainer.accelerator.num_processes,
        trainer.accelerator.distributed_type,
        args.beta,
        args.gamma,
        args.phi,
    )
    trainer.train()
    if evaluation is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
    trainer.save_model(args.output_dir)
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(args.output_dir)
        logger.info("saved %s to %s", "LoRA adapter" if model_args.use_peft else "model", args.output_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
