"""training/sft.py: assistant-only loss reaches TRL's SFTTrainer, SFT learns, accelerate launch works."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]
SFT_SCRIPT = ROOT / "training" / "sft.py"
CONFIGS = ROOT / "training" / "configs"
SAMPLE = CONFIGS / "sft_tiny_sample.jsonl"
PY = Path(sys.executable)

SYSTEM = "You are a terminal agent. Reply with one JSON object: analysis, plan, commands, task_complete."
WORDS = ["hello", "world", "alpha", "beta", "gamma", "delta", "pixel", "orbit"]
FILES = ["greeting", "notes", "result", "output", "answer", "data", "log", "report"]


def _reply(analysis: str, plan: str, keys: list[str], done: bool) -> str:
    cmds = [{"keystrokes": k, "duration": 0.1} for k in keys]
    return json.dumps({"analysis": analysis, "plan": plan, "commands": cmds, "task_complete": done})


def synthetic_conversations(n: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """``ltenv export sft``-shaped rows: 2-3 Terminus-style turns writing a word into a file."""
    rng = random.Random(seed)
    pairs = [(w, f) for w in WORDS for f in FILES]
    rng.shuffle(pairs)
    rows = []
    for k in range(n):
        word, name = pairs[k % len(pairs)]
        path = f"/app/{name}.txt"
        msgs = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Task: write '{word}' into {path}\n\nCurrent terminal state:\n$ "},
            {
                "role": "assistant",
                "content": _reply(
                    f"{path} does not exist.", f"Write {word} into it.", [f"echo '{word}' > {path}\n"], False
                ),
            },
            {"role": "user", "content": f"New Terminal Output:\n$ echo '{word}' > {path}\n$ "},
        ]
        if rng.random() < 0.5:
            msgs += [
                {"role": "assistant", "content": _reply("Written.", "Check it.", [f"cat {path}\n"], False)},
                {"role": "user", "content": f"New Terminal Output:\n$ cat {path}\n{word}\n$ "},
            ]
        msgs.append({"role": "assistant", "content": _reply(f"{path} contains {word}.", "Done.", [], True)})
        rows.append(
            {
                "messages": msgs,
                "task": f"write-{name}",
                "domain": "coding",
                "difficulty": "easy",
                "attempt": 0,
                "reward": 1.0,
                "run": "synthetic",
                "policy": "oracle",
                "model": None,
                "scaffold": "terminus",
                "turns": sum(m["role"] == "assistant" for m in msgs),
            }
        )
    return rows


def _write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft_module() -> Any:
    spec = importlib.util.spec_from_file_location("ltenv_training_sft", SFT_SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _args(sft: Any, model: Path, out: Path, train: list[Path], **kw: Any) -> tuple[Any, Any, Any]:
    from trl import ModelConfig, SFTConfig

    data_kw = {k: kw.pop(k) for k in ("eval_files", "eval_fraction", "truncation") if k in kw}
    data = sft.SFTDataArguments(train_files=[str(p) for p in train], **data_kw)
    config = SFTConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        dataloader_num_workers=0,
        seed=0,
        **{"per_device_train_batch_size": 8, "max_steps": 1, "learning_rate": 3e-3, **kw},
    )
    return data, config, ModelConfig(model_name_or_path=str(model), dtype="float32")


def test_sample_data_is_the_synthetic_export() -> None:
    """The README/sft_tiny.yaml sample is this generator's output (regenerate it if the generator changes)."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert rows == synthetic_conversations(16, seed=1)


def test_assistant_only_mask_reaches_the_trainer(tiny_model: Path, tmp_path: Path) -> None:
    from ltenv.train import build_chat

    sft = _sft_module()
    rows = synthetic_conversations(6)
    bad = json.loads(json.dumps(rows[0]))
    bad["messages"][2]["content"] = ""  # empty assistant turn: skipped
    long = json.loads(json.dumps(rows[1]))
    long["messages"][1]["content"] += "x " * 2000  # first turn cannot fit in max_length: skipped
    train = _write_jsonl([*rows, bad, long], tmp_path / "train.jsonl")
    # max_length cuts the 3-turn conversations after their 2nd turn (whole turns only, the latest dropped)
    trainer = sft.build_trainer(
        *_args(sft, tiny_model, tmp_path / "out", [train], max_length=330, truncation="drop_latest")
    )
    stats = trainer.data_stats["train"]
    assert stats["rows"] == 8 and stats["kept"] == 6
    assert sum(v for k, v in stats.items() if k.startswith("skipped:")) == 2
    tok = trainer.processing_class
    expected = [build_chat(tok, r["messages"], max_length=330) for r in rows]
    assert stats["truncated_rows"] == sum(e.truncated_turns > 0 for e in expected) > 0
    assert trainer.train_dataset.column_names == ["input_ids", "labels"]

    examples = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    batch = trainer.data_collator(examples)
    assert batch["labels"].shape == batch["input_ids"].shape
    for r, exp in enumerate(expected):
        n = len(exp.input_ids)
        assert batch["input_ids"][r, :n].tolist() == exp.input_ids
        assert batch["labels"][r, :n].tolist() == exp.labels  # -100 exactly on non-assistant tokens
        assert set(batch["labels"][r, n:].tolist()) <= {-100}
        assert batch["attention_mask"][r].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        decoded = tok.decode([i for i, lab in zip(exp.input_ids, exp.labels, strict=True) if lab != -100])
        turns = [m["content"] + "<|im_end|>" for m in rows[r]["messages"] if m["role"] == "assistant"]
        assert decoded == "".join(turns[: exp.n_turns])
    # the loss the trainer computes is the mean over exactly those tokens
    import torch

    model = trainer.model
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")})
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), shift.flatten(), reduction="none")
    manual = nll[shift.flatten() != -100].mean()
    assert torch.allclose(out.loss, manual, atol=1e-5)


