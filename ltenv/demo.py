"""The embedded end-to-end demo: a tiny model measurably learns terminal tasks on CPU, through the real pipeline.

``ltenv demo`` runs, on procedural task families (:mod:`ltenv.procgen`), every stage a user runs at scale:

1. ``model``: build a tiny Qwen3-architecture model and a BPE tokenizer trained on the training instances'
   text (nothing is downloaded);
2. ``collect``: oracle rollouts (one command per turn) on the training seeds (:func:`ltenv.rollout`);
3. ``export-sft``: SFT conversations from them (:func:`ltenv.data.export_sft`);
4. ``eval-base``: the untrained model on held-out seeds, never seen in training (:func:`ltenv.evaluation.evaluate`);
5. ``sft``: ``accelerate launch training/sft.py``;
6. ``eval-sft``: the SFT model on the held-out seeds;
7. ``rollout-sft``: the oracle and the SFT model (sampling) on fresh seeds, seen neither in training nor in
   evaluation (the SFT model's successes and failures on new instances);
8. ``export-pairs``: multi-turn preference pairs from those rollouts (:func:`ltenv.data.export_pairs`);
9. ``dmpo``: ``accelerate launch training/dmpo.py`` from the SFT model;
10. ``eval-dmpo``: the DMPO model on the held-out seeds;
11. ``report``: one table (pass@1 per family for the three models, seconds per stage) and a leaderboard.

Every stage writes its artifacts under ``OUT`` and is recorded in ``OUT/demo-state.json`` when it
finishes; a rerun (after an interruption, a crash, a killed training process) resumes from the first
unfinished stage. A rerun with other settings is refused, naming them (``--fresh`` starts over).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ltenv.data import INFRA_TERMINATIONS
from ltenv.errors import LtenvError

log = logging.getLogger(__name__)

STATE_FILE = "demo-state.json"
STAGES: tuple[str, ...] = (
    "model",
    "collect",
    "export-sft",
    "eval-base",
    "sft",
    "eval-sft",
    "rollout-sft",
    "export-pairs",
    "dmpo",
    "eval-dmpo",
    "report",
)
MODELS = (("untrained", "eval-base"), ("SFT", "eval-sft"), ("DMPO", "eval-dmpo"))
HELDOUT_BASE = 500_000
"""Held-out seeds start here; training seeds are below it, so the two never overlap."""


class DemoError(LtenvError):
    """A demo stage failed, or the output folder holds a demo run with other settings."""


DEMO_FAMILIES = ("fix-permission", "log-count", "config-set", "git-recover", "best-checkpoint")
"""The full demo's families: five domains, three one-command families and two that need two turns. The other
bundled families (``csv-sum``, ``json-field``, ``find-file``) work the same way; with all eight the model
sees each family less often in the same time budget and learns each less well (``--families all``)."""


@dataclass
class DemoConfig:
    """Settings of a demo run. :meth:`quick` and :meth:`full` give the two presets."""

    out: Path = Path("runs/demo")
    families: list[str] | None = None
    """Procedural families to use (``None``: every registered family)."""
    train_seeds: int = 300
    """Training seeds per family (seeds ``0..train_seeds-1``)."""
    heldout_seeds: int = 40
    """Held-out seeds per family (from :data:`HELDOUT_BASE`)."""
    pair_seeds: int = 30
    """Seeds per family (right after the training seeds) the SFT model is rolled out on for preference
    pairs."""
    pair_attempts: int = 2
    jobs: int = 4
    """Episodes in flight for the oracle."""
    model_jobs: int = 48
    """Episodes in flight when a model plays (their requests are generated together, a batch at a time)."""
    backend: str = "bwrap"
    # model
    vocab_size: int = 600
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    # training
    sft_steps: int = 2000
    sft_batch: int = 16
    sft_lr: float = 5e-3
    sft_decay: float = 0.2
    """Fraction of the SFT steps, at the end, over which the learning rate decays to 0 (warmup-stable-decay:
    it stays at ``sft_lr`` until then). Measured here against a cosine schedule of the same length, same
    seed: the model learns to copy while the rate is still high, and the short decay settles it."""
    dmpo_steps: int = 60
    dmpo_batch: int = 8
    dmpo_lr: float = 2e-4
    dmpo_beta: float = 0.1
    scaffold: str = "bare"
    """The rollouts' scaffold. ``bare`` (``plain`` without a system prompt): measured here, the tiny model
    copies names and values from the instruction far sooner without the prompt's fixed tokens in front."""
    max_turns: int = 4
    max_new_tokens: int = 48
    command_timeout: float = 3.0
    """Seconds a model's command may run. The families' commands take milliseconds; an untrained model's
    commands often wait on the terminal (``cat`` without a file), and each would hold its episode this long."""
    pair_temperature: float = 1.0
    seed: int = 0
    """Seed of the model's initialization, of the SFT and DMPO trainers' data order and of the rollouts'
    sampling. The training data's order does not depend on which episode finished first, so a rerun with
    the same seed trains on the same batches."""
    accelerate_config: str = "training/configs/cpu.yaml"

    @classmethod
    def quick(cls, **kw: Any) -> DemoConfig:
        """A few minutes on 2 cores (CI): fewer seeds and steps."""
        base = dict(
            families=["fix-permission", "log-count", "config-set"],
            train_seeds=150,
            heldout_seeds=10,
            pair_seeds=10,
            sft_steps=1100,
            dmpo_steps=20,
            pair_attempts=1,
        )
        base.update(kw)
        return cls(**base)

    @classmethod
    def full(cls, **kw: Any) -> DemoConfig:
        """About 14 minutes on 2 cores: the :data:`DEMO_FAMILIES`, 300 training and 40 held-out seeds each."""
        base: dict[str, Any] = dict(families=list(DEMO_FAMILIES))
        base.update(kw)
        return cls(**base)

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original (all but ``out`` and ``jobs``)."""
        d = asdict(self)
        for k in ("out", "jobs", "model_jobs", "accelerate_config"):
            d.pop(k)
        return d


@dataclass
class StageResult:
    name: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class Demo:
    """Runs the stages (see the module docstring). ``say`` prints progress (default: ``print`` to stderr)."""

    def __init__(self, config: DemoConfig, *, say: Callable[[str], None] | None = None, fresh: bool = False):
        self.config = config
        self.out = Path(config.out)
        self.say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.fresh = fresh
        self.state: dict[str, Any] = {}
        self.root = _project_root()

    # ------------------------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        return self.out / name

    @property
    def families(self) -> list[str]:
        from ltenv.procgen import all_families, get_family

        if self.config.families:
            return [get_family(f).name for f in self.config.families]
        return list(all_families())

    def train_tasks(self, per_family: int | None = None) -> list[Any]:
        from ltenv.procgen import load_instances

        n = per_family if per_family is not None else self.config.train_seeds
        return load_instances(self.families, range(n))

    def pair_tasks(self) -> list[Any]:
        """Instances for preference pairs: the ``pair_seeds`` seeds right after the training seeds. The SFT
        model has never seen them, so its failures there are the ones it makes on held-out seeds."""
        from ltenv.procgen import load_instances

        c = self.config
        if c.train_seeds + c.pair_seeds > HELDOUT_BASE:
            raise DemoError(
                f"train_seeds + pair_seeds ({c.train_seeds} + {c.pair_seeds}) reaches the held-out seeds "
                f"(from {HELDOUT_BASE})"
            )
        return load_instances(self.families, range(c.train_seeds, c.train_seeds + c.pair_seeds))

    def heldout_tasks(self) -> list[Any]:
        from ltenv.procgen import load_instances

        return load_instances(self.families, range(HELDOUT_BASE, HELDOUT_BASE + self.config.heldout_seeds))

    # ------------------------------------------------------------------------------------ state
    def _load_state(self) -> None:
        path = self.path(STATE_FILE)
        if self.fresh and self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        fp = self.config.fingerprint()
        if path.exists():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise DemoError(f"{path}: unreadable ({e}); rerun with --fresh to start over") from None
            old = state.get("config", {})
            diff = [k for k in fp if old.get(k) != fp[k]]
            if diff:
                detail = ", ".join(f"{k}: {old.get(k)!r} -> {fp[k]!r}" for k in diff)
                raise DemoError(
                    f"{self.out} holds a demo run with other settings ({detail}); rerun with the same "
                    "settings to resume it, or with --fresh to start over"
                )
            self.state = state
        else:
            self.state = {"config": fp, "stages": {}}
            self._save_state()

    def _save_state(self) -> None:
        path = self.path(STATE_FILE)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)

    def done(self, stage: str) -> bool:
        return stage in self.state.get("stages", {})

    # -------------------------------------------------------------------------------------- run
    def run(self, *, until: str | None = None) -> dict[str, Any]:
        """Run every unfinished stage (up to ``until``); returns the report (see :meth:`report`)."""
        if until is not None and until not in STAGES:
            raise DemoError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
        self._load_state()
        finished = [s for s in STAGES if self.done(s)]
        if finished and len(finished) < len(STAGES):
            nxt = next(s for s in STAGES if not self.done(s))
            self.say(f"resuming {self.out}: {len(finished)} stage(s) already done; next: {nxt}")
        last = STAGES.index(until) if until is not None else len(STAGES) - 1
        for stage in STAGES[: last + 1]:
            if self.done(stage):
                continue
            self.say(f"[{STAGES.index(stage) + 1}/{len(STAGES)}] {stage} ...")
            t0 = time.monotonic()
            info = getattr(self, "stage_" + stage.replace("-", "_"))() or {}
            seconds = round(time.monotonic() - t0, 1)
            self.state["stages"][stage] = {"seconds": seconds, **info}
            self._save_state()
            self.say(f"    {stage} done in {seconds:.1f}s" + (f": {_brief(info)}" if info else ""))
        return self.state

    # ------------------------------------------------------------------------------------ stages
    def stage_model(self) -> dict[str, Any]:
        from ltenv.models.tiny import build_tiny_qwen3

        c = self.config
        vocab = _fixed_vocabulary(self.families, min(c.train_seeds, 300), c.scaffold)
        dest = self.path("model-init")
        if dest.exists():
            shutil.rmtree(dest)
        build_tiny_qwen3(
            dest,
            vocab_size=c.vocab_size,
            hidden=c.hidden,
            layers=c.layers,
            heads=c.heads,
            kv_heads=c.kv_heads,
            intermediate=c.intermediate,
            max_position_embeddings=1024,
            seed=c.seed,
            texts=[" ".join(vocab)] * 50,
            isolate=True,
            whole_words=vocab,
        )
        return {"params": _count_params(dest), "fixed_words": len(vocab)}

    def _rollout(
        self, policy: Any, tasks: list[Any], run: str, *, k: int = 1, jobs: int | None = None
    ) -> dict[str, Any]:
        from ltenv.rollouts import rollout

        res = rollout(
            policy,
            tasks,
            out=self.path(run),
            k=k,
            jobs=jobs or self.config.jobs,
            scaffold=self.config.scaffold,
            backend=self.config.backend,
            max_turns=self.config.max_turns,
            seed=self.config.seed,
            progress=True,
            # a model's command that waits on the terminal (grep with no file) must not hold an episode
            # for the task's whole agent budget
            env_kwargs={"command_timeout": self.config.command_timeout, "max_episode_seconds": 60.0},
        )
        passed = sum(1 for t in res.trajectories if t.passed)
        return {"episodes": len(res.trajectories), "ran": res.ran, "passed": passed}

    def _hf(self, model: str, *, temperature: float) -> Any:
        from ltenv.agents.policies import HFPolicy

        return HFPolicy(
            str(self.path(model)),
            temperature=temperature,
            max_new_tokens=self.config.max_new_tokens,
            batch_size=self.config.model_jobs,
            batch_window=0.05,
        )

    def stage_collect(self) -> dict[str, Any]:
        from ltenv.agents.policies import OraclePolicy

        tasks = self.train_tasks()
        info = self._rollout(OraclePolicy(), tasks, "oracle")
        trajs = _trajectories(self.path("oracle"))
        infra = [t for t in trajs if t.termination in INFRA_TERMINATIONS]
        failed = [t.task for t in trajs if not t.passed and t.termination not in INFRA_TERMINATIONS]
        if failed:
            raise DemoError(
                f"the oracle failed {len(failed)} training instance(s) ({', '.join(failed[:5])}; see "
                f"{self.path('oracle')}); the families' reference solutions must always pass"
            )
        if len(infra) > len(trajs) // 20:
            raise DemoError(
                f"{len(infra)} of {len(trajs)} oracle episodes hit infrastructure errors: {infra[0].error}"
            )
        return {**info, "infra_errors": len(infra)}

    def stage_export_sft(self) -> dict[str, Any]:
        from ltenv.data import export_sft

        ds = export_sft(_trajectories(self.path("oracle")), self.path("sft.jsonl"))
        return {"examples": len(ds)}

    def _eval(self, model: str, run: str) -> dict[str, Any]:
        from ltenv.evaluation import evaluate

        self._rollout(
            self._hf(model, temperature=0.0), self.heldout_tasks(), run, jobs=self.config.model_jobs
        )
        report = evaluate(self.path(run), write=True)
        return {"pass_at_1": round(report.pass_at_1, 4), "per_family": _per_family(self.path(run))}

    def stage_eval_base(self) -> dict[str, Any]:
        return self._eval("model-init", "eval-base")

    def _accelerate(self, script: str, args: list[str], log_name: str) -> None:
        logs = self.path("logs")
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{log_name}.log"
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(self.root / self.config.accelerate_config),
            str(self.root / "training" / script),
            *args,
        ]
        self.say(
            f"    $ accelerate launch {self.config.accelerate_config} training/{script} ... (log: {log_path})"
        )
        with open(log_path, "w", encoding="utf-8") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=self.root)
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            why = f"exited {proc.returncode}"
            if proc.returncode < 0:
                sig = signal.Signals(-proc.returncode).name
                why = f"was killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
            raise DemoError(
                f"stage {log_name}: training/{script} {why}; log: {log_path}\n  "
                + "\n  ".join(tail)
                + "\nRerun `ltenv demo` (same options) to retry from this stage."
            )

    def stage_sft(self) -> dict[str, Any]:
        c = self.config
        dest = self.path("sft-model")
        if dest.exists():
            shutil.rmtree(dest)
        self._accelerate(
            "sft.py",
            [
                "--config",
                str(self.root / "training" / "configs" / "sft_demo.yaml"),
                "--model_name_or_path",
                str(self.path("model-init")),
                "--train_files",
                str(self.path("sft.jsonl")),
                "--output_dir",
                str(dest),
                "--max_steps",
                str(c.sft_steps),
                "--per_device_train_batch_size",
                str(c.sft_batch),
                "--learning_rate",
                str(c.sft_lr),
                "--lr_scheduler_kwargs",
                json.dumps({"num_decay_steps": max(1, round(c.sft_steps * c.sft_decay))}),
                "--seed",
                str(c.seed),
            ],
            "sft",
        )
        return {"steps": c.sft_steps, **_last_log(dest)}

    def stage_eval_sft(self) -> dict[str, Any]:
        return self._eval("sft-model", "eval-sft")

    def stage_rollout_sft(self) -> dict[str, Any]:
        from ltenv.agents.policies import OraclePolicy

        c = self.config
        tasks = self.pair_tasks()
        self._rollout(OraclePolicy(), tasks, "pair-oracle")
        policy = self._hf("sft-model", temperature=c.pair_temperature)
        info = self._rollout(policy, tasks, "sft-train", k=c.pair_attempts, jobs=c.model_jobs)
        info["pass_rate"] = round(_pass_rate(self.path("sft-train")), 4)
        return info

    def stage_export_pairs(self) -> dict[str, Any]:
        from ltenv.data import export_pairs

        trajs = [*_trajectories(self.path("pair-oracle")), *_trajectories(self.path("sft-train"))]
        ds = export_pairs(trajs, self.path("pairs.jsonl"), max_pairs_per_task=2)
        return {"pairs": len(ds)}

    def stage_dmpo(self) -> dict[str, Any]:
        c = self.config
        dest = self.path("dmpo-model")
        if dest.exists():
            shutil.rmtree(dest)
        n_pairs = self.state["stages"]["export-pairs"]["pairs"]
        if n_pairs == 0:
            shutil.copytree(self.path("sft-model"), dest)
            return {"skipped": "no preference pairs: the SFT model solved every sampled pair instance"}
        self._accelerate(
            "dmpo.py",
            [
                "--config",
                str(self.root / "training" / "configs" / "dmpo_demo.yaml"),
                "--model_name_or_path",
                str(self.path("sft-model")),
                "--dataset_path",
                str(self.path("pairs.jsonl")),
                "--output_dir",
                str(dest),
                "--max_steps",
                str(c.dmpo_steps),
                "--per_device_train_batch_size",
                str(c.dmpo_batch),
                "--learning_rate",
                str(c.dmpo_lr),
                "--beta",
                str(c.dmpo_beta),
                "--seed",
                str(c.seed),
            ],
            "dmpo",
        )
        return {"steps": c.dmpo_steps, "pairs": n_pairs, **_last_log(dest)}

    def stage_eval_dmpo(self) -> dict[str, Any]:
        return self._eval("dmpo-model", "eval-dmpo")

    def stage_report(self) -> dict[str, Any]:
        from ltenv.evaluation import leaderboard

        leaderboard([self.path(run) for _, run in MODELS], out=self.path("leaderboard"))
        report = self.report()
        self.path("demo-report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        self.path("demo-report.md").write_text(self.markdown(report), encoding="utf-8")
        return {"leaderboard": str(self.path("leaderboard") / "index.html")}

    # ------------------------------------------------------------------------------------ report
    def report(self) -> dict[str, Any]:
        """Pass@1 per family per model on the held-out seeds, and seconds per stage."""
        from ltenv.procgen import get_family

        stages = self.state.get("stages", {})
        rows = []
        for fam in self.families:
            f = get_family(fam)
            row: dict[str, Any] = {"family": fam, "domain": f.domain, "multi_turn": f.multi_turn}
            for label, run in MODELS:
                per = stages.get(run, {}).get("per_family", {})
                row[label] = per.get(fam)
            rows.append(row)
        overall = {label: stages.get(run, {}).get("pass_at_1") for label, run in MODELS}
        seconds = {s: stages[s]["seconds"] for s in STAGES if s in stages}
        return {
            "families": rows,
            "overall": overall,
            "seconds": seconds,
            "total_seconds": round(sum(seconds.values()), 1),
            "heldout_seeds": [HELDOUT_BASE, HELDOUT_BASE + self.config.heldout_seeds - 1],
            "train_seeds": [0, self.config.train_seeds - 1],
            "params": stages.get("model", {}).get("params"),
            "pairs": stages.get("export-pairs", {}).get("pairs"),
        }

    @staticmethod
    def markdown(report: dict[str, Any]) -> str:
        def pct(x: Any) -> str:
            return "-" if x is None else f"{100 * x:.0f}%"

        lines = [
            "| family | domain | turns | untrained | SFT | DMPO |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["families"]:
            lines.append(
                f"| {r['family']} | {r['domain']} | {'2+' if r['multi_turn'] else '1'} | "
                f"{pct(r['untrained'])} | {pct(r['SFT'])} | {pct(r['DMPO'])} |"
            )
        o = report["overall"]
        lines.append(f"| **all** | | | {pct(o['untrained'])} | {pct(o['SFT'])} | {pct(o['DMPO'])} |")
        lines.append("")
        lines.append("| stage | seconds |")
        lines.append("|---|---|")
        for s, sec in report["seconds"].items():
            lines.append(f"| {s} | {sec:.1f} |")
        lines.append(f"| **total** | {report['total_seconds']:.1f} |")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ helpers
def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "training" / "sft.py").is_file():
        return here
    raise DemoError(
        f"the training scripts (training/sft.py, training/dmpo.py) are not next to the ltenv package ({here}); "
        "run the demo from a source checkout"
    )


def _fixed_vocabulary(
    families: list[str], seeds: int, scaffold: str = "bare", min_share: float = 0.1
) -> list[str]:
    """The words of the families' fixed text (instruction templates, commands, scaffold prompts): words
    found in at least ``min_share`` of a family's instructions and commands (file contents are data), the
    scaffold's fixed replies and observations, and the chat roles. The tokenizer keeps these whole and splits
    every other word into letters (``whole_words``), so a random name or value is always the same letters and
    digits -- tokens a small model sees constantly and learns to copy -- wherever it appears."""
    import re
    from collections import Counter

    from ltenv.agents.scaffolds import ActionResult, get_scaffold
    from ltenv.procgen import get_family

    words: set[str] = set()
    for fam in families:
        f = get_family(fam)
        df: Counter[str] = Counter()
        for s in range(seeds):
            inst = f.instance(s)
            text = "\n".join([inst.instruction, *inst.commands])
            df.update(set(re.findall(r"[A-Za-z_]+", text)))
        words.update(w for w, n in df.items() if n >= min_share * seeds)
    sc = get_scaffold(scaffold)
    texts = [m["content"] for m in sc.initial_messages("task", "")]
    texts += [sc.render_reply([], complete=True)]  # DONE
    texts += [  # what the scaffold says of a silent command and of a failed one
        sc.observation_message([ActionResult("true", "", exit_code=0)])["content"],
        sc.observation_message([ActionResult("false", "", exit_code=1)])["content"],
    ]
    for text in texts:
        words.update(re.findall(r"[A-Za-z_]+", text))
    words.update(("system", "user", "assistant"))  # the chat template's role names
    return sorted(words)


def _brief(info: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, dict | list))


def _count_params(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in path.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():  # noqa: SIM118
                shape = st.get_slice(k).get_shape()
                n = 1
                for d in shape:
                    n *= d
                total += n
    return total


def _trajectories(run: Path) -> list[Any]:
    """A run's trajectories by task and attempt (the file holds them in the order episodes finished)."""
    from ltenv.data import load_trajectories

    return sorted(load_trajectories(run), key=lambda t: (t.task, t.attempt))


