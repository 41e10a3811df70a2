"""DMPO correctness: loss math, equality with TRL's DPO on single-turn pairs, a hand computation of the
multi-turn formula, masking, bad data, learning, and a 2-process accelerate launch. Tiny local models only."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402

from ltenv.train.dmpo import (  # noqa: E402
    DMPOConfig,
    DMPODataError,
    DMPOTrainer,
    dmpo_loss,
    dmpo_reference_loss,
    turn_weights,
    weighted_logps,
)

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = {"role": "system", "content": "You are a terminal agent."}


def conversation(n_turns: int, good: bool, k: int) -> list[dict[str, str]]:
    msgs = []
    for t in range(n_turns):
        text = f"ls -la /app && cat seed.txt # {k}.{t}" if good else f"rm -rf /tmp/x; echo oops {k}.{t}"
        msgs.append({"role": "assistant", "content": text})
        if t < n_turns - 1:
            msgs.append({"role": "user", "content": f"New Terminal Output: file{k}_{t}.txt done"})
    return msgs


def pair(k: int, chosen_turns: int, rejected_turns: int) -> dict:
    return {
        "prompt": [SYSTEM, {"role": "user", "content": f"Task {k}: list the files in /app"}],
        "chosen": conversation(chosen_turns, True, k),
        "rejected": conversation(rejected_turns, False, k),
    }


def config(tmp_path: Path, **kw) -> DMPOConfig:
    base = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        max_length=512,
        activation_checkpointing=False,
        bf16=False,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return DMPOConfig(**base)


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """Move the policy away from the reference, identically for every model built from the same weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


# ------------------------------------------------------------------------------------------- loss math


def test_turn_weights_match_the_formulas() -> None:
    g = 0.7
    for T in (1, 2, 3, 5):
        paper = turn_weights(T, g, "paper")
        code = turn_weights(T, g, "code")
        for t in range(T):
            expect = (1 - g ** (T - t)) / (1 - g**T)
            assert paper[t] == pytest.approx(expect)
            assert code[t] == pytest.approx(g**t * expect)
    assert turn_weights(1, g, "paper") == [1.0] and turn_weights(1, g, "code") == [1.0]
    assert turn_weights(4, 1.0) == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert turn_weights(4, 0.999999) == pytest.approx([1.0, 0.75, 0.5, 0.25], abs=1e-5)
    with pytest.raises(ValueError):
        turn_weights(2, 0.7, "nope")
    with pytest.raises(ValueError):
        DMPOConfig(output_dir="/tmp/x", phi="nope", report_to=[])


def test_loss_function_is_the_sigmoid_formula() -> None:
    c, r, rc, rr = (torch.tensor([x, -1.0]) for x in (-3.0, -5.0, -4.0, -4.5))
    losses, cr, rj = dmpo_loss(c, r, rc, rr, beta=0.1)
    z = 0.1 * ((c - rc) - (r - rr))
    assert torch.allclose(losses, -torch.nn.functional.logsigmoid(z))
    assert torch.allclose(cr - rj, z)
    assert dmpo_reference_loss([1.0, -2.0], [0.5], beta=0.1, gamma=0.7) == pytest.approx(
        math.log1p(math.exp(-0.1 * (1.0 + turn_weights(2, 0.7)[1] * -2.0 - 0.5)))
    )


# ------------------------------------------------------------------------------------------- vs TRL DPO