@pytest.mark.slow
def test_sft_lowers_held_out_assistant_loss(tiny_model: Path, tmp_path: Path, request: Any) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend on a shared 2-core machine (~4x slower)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    sft = _sft_module()
    rows = synthetic_conversations(64)
    train = _write_jsonl(rows[:48], tmp_path / "train.jsonl")
    held = _write_jsonl(rows[48:], tmp_path / "held.jsonl")
    trainer = sft.build_trainer(
        *_args(
            sft,
            tiny_model,
            tmp_path / "out",
            [train],
            eval_files=[str(held)],
            max_steps=150,
            per_device_train_batch_size=4,
            learning_rate=3e-3,
            per_device_eval_batch_size=16,
            lr_scheduler_type="constant",
            logging_steps=50,
        )
    )
    assert len(trainer.eval_dataset) == 16
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    # random init: ~ln(vocab) = 6.2 nats; the JSON replies are highly predictable from the prompts
    assert before > 5.0
    assert after < 0.4 * before, (before, after)


def _launch(config: str, args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    accelerate = PY.parent / "accelerate"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [str(accelerate), "launch", "--config_file", str(CONFIGS / config), str(SFT_SCRIPT), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _generates(policy: Any, fixture_task: Any) -> str:
    from ltenv.agents import EpisodeContext

    try:
        msgs = synthetic_conversations(1)[0]["messages"][:2]
        text = policy.complete(msgs, EpisodeContext(task=fixture_task("write-greeting"))).text
    finally:
        policy.close()
    assert isinstance(text, str)
    return text


@pytest.mark.slow
def test_accelerate_launch_full_finetune_loads_in_hfpolicy(
    tiny_model: Path, tmp_path: Path, fixture_task: Any
) -> None:
    """The README command with sft_tiny.yaml (model/output overridden), as a real subprocess."""
    from ltenv.agents import HFPolicy

    out = tmp_path / "sft"
    data = _write_jsonl(synthetic_conversations(12, seed=3), tmp_path / "export.jsonl")
    _launch(
        "cpu.yaml",
        [
            "--config",
            str(CONFIGS / "sft_tiny.yaml"),
            "--model_name_or_path",
            str(tiny_model),
            "--train_files",
            str(data),
            "--output_dir",
            str(out),
            "--max_steps",
            "4",
        ],
        tmp_path,
    )
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["train"]["rows"] == 9 and stats["train"]["kept"] == 9 and stats["eval"]["kept"] == 3
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    assert json.loads((out / "eval_results.json").read_text())["eval_loss"] > 0
    _generates(HFPolicy(out, max_new_tokens=8, temperature=0), fixture_task)


@pytest.mark.slow
def test_accelerate_launch_two_processes_lora(tiny_model: Path, tmp_path: Path, fixture_task: Any) -> None:
    import torch.distributed as dist

    if not dist.is_gloo_available():
        pytest.skip("torch.distributed has no gloo backend")
    from ltenv.agents import HFPolicy

    out = tmp_path / "lora"
    data = _write_jsonl(synthetic_conversations(16, seed=4), tmp_path / "export.jsonl")
    proc = _launch(
        "cpu_2proc.yaml",
        [
            "--model_name_or_path",
            str(tiny_model),
            "--train_files",
            str(data),
            "--output_dir",
            str(out),
            "--use_cpu",
            "--report_to",
            "none",
            "--max_steps",
            "3",
            "--per_device_train_batch_size",
            "2",
            "--save_strategy",
            "no",
            "--use_peft",
            "--lora_r",
            "4",
            "--lora_alpha",
            "8",
            "--lora_target_modules",
            "q_proj",
            "v_proj",
            "--merge_adapter",
        ],
        tmp_path,
    )
    assert "train: 16 conversations, 16 kept, 0 skipped" in proc.stderr + proc.stdout
    log = proc.stderr + proc.stdout
    assert log.count("2 process(es) (DistributedType.MULTI_CPU)") == 2, log[-4000:]  # really two ranks
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    _generates(HFPolicy(tiny_model, adapter=out, max_new_tokens=8, temperature=0), fixture_task)
    merged = out / "merged"
    assert (merged / "model.safetensors").exists()
    _generates(HFPolicy(merged, max_new_tokens=8, temperature=0), fixture_task)
    shutil.rmtree(out)
