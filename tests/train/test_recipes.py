"""Training recipes launch: every script config under ``training/configs`` parses with its script's own parser
(values checked), every accelerate config goes through accelerate's own launcher code and agrees with the
recipes (precision, ZeRO stage, offload, FSDP wrapping of the recipes' Qwen decoder layers), and ZeRO-3 runs
DMPO on CPU where DeepSpeed is installed (the ``deepspeed`` extra)."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("trl")
pytest.importorskip("accelerate")

from ltenv.train.launch import check_launch, launch_problems

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training" / "configs"
SCRIPTS = {"sft": ROOT / "training" / "sft.py", "dmpo": ROOT / "training" / "dmpo.py"}

# The accelerate configs we ship: (distributed type, processes, mixed precision, for GPU recipes?)
ACCELERATE = {
    "cpu": ("NO", 1, "no", False),
    "cpu_2proc": ("MULTI_GPU", 2, "no", False),
    "single_gpu": ("NO", 1, "bf16", True),
    "multi_gpu": ("MULTI_GPU", 8, "bf16", True),
    "zero2": ("DEEPSPEED", 8, "bf16", True),
    "zero3": ("DEEPSPEED", 8, "bf16", True),
    "fsdp": ("FSDP", 8, "bf16", True),
}
# Hub models the GPU recipes name -> (transformers model_type, decoder layer class FSDP must wrap, context).
MODELS = {
    "Qwen/Qwen3-4B-Instruct-2507": ("qwen3", "Qwen3DecoderLayer", 262144),
    "Qwen/Qwen2.5-Coder-32B-Instruct": ("qwen2", "Qwen2DecoderLayer", 32768),
}


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def _kind(name: str) -> str:
    if "distributed_type" in _load(name):
        return "accelerate"
    script = name.split("_", 1)[0]
    assert script in SCRIPTS, f"training/configs/{name}.yaml: neither an accelerate config nor sft_*/dmpo_*"
    return script


ALL = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
RECIPES = [n for n in ALL if _kind(n) != "accelerate"]
GPU_RECIPES = [n for n in RECIPES if _load(n).get("bf16")]
CPU_RECIPES = [n for n in RECIPES if n not in GPU_RECIPES]


@functools.cache
def _script(kind: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"ltenv_training_{kind}_recipes", SCRIPTS[kind])
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _same(got: Any, value: Any) -> bool:
    if value == "none" and isinstance(got, list):  # report_to: none
        return got in ([], ["none"])
    return got == value or getattr(got, "value", None) == value or str(got) == str(value)


def parse_recipe(name: str) -> tuple[Any, Any, Any]:
    """(script args, training args, model args) from the script's own parser, as ``--config`` gives them."""
    import torch

    argv = ["--config", str(CONFIGS / f"{name}.yaml")]
    if _load(name).get("bf16") and not torch.cuda.is_available():
        argv += ["--use_cpu", "true"]  # transformers refuses bf16 without a GPU unless told it is a CPU run
    return _script(_kind(name)).make_parser().parse_args_and_config(args=argv)