def test_single_turn_loss_equals_trl_dpo_sigmoid_loss(tiny_model: Path, tmp_path: Path) -> None:
    from trl import DPOConfig, DPOTrainer

    rows = [pair(0, 1, 1), pair(1, 1, 1), pair(2, 1, 1)]
    rows[1]["chosen"][0]["content"] += " and a longer reply to exercise padding"
    ds = Dataset.from_list(rows)
    dmpo = DMPOTrainer(tiny_model, args=config(tmp_path, phi="code"), train_dataset=ds)
    dpo_args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        report_to=[],
        use_cpu=True,
        max_length=512,
        activation_checkpointing=False,
        bf16=False,
    )
    dpo = DPOTrainer(str(tiny_model), args=dpo_args, train_dataset=ds)
    perturb(dmpo.model)
    perturb(dpo.model)

    batch = dmpo.data_collator([dmpo.train_dataset[i] for i in range(3)])
    assert set(batch["turn_weights"][batch["labels"] != -100].tolist()) == {1.0}  # T = 1: φ = 1
    dpo_batch = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "completion_mask": (batch["labels"] != -100).long(),
    }
    with torch.no_grad():
        loss_dmpo = dmpo.compute_loss(dmpo.model, batch)
        loss_dpo = dpo.compute_loss(dpo.model, dpo_batch)
    assert abs(loss_dmpo.item() - math.log(2)) > 1e-3  # policy != reference: a non-trivial loss
    assert loss_dmpo.item() == pytest.approx(loss_dpo.item(), abs=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"):
        mode = "train" if dmpo.model.training else "eval"
        assert dmpo._metrics[mode][key][-1] == pytest.approx(dpo._metrics[mode][key][-1], abs=1e-4)


# ------------------------------------------------------------------------------------------- hand computation


def _turn_logps_by_hand(
    model: torch.nn.Module, tokenizer, prompt: list[dict], turns: list[dict]
) -> list[float]:
    """log p(a_t | s_t) per assistant turn: one plain forward per turn on exactly s_t + a_t, no build_chat."""
    return [t.sum().item() for t in _turn_token_logps_by_hand(model, tokenizer, prompt, turns)]


def _turn_token_logps_by_hand(
    model: torch.nn.Module, tokenizer, prompt: list[dict], turns: list[dict]
) -> list[torch.Tensor]:
    """The log-probs of a_t's tokens given s_t and the tokens before them, per assistant turn."""
    msgs = prompt + turns
    out = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        s_t = tokenizer.apply_chat_template(
            msgs[:i], tokenize=True, add_generation_prompt=True, return_dict=True
        )
        full = tokenizer.apply_chat_template(msgs[: i + 1], tokenize=True, return_dict=True)
        s_ids, f_ids = list(s_t["input_ids"]), list(full["input_ids"])
        assert f_ids[: len(s_ids)] == s_ids
        a_t = f_ids[len(s_ids) :]
        # the template closes the turn with "<|im_end|>\n": the reply is the content and <|im_end|>
        a_t = a_t[: a_t.index(tokenizer.convert_tokens_to_ids("<|im_end|>")) + 1]
        ids = torch.tensor([s_ids + a_t])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
        out.append(logp[len(s_ids) - 1 :])
    return out


@pytest.mark.parametrize("phi", ["paper", "code"])
def test_three_turn_loss_matches_hand_computation(tiny_model: Path, tmp_path: Path, phi: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    row = pair(7, 3, 2)
    ds = Dataset.from_list([row])
    trainer = DMPOTrainer(tiny_model, args=config(tmp_path, phi=phi, beta=0.5), train_dataset=ds)
    perturb(trainer.model, seed=3, scale=0.1)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()

    tok = AutoTokenizer.from_pretrained(tiny_model)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    perturb(policy, seed=3, scale=0.1)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ratios = {}
    for side in ("chosen", "rejected"):
        pol = _turn_logps_by_hand(policy, tok, row["prompt"], row[side])
        rf = _turn_logps_by_hand(ref, tok, row["prompt"], row[side])
        ratios[side] = [p - r for p, r in zip(pol, rf, strict=True)]
    assert len(ratios["chosen"]) == 3 and len(ratios["rejected"]) == 2

    def phi_by_hand(t: int, T: int, g: float = 0.7) -> float:
        w = (1 - g ** (T - t)) / (1 - g**T)
        return w * g**t if phi == "code" else w

    def weighted(xs: list[float]) -> float:
        return sum(phi_by_hand(t, len(xs)) * x for t, x in enumerate(xs))

    z = 0.5 * (weighted(ratios["chosen"]) - weighted(ratios["rejected"]))
    expect = -math.log(1 / (1 + math.exp(-z)))
    assert expect == pytest.approx(
        dmpo_reference_loss(ratios["chosen"], ratios["rejected"], beta=0.5, gamma=0.7, phi=phi)
    )
    assert abs(expect - math.log(2)) > 1e-3
    # float32 forward passes of differently padded batches: agreement to a few parts in a million, so the
    # tolerance is relative (the loss grows with the sequences' lengths, which follow the tokenizer)
    assert loss == pytest.approx(expect, rel=5e-5, abs=1e-5)
    # plain DPO (unweighted sums) would give a different number: the φ weighting is really applied
    plain = dmpo_reference_loss(
        ratios["chosen"], ratios["rejected"], beta=0.5, gamma=1.0 - 1e-12, phi="paper"
    )
    assert abs(plain - expect) > 100 * 5e-5 * expect  # far outside the tolerance above


# ------------------------------------------------------------------------------------------- masking


def test_labels_mask_exactly_prompt_and_observation_tokens(tiny_model: Path, tmp_path: Path) -> None:
    rows = [pair(1, 3, 2), pair(2, 1, 3)]
    trainer = DMPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list(rows))
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    sides = [(r, "chosen") for r in rows] + [(r, "rejected") for r in rows]
    for i, (row, side) in enumerate(sides):
        msgs = row["prompt"] + row[side]
        ref = tok.apply_chat_template(
            msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        n = len(ref["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == list(ref["input_ids"])
        trained = (batch["labels"][i, :n] != -100).long().tolist()
        assert trained == list(ref["assistant_masks"])  # the template's own assistant (generation) spans
        assert (batch["labels"][i, n:] == -100).all() and (batch["attention_mask"][i, n:] == 0).all()
        assert ((batch["turn_weights"][i] != 0) == (batch["labels"][i] != -100)).all()
        text = tok.decode([t for t in batch["labels"][i].tolist() if t != -100])
        for m in row[side]:
            assert (m["content"] in text) == (m["role"] == "assistant")


def test_observation_text_gets_no_gradient(tiny_model: Path, tmp_path: Path) -> None:
    """d loss / d logits is exactly zero where the next token is prompt or observation, whatever its text."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    perturb(model)
    a, b = pair(4, 3, 2), pair(4, 3, 2)
    b["chosen"][1]["content"] = (
        "New Terminal Output: something entirely different and much longer than before"
    )
    b["prompt"][1]["content"] = "Task 4: another prompt text"
    trainer = DMPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list([a, b]))
    weights_on_assistant = []
    for i in range(2):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits.retain_grad()
        per_token = torch.log_softmax(logits[:, :-1], -1).gather(2, batch["input_ids"][:, 1:, None])[..., 0]
        logps = weighted_logps(per_token, batch["turn_weights"])
        loss = dmpo_loss(logps[:1], logps[1:], logps[:1].detach() + 0.3, logps[1:].detach(), 0.1)[0].sum()
        loss.backward()
        masked = batch["labels"][:, 1:] == -100
        grad = logits.grad[:, :-1].abs().sum(-1)
        assert (grad[masked] == 0).all()
        assert (grad[~masked] > 0).all()
        w = batch["turn_weights"][batch["labels"] != -100]
        weights_on_assistant.append(w.tolist())
    assert weights_on_assistant[0] == weights_on_assistant[1]  # observation/prompt text changes no weight


# ------------------------------------------------------------------------------------------- reference sources


def test_precomputed_reference_equals_on_the_fly(tiny_model: Path, tmp_path: Path) -> None:
    ds = Dataset.from_list([pair(k, 1 + k % 3, 1 + (k + 1) % 3) for k in range(4)])
    pre = DMPOTrainer(
        tiny_model, args=config(tmp_path / "a", precompute_ref_log_probs=True), train_dataset=ds
    )
    live = DMPOTrainer(tiny_model, args=config(tmp_path / "b"), train_dataset=ds)
    assert pre.ref_model is None and "ref_chosen_logps" in pre.train_dataset.column_names
    perturb(pre.model)
    perturb(live.model)
    rows = [pre.train_dataset[i] for i in range(4)]
    with torch.no_grad():
        a = pre.compute_loss(pre.model, pre.data_collator(rows))
        b = live.compute_loss(live.model, live.data_collator(rows))
    assert a.item() == pytest.approx(b.item(), abs=1e-5)


def test_lora_reference_is_the_adapter_disabled_base(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig

    ds = Dataset.from_list([pair(k, 2, 1) for k in range(4)])
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    args = config(tmp_path, max_steps=5, learning_rate=5e-3, logging_steps=1)
    trainer = DMPOTrainer(tiny_model, args=args, train_dataset=ds, peft_config=lora)
    assert trainer.ref_model is None
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    with torch.no_grad():
        assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(math.log(2), abs=1e-6)
    trainer.train()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
    assert math.isfinite(loss) and loss < math.log(2)


# ------------------------------------------------------------------------------------------- bad data


def test_prompt_mismatch_is_an_error_naming_the_row(tiny_model: Path, tmp_path: Path) -> None:
    ok = pair(0, 1, 1)
    full = {  # TRL's implicit-prompt format: the prompt is what precedes the first assistant turn
        "chosen": ok["prompt"] + ok["chosen"],
        "rejected": [SYSTEM, {"role": "user", "content": "a different task"}] + ok["rejected"],
    }
    good = {"chosen": ok["prompt"] + ok["chosen"], "rejected": ok["prompt"] + ok["rejected"]}
    with pytest.raises(DMPODataError, match=r"row 1: chosen and rejected do not share the prompt"):
        DMPOTrainer(tiny_model, args=config(tmp_path), train_dataset=Dataset.from_list([good, full]))


def test_bad_rows_are_counted_skips_or_errors(tiny_model: Path, tmp_path: Path) -> None:
    empty = pair(1, 2, 1)
    empty["chosen"][2]["content"] = ""
    long = pair(2, 1, 1)
    long["prompt"][1]["content"] = "cat /app/seed.txt " * 200  # the prompt alone exceeds max_length
    rows = [pair(0, 2, 1), empty, long, pair(3, 1, 2)]
    ds = Dataset.from_list(rows)
    trainer = DMPOTrainer(
        tiny_model, args=config(tmp_path, max_length=256, max_steps=2, logging_steps=1), train_dataset=ds
    )
    reasons = trainer.skipped_rows["train"]
    assert len(reasons) == 2 and len(trainer.train_dataset) == 2
    assert reasons[0].startswith("row 1: chosen") and reasons[1].startswith("row 2:")
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)

    with pytest.raises(DMPODataError, match="row 1: chosen"):
        DMPOTrainer(tiny_model, args=config(tmp_path, max_length=256, on_bad_row="error"), train_dataset=ds)
    with pytest.raises(DMPODataError, match="every row"):
        DMPOTrainer(
            tiny_model, args=config(tmp_path, max_length=256), train_dataset=Dataset.from_list([empty, long])
        )


# ------------------------------------------------------------------------------------------- learning


def _synthetic(n: int, offset: int) -> Dataset:
    return Dataset.from_list([pair(offset + k, 1 + k % 3, 1 + (k + 1) % 3) for k in range(n)])


@pytest.mark.slow
def test_training_raises_held_out_margin_and_accuracy(tiny_model: Path, tmp_path: Path) -> None:
    args = config(
        tmp_path,
        max_steps=200,
        learning_rate=2e-3,
        lr_scheduler_type="constant",
        logging_steps=50,
        per_device_train_batch_size=4,
        max_length=256,
    )
    trainer = DMPOTrainer(
        tiny_model, args=args, train_dataset=_synthetic(32, 0), eval_dataset=_synthetic(16, 1000)
    )
    before = trainer.evaluate()
    assert before["eval_rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    trainer.train()
    after = trainer.evaluate()
    print(f"held-out before {before}\nheld-out after {after}")
    assert after["eval_rewards/margins"] > 0.5
    assert after["eval_rewards/accuracies"] >= 0.9
    assert math.isfinite(after["eval_loss"]) and after["eval_loss"] < 0.5


# ------------------------------------------------------------------------------------------- script


@pytest.mark.slow
def test_accelerate_launch_two_processes(tiny_model: Path, tmp_path: Path, fixture_task: Any) -> None:
    data = tmp_path / "pairs.jsonl"
    with data.open("w") as f:
        for k in range(8):
            f.write(json.dumps(pair(k, 1 + k % 3, 1 + (k + 1) % 2)) + "\n")
    out = tmp_path / "ckpt"
    with socket.socket() as sock:  # a free rendezvous port: the test may run next to other launches
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        str(Path(sys.executable).parent / "accelerate"), "launch",
        "--config_file", str(ROOT / "training" / "configs" / "cpu_2proc.yaml"), "--main_process_port", str(port),
        str(ROOT / "training" / "dmpo.py"),
        "--config", str(ROOT / "training" / "configs" / "dmpo_tiny.yaml"),
        "--model_name_or_path", str(tiny_model),
        "--dataset_path", str(data),
        "--output_dir", str(out),
        "--max_steps", "3",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("2 process(es) (DistributedType.MULTI_CPU)") == 2, log[-4000:]
    assert "rewards/margins" in log

    from safetensors.torch import load_file

    from ltenv.agents import EpisodeContext, HFPolicy

    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    policy = HFPolicy(out, max_new_tokens=8, temperature=0)  # the checkpoint serves as a policy
    try:
        msgs = pair(0, 1, 1)["prompt"]
        completion = policy.complete(msgs, EpisodeContext(task=fixture_task("write-greeting")))
    finally:
        policy.close()
    assert isinstance(completion.text, str)
    assert completion.prompt_text == policy.prompt_text(msgs)


def test_sft_term_adds_the_chosen_nll(tiny_model: Path, tmp_path: Path) -> None:
    """loss_type ["sigmoid", "sft"]: the loss is DMPO's plus alpha times the chosen assistant tokens' mean NLL."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    row = pair(5, 2, 2)
    ds = Dataset.from_list([row])
    plain = DMPOTrainer(tiny_model, args=config(tmp_path / "a"), train_dataset=ds)
    both = DMPOTrainer(
        tiny_model,
        args=config(tmp_path / "b", loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5]),
        train_dataset=ds,
    )
    for t in (plain, both):
        perturb(t.model, seed=3, scale=0.1)
    batch = plain.data_collator([plain.train_dataset[0]])
    with torch.no_grad():
        dmpo_only = plain.compute_loss(plain.model, batch).item()
        combined = both.compute_loss(both.model, batch).item()

    # the chosen side's NLL by hand: every assistant token (content + <|im_end|>) of every chosen turn
    tok = AutoTokenizer.from_pretrained(tiny_model)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    perturb(policy, seed=3, scale=0.1)
    tokens = torch.cat(_turn_token_logps_by_hand(policy, tok, row["prompt"], row["chosen"]))
    assert tokens.numel() > 4
    total, count = -tokens.sum().item(), tokens.numel()
    assert combined - dmpo_only == pytest.approx(0.5 * total / count, rel=1e-4)
    with pytest.raises(ValueError, match="sigmoid"):
        config(tmp_path / "c", loss_type=["sigmoid", "ipo"])
