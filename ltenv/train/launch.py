"""Launch checks for the training scripts: the ``accelerate`` config in effect against the recipe's arguments.

A recipe (``training/configs/sft_*.yaml``, ``dmpo_*.yaml``) and an accelerate config (``zero3.yaml``,
``fsdp.yaml``...) are picked separately. Some pairs fail only after the model and data are loaded -- DeepSpeed
refuses a ZeRO config whose bf16 differs from the trainer's -- or do not fail at all and train differently
from what the recipe says. :func:`check_launch` runs before anything is loaded and names what to change.

    from ltenv.train.launch import check_launch
    check_launch(training_args)  # raises LaunchConfigError listing every mismatch
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["LaunchConfigError", "check_launch", "launch_problems"]


class LaunchConfigError(ValueError):
    """The accelerate launch configuration and the training arguments disagree."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def launch_problems(args: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every mismatch between training ``args`` (a ``TrainingArguments``) and the launcher's environment.

    ``environ`` defaults to ``os.environ``: ``accelerate launch`` exports its config there
    (``ACCELERATE_MIXED_PRECISION``, ``ACCELERATE_USE_DEEPSPEED``...). A plain ``python training/x.py`` has
    none of these and has nothing to check.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    deepspeed = _truthy(env.get("ACCELERATE_USE_DEEPSPEED"))
    fsdp = _truthy(env.get("ACCELERATE_USE_FSDP"))
    launcher_mp = (env.get("ACCELERATE_MIXED_PRECISION") or "").lower() or None
    args_mp = "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "no"

    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        problems.append(
            "the accelerate config uses DeepSpeed but it is not installed: "
            "pip install -e '.[hf,deepspeed]' (DS_BUILD_OPS=0 builds ops just in time)"
        )
    # With DeepSpeed the launcher's precision becomes the ZeRO config's bf16/fp16 section, and transformers
    # rejects a trainer that disagrees ("ds bf16.enabled=True vs hf bf16|bf16_full_eval=False") only after
    # loading model and data. Under DDP and FSDP nothing fails: a recipe's bf16/fp16 wins, and a recipe
    # without either takes the launcher's, so the run would not train in the precision one of them states.
    # A launcher without mixed precision ('no', the default) leaves the choice to the recipe: no conflict.
    if launcher_mp in ("bf16", "fp16") and launcher_mp != args_mp:
        kind = "DeepSpeed" if deepspeed else "FSDP" if fsdp else "the launcher"
        problems.append(
            f"{kind}: the accelerate config has mixed_precision={launcher_mp} but the recipe trains in "
            f"{args_mp} (bf16={getattr(args, 'bf16', False)}, fp16={getattr(args, 'fp16', False)}); pass "
            f"`--mixed_precision {args_mp}` to accelerate launch, or `--{launcher_mp} true` to the script"
        )
    # transformers refuses both at trainer start (after loading the model): FSDP's own checkpointing avoids
    # the redundant all-gather that the trainer's costs under FSDP, so keep that one.
    if (
        fsdp
        and _truthy(env.get("FSDP_ACTIVATION_CHECKPOINTING"))
        and getattr(args, "activation_checkpointing", False)
    ):
        problems.append(
            "FSDP: the accelerate config has fsdp_activation_checkpointing: true and the recipe "
            "activation_checkpointing: true; pass `--activation_checkpointing false` to the script"
        )
    return problems


def check_launch(args: Any, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`LaunchConfigError` listing :func:`launch_problems`, if there are any."""
    problems = launch_problems(args, environ)
    if problems:
        raise LaunchConfigError(
            "the accelerate config and the training recipe disagree:\n  - " + "\n  - ".join(problems)
        )