def launch_env(config: str, *flags: str) -> tuple[Any, dict[str, str]]:
    """What ``accelerate launch --config_file <config> [flags] script`` resolves and exports, through
    accelerate's own launcher code (the same steps as ``accelerate.commands.launch.launch_command``)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import (
        prepare_deepspeed_cmd_env,
        prepare_multi_gpu_env,
        prepare_simple_launcher_cmd_env,
    )

    argv = ["--config_file", str(CONFIGS / f"{config}.yaml"), *flags, str(SCRIPTS["dmpo"])]
    args, defaults, mp_from_config = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:
        fields = [*defaults.deepspeed_config, *(["mixed_precision"] if mp_from_config else [])]
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.multi_gpu or args.use_fsdp:
        env = prepare_multi_gpu_env(args)
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    return args, {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


def test_every_config_is_a_recipe_or_an_accelerate_config() -> None:
    assert set(ACCELERATE) == {n for n in ALL if _kind(n) == "accelerate"}
    assert {"sft_qwen3_4b_instruct_2507", "dmpo_qwen3_4b_instruct_2507"} <= set(GPU_RECIPES)
    assert {"sft_qwen25_coder_32b_instruct", "dmpo_qwen25_coder_32b_instruct"} <= set(GPU_RECIPES)
    assert {"sft_tiny", "dmpo_tiny", "sft_demo", "dmpo_demo"} <= set(CPU_RECIPES)


def test_launch_commands_in_comments_name_existing_files() -> None:
    for name in ALL:
        text = (CONFIGS / f"{name}.yaml").read_text()
        for ref in re.findall(r"training/(configs/[\w.-]+\.yaml|\w+\.py)", text):
            assert (ROOT / "training" / ref).is_file(), f"training/configs/{name}.yaml mentions missing {ref}"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_parses_with_its_script(name: str) -> None:
    """TrlParser rejects unknown keys ('Unknown arguments from config file'), so a renamed or removed
    option (warmup_ratio in transformers 5) fails here rather than on the cluster."""
    script_args, args, model = parse_recipe(name)
    raw = _load(name)
    for key, value in raw.items():  # every YAML value arrives (ModelConfig, ScriptArguments or the config)
        if key == "use_cpu":
            continue
        got = getattr(next(o for o in (script_args, args, model) if hasattr(o, key)), key)
        assert _same(got, value), (name, key, got, value)
    assert args.max_length
    if not name.endswith("_demo"):  # `ltenv demo` passes its model and data on the command line
        assert model.model_name_or_path and (name.startswith("dmpo_") or script_args.train_files)
    if name.startswith("dmpo_"):
        assert args.gamma == 0.7 and args.phi == "paper" and args.beta == 0.1
    assert (
        check_launch(args, environ={}) is None
    )  # a plain `python training/x.py` has nothing to disagree with


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_gpu_recipes_are_sized_for_long_trajectories(name: str) -> None:
    _, args, model = parse_recipe(name)
    context = MODELS[model.model_name_or_path][2]
    assert args.bf16 and model.dtype == "bfloat16" and "use_cpu" not in _load(name)
    assert args.activation_checkpointing and args.gradient_checkpointing
    assert 24576 <= args.max_length <= context  # ~30 Terminus turns (see the recipes' estimate)
    assert args.per_device_train_batch_size == 1 and args.gradient_accumulation_steps >= 8
    assert 0 < args.warmup_steps < 1  # a fraction of the run, not 0 steps
    if not (model.attn_implementation or "").startswith("flash_attention"):
        assert not getattr(args, "padding_free", False) and not getattr(args, "packing", False)
    if "32b" in name:
        assert model.use_peft and model.lora_r == 64 and len(model.lora_target_modules) == 7
    else:
        assert args.max_length == 32768 and not model.use_peft
    if name.startswith("dmpo_") and model.use_peft:
        assert args.precompute_ref_log_probs  # one reference pass up front, no per-step second forward


@pytest.mark.parametrize("config", sorted(ACCELERATE))
def test_accelerate_config_goes_through_accelerate(config: str) -> None:
    kind, processes, precision, _ = ACCELERATE[config]
    args, env = launch_env(config)
    assert (args.num_processes, env["ACCELERATE_MIXED_PRECISION"]) == (processes, precision)
    raw = _load(config)
    assert raw["distributed_type"] == kind
    if kind == "DEEPSPEED":
        ds = raw["deepspeed_config"]
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(ds["zero_stage"]) == config[-1]
        assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] in ("none", "cpu", "nvme")
        assert env["ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"] in ("none", "cpu", "nvme")
        # 'auto': the recipe's gradient_accumulation_steps / max_grad_norm are the only values in play
        assert ds["gradient_accumulation_steps"] == ds["gradient_clipping"] == "auto"
        if ds["zero_stage"] == 3:  # output_dir must be a loadable model, not ZeRO shards
            assert env["ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL"] == "true"
    if kind == "FSDP":
        assert env["FSDP_VERSION"] == "2" and env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"


def test_recipes_agree_with_their_accelerate_configs() -> None:
    deepspeed_installed = importlib.util.find_spec("deepspeed") is not None
    envs = {c: launch_env(c)[1] for c in ACCELERATE}
    for config, (kind, _, _, for_gpu) in ACCELERATE.items():
        for name in GPU_RECIPES if for_gpu else CPU_RECIPES:
            problems = launch_problems(parse_recipe(name)[1], envs[config])
            if kind == "DEEPSPEED" and not deepspeed_installed:
                assert problems and "pip install -e '.[hf,deepspeed]'" in problems[0], (config, name)
                problems = problems[1:]
            assert problems == [], (config, name, problems)

    # A CPU recipe under a bf16 launcher is refused before anything is loaded, with the fix
    problems = launch_problems(parse_recipe("dmpo_tiny")[1], envs["zero3"])
    assert any("mixed_precision=bf16 but the recipe trains in no" in p for p in problems), problems
    assert any("--mixed_precision no" in p for p in problems)
    assert launch_problems(
        parse_recipe("dmpo_tiny")[1], launch_env("zero3", "--mixed_precision", "no")[1]
    ) == ([] if deepspeed_installed else problems[:1])
    # FSDP's activation checkpointing and the trainer's together are refused by transformers
    fsdp_ckpt = {**envs["fsdp"], "FSDP_ACTIVATION_CHECKPOINTING": "true"}
    problems = launch_problems(parse_recipe("sft_qwen3_4b_instruct_2507")[1], fsdp_ckpt)
    assert any("--activation_checkpointing false" in p for p in problems), problems


def test_scripts_stop_on_a_mismatched_launch_before_loading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both scripts run the check first: nothing named in the recipe (model, data) needs to exist. (A bf16
    DDP launcher: a DeepSpeed one would make the parsed arguments set up DeepSpeed in this process.)"""
    env = launch_env("multi_gpu", "--num_processes", "2")[1]
    missing = str(tmp_path / "missing")
    fix = "pass `--mixed_precision no` to accelerate launch"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit, match=fix):
        _script("dmpo").main(
            [
                "--config",
                str(CONFIGS / "dmpo_tiny.yaml"),
                "--dataset_path",
                missing,
                "--model_name_or_path",
                missing,
            ]
        )
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS["sft"]), "--config", str(CONFIGS / "sft_tiny.yaml"),
         "--model_name_or_path", missing, "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.returncode == 1 and fix in proc.stderr, proc.stderr[-2000:]