def _pass_rate(run: Path) -> float:
    trajs = _trajectories(run)
    return sum(1 for t in trajs if t.passed) / len(trajs) if trajs else 0.0


def _per_family(run: Path) -> dict[str, float]:
    from ltenv.procgen import get_family

    groups: dict[str, list[bool]] = {}
    for t in _trajectories(run):
        fam = get_family(t.task.rsplit("-s", 1)[0]).name
        groups.setdefault(fam, []).append(bool(t.passed))
    return {f: round(sum(v) / len(v), 4) for f, v in sorted(groups.items())}


def _last_log(model_dir: Path) -> dict[str, Any]:
    """The last logged training metrics (trainer_state.json), if the trainer wrote them."""
    for p in (model_dir / "trainer_state.json", *model_dir.glob("checkpoint-*/trainer_state.json")):
        if p.is_file():
            try:
                hist = json.loads(p.read_text()).get("log_history", [])
            except ValueError:
                return {}
            logs = [h for h in hist if "loss" in h]
            if logs:
                keep = ("loss", "mean_token_accuracy", "rewards/margins", "rewards/accuracies")
                return {k: round(v, 4) for k, v in logs[-1].items() if k in keep}
    return {}


__all__ = ["DEMO_FAMILIES", "HELDOUT_BASE", "STAGES", "Demo", "DemoConfig", "DemoError"]