def test_fsdp_wraps_each_decoder_layer_of_the_recipe_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsdp.yaml names no layer class: accelerate wraps the model's ``_no_split_modules``. Checked on tiny
    models of both recipe architectures (same classes as the hub models, built locally)."""
    import transformers
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from transformers import AutoConfig, AutoModelForCausalLM

    for key, value in launch_env("fsdp")[1].items():
        monkeypatch.setenv(key, value)
    plain = FullyShardedDataParallelPlugin()
    assert plain.fsdp_version == 2 and plain.transformer_cls_names_to_wrap is None
    used = {parse_recipe(n)[2].model_name_or_path for n in GPU_RECIPES}
    assert used == set(MODELS)
    for model_type, layer_class, _ in MODELS.values():
        assert hasattr(transformers, layer_class) or hasattr(
            importlib.import_module(f"transformers.models.{model_type}.modeling_{model_type}"), layer_class
        )
        config = AutoConfig.for_model(
            model_type, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, vocab_size=64,
        )  # fmt: skip
        model = AutoModelForCausalLM.from_config(config)
        plugin = FullyShardedDataParallelPlugin()  # as accelerate's fsdp2_prepare_model does:
        plugin.set_auto_wrap_policy(model)
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        wrapped = [type(m).__name__ for m in model.modules() if policy(m)]
        assert wrapped == [layer_class] * 3, (model_type, wrapped)


@pytest.mark.slow
def test_zero3_runs_dmpo_on_cpu(tiny_model: Path, tmp_path: Path) -> None:
    """The README command: ZeRO-3 (training/configs/zero3.yaml) + dmpo_tiny.yaml, two CPU processes over
    gloo, through DeepSpeed's CPU accelerator; the gathered 16-bit checkpoint is a trained, loadable model."""
    pytest.importorskip("deepspeed")
    import json

    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).parent))
    from test_dmpo import pair

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(pair(k, 1 + k % 3, 1 + (k + 1) % 2)) + "\n" for k in range(8)))
    out = tmp_path / "ckpt"
    with socket.socket() as sock:  # a free rendezvous port: the test may run next to other launches
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(CONFIGS / "zero3.yaml"),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(port),
        str(SCRIPTS["dmpo"]), "--config", str(CONFIGS / "dmpo_tiny.yaml"),
        "--model_name_or_path", str(tiny_model), "--dataset_path", str(data), "--output_dir", str(out),
        "--max_steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert log.count("2 process(es) (DistributedType.DEEPSPEED)") == 2, log[-4000:]
    assert "rewards/margins" in log
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert {k: v.shape for k, v in before.items()} == {k: v.shape for k, v in after.items()}  # gathered
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
