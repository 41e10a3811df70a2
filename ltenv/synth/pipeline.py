"""LiteCoder-Terminal-Gen: the synthesis pipeline from domain specifications to verified task folders.

For each candidate (a :class:`~ltenv.synth.sampling.Seed`: domain, skill x subtopic or free continuation,
target difficulty) the stages of :mod:`ltenv.synth.stages` run in order, each an LLM call that sees the
domain, every earlier stage's output and, after execution, the execution log:

1. ``propose`` a few ideas → ``judge`` them (clear, moderate complexity, self-contained, verifiable, score)
   → near-duplicate filter against this batch's ideas;
2. ``instruction`` → ``environment`` (Dockerfile + input files, statically checked) → ``solution`` →
   ``tests`` (draft) → ``attack`` (wrong, partial and shortcut solutions) → ``task_toml``;
3. near-duplicate filter of instruction + tests against the registry and the accepted batch;
4. **execution validation** (:func:`ltenv.synth.execution.validate_candidate`) of the task folder in a
   real sandbox: the image builds, nothing of tests/solution is in it, no network is needed, the oracle
   passes, nop fails, every attack fails, twice and identically;
5. on failure, ``refine`` (the tests let an attack or nop through) or ``repair`` (anything else) with the
   execution log, and validate again — at most ``repair_rounds`` times;
6. accepted: the folder is copied to ``OUT/tasks/<domain>/<name>``.

Every candidate ends in one :class:`~ltenv.synth.ledger.LedgerRecord` (``OUT/ledger.jsonl``). A model
reply that is not the JSON its stage asks for, or an artifact that fails a static check, is sent back once
with the error (``format_retries``); after that the candidate is rejected as ``bad_output``.

Resuming: rerunning with the same ``OUT`` skips candidates already in the ledger (except those that ended
on a transient ``llm_error`` or ``sandbox_error``), and every LLM request of a candidate in flight is
answered from the disk cache (``OUT/cache``), so nothing is paid for twice. Prompts are deterministic for
this reason (execution logs carry no timings or temporary paths).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltenv.errors import LtenvError
from ltenv.synth.candidate import DEFAULT_TEST_SH, ArtifactError, Candidate
from ltenv.synth.dedupe import NearDupIndex
from ltenv.synth.domains import DomainSpec, load_domain_specs
from ltenv.synth.ledger import LEDGER_FILE, Ledger, LedgerRecord
from ltenv.synth.llm import LLMOutputError, LLMRequestError, SynthLLM
from ltenv.synth.sampling import Seed, SeedSampler, Targeting, deficit_weights
from ltenv.synth.stages import SCHEMAS, render, system_prompt

log = logging.getLogger(__name__)

CONFIG_FILE = "synth.json"
RETRYABLE_REASONS = frozenset({"llm_error", "sandbox_error"})
"""Rejections a rerun tries again (transient causes); every other ledger record is final."""
_CONFIG_KEYS = ("model", "seed", "domains", "ideas", "judge_min_score", "free_fraction", "runs", "targeting")
_EXAMPLE_CHARS = 3500


class SynthConfigMismatch(LtenvError):
    """``OUT`` holds a run made with different settings; resuming it would mix two runs."""


class _Reject(Exception):
    def __init__(self, stage: str, reason: str, detail: str):
        self.stage, self.reason, self.detail = stage, reason, detail
        super().__init__(f"{stage}: {reason}: {detail}")


@dataclass
class SynthConfig:
    """Settings of one synthesis run (the ``ltenv synth`` options)."""

    out: Path
    n: int
    model: str
    base_url: str | None = None
    api_key: str | None = None
    domains_dir: Path | None = None
    domains: list[str] | None = None
    """Restrict to these domains (default: every spec in ``domains_dir``)."""
    seed: int = 0
    workers: int = 4
    """Candidates in flight at once."""
    max_concurrency: int = 8
    """LLM requests in flight at once."""
    backend: str = "bwrap"
    jobs: int = 4
    """Sandbox episodes in parallel within one validation."""
    runs: int = 2
    repair_rounds: int = 2
    format_retries: int = 1
    ideas: int = 3
    judge_min_score: int = 6
    free_fraction: float = 0.0
    dup_threshold: float = 0.6
    dedupe: bool = True
    """Reject near-duplicates (off only for measurements that repeat one candidate on purpose)."""
    registry: list[Path] = field(default_factory=list)
    """Task roots new tasks must not duplicate (default: the bundled registry)."""
    target: Path | None = None
    """An eval report (results.json): weight domains and skills toward what the model fails."""
    temperature: float | None = 0.7
    max_tokens: int | None = 8192
    cache_dir: Path | None = None
    """Default ``out/cache``."""
    solution_timeout: float = 600.0


@dataclass
class _Ctx:
    """Per-candidate bookkeeping."""

    cand: Candidate
    spec: DomainSpec
    seed: Seed
    stages: list[str] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    paid: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    requests: int = 0
    cached: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    exec_seconds: float = 0.0
    rounds: int = 0
    stage: str = "propose"
    log: str = ""


class Synthesizer:
    """Runs the pipeline for ``config.n`` candidates. ``llm``/``store`` default to ones built from config."""

    def __init__(
        self,
        config: SynthConfig,
        *,
        llm: SynthLLM | None = None,
        store: Any = None,
        on_record: Callable[[LedgerRecord], None] | None = None,
    ):
        from ltenv.sandbox.images import ImageStore, registry_root

        self.config = config
        self.out = Path(config.out)
        self.registry_root = registry_root()
        self.specs = dict(load_domain_specs(config.domains_dir or self.registry_root / "domains"))
        if config.domains:
            unknown = sorted(set(config.domains) - set(self.specs))
            if unknown:
                raise LtenvError(
                    f"--domain {', '.join(unknown)}: no such domain spec in "
                    f"{config.domains_dir or self.registry_root / 'domains'} (have {', '.join(sorted(self.specs))})"
                )
            self.specs = {k: v for k, v in self.specs.items() if k in config.domains}
        self.targeting: Targeting | None = None
        if config.target is not None:
            self.targeting = deficit_weights(
                config.target, list(self.specs.values()), registry=self.registry_root
            )
        self.sampler = SeedSampler(
            list(self.specs.values()),
            seed=config.seed,
            domain_weights=self.targeting.domain_weights if self.targeting else None,
            skill_weights=self.targeting.skill_weights if self.targeting else None,
            free_fraction=config.free_fraction,
        )
        self.llm = llm or SynthLLM(
            config.model,
            base_url=config.base_url,
            api_key=config.api_key,
            cache_dir=config.cache_dir or self.out / "cache",
            max_concurrency=config.max_concurrency,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
        self.store = store or ImageStore()
        self.on_record = on_record
        self.ledger = Ledger(self.out / LEDGER_FILE)
        roots = list(config.registry) or [self.registry_root]
        self._existing_roots = [r for r in roots if Path(r).exists()]
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._ideas: NearDupIndex | None = None
        self._tasks: NearDupIndex | None = None
        self._registry_titles: dict[str, list[str]] = {}

    # ----------------------------------------------------------------------------------- setup
    def _config_record(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model,
            "seed": c.seed,
            "domains": sorted(self.specs),
            "ideas": c.ideas,
            "judge_min_score": c.judge_min_score,
            "free_fraction": c.free_fraction,
            "runs": c.runs,
            "targeting": (
                {
                    "domain_weights": self.targeting.domain_weights,
                    "skill_weights": {f"{d}::{s}": w for (d, s), w in self.targeting.skill_weights.items()},
                }
                if self.targeting
                else None
            ),
            "base_url": c.base_url,
            "backend": c.backend,
        }

    def _check_out(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / CONFIG_FILE
        current = self._config_record()
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise SynthConfigMismatch(f"{path}: unreadable ({e}); use a new --out") from None
            diff = [
                k
                for k in _CONFIG_KEYS
                if json.dumps(old.get(k), sort_keys=True) != json.dumps(current[k], sort_keys=True)
            ]
            if diff:
                detail = "; ".join(f"{k}: {old.get(k)!r} -> {current[k]!r}" for k in diff)
                raise SynthConfigMismatch(
                    f"{self.out} holds a synthesis run with other settings ({detail}); "
                    "use a new --out or the same settings to resume it"
                )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    def _build_indexes(self) -> None:
        from ltenv.tasks.discovery import discover

        roots = [*self._existing_roots]
        if (self.out / "tasks").is_dir():
            roots.append(self.out / "tasks")
        self._tasks = NearDupIndex.from_tasks(roots, threshold=self.config.dup_threshold)
        self._ideas = NearDupIndex(threshold=self.config.dup_threshold, k=3)
        for root in roots:
            for d in discover(root):
                self._names.add(d.name)
                if root != self.out / "tasks":
                    domain = _task_domain(d)
                    if domain:
                        self._registry_titles.setdefault(domain, []).append(_title_line(d))
        for titles in self._registry_titles.values():
            titles.sort()

    # ------------------------------------------------------------------------------------- run
    def seeds(self) -> list[Seed]:
        return self.sampler.sample(self.config.n)

    def run(self, *, progress: Callable[[LedgerRecord], None] | None = None) -> list[LedgerRecord]:
        """Synthesize ``config.n`` candidates (skipping those already in the ledger); returns the records
        of this call. Interrupting (KeyboardInterrupt) keeps every finished record and the LLM cache."""
        self._check_out()
        self._build_indexes()
        final: set[str] = set()
        if self.ledger.path.exists():
            for r in self.ledger.records():
                if r.reason in RETRYABLE_REASONS:
                    final.discard(r.id)
                else:
                    final.add(r.id)
                if r.verdict == "accepted" and r.name:
                    self._names.add(r.name)
        todo = [s for s in self.seeds() if s.id not in final]
        if len(todo) < self.config.n:
            log.info(
                "resuming: %d of %d candidates are already in the ledger",
                self.config.n - len(todo),
                self.config.n,
            )
        records: list[LedgerRecord] = []
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.workers), thread_name_prefix="synth")
        futures: set[Future] = set()
        it = iter(todo)
        try:
            while True:
                while len(futures) < max(1, self.config.workers):
                    seed = next(it, None)
                    if seed is None:
                        break
                    futures.add(pool.submit(self.candidate, seed))
                if not futures:
                    break
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    rec = fut.result()
                    records.append(rec)
                    if progress:
                        progress(rec)
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return records

    # ------------------------------------------------------------------------------- candidate
    def candidate(self, seed: Seed) -> LedgerRecord:
        """Run the whole pipeline for one seed and append its ledger record."""
        t0 = time.monotonic()
        spec = self.specs[seed.domain]
        ctx = _Ctx(Candidate(id=seed.id, domain=seed.domain, seed=seed.to_dict()), spec, seed)
        verdict, reason, detail, path = "rejected", None, None, None
        try:
            path = self._pipeline(ctx)
            verdict, ctx.stage = "accepted", "accept"
            ctx.stages.append("accept")
        except _Reject as r:
            ctx.stage, reason, detail = r.stage, r.reason, r.detail
            if r.reason != "duplicate":  # its idea is free again for later candidates
                self._ideas.remove(seed.id)
            self._release_name(ctx.cand.name)
        except Exception as e:  # a bug must cost one candidate, never the run
            log.exception("candidate %s: internal error", seed.id)
            reason = "internal_error"
            if self._ideas is not None:
                self._ideas.remove(seed.id)
            self._release_name(ctx.cand.name)
            detail = f"{type(e).__name__}: {e} ({traceback.format_exc(limit=3).strip().splitlines()[-1]})"
        rec = LedgerRecord(
            id=seed.id,
            domain=seed.domain,
            seed=seed.to_dict(),
            verdict=verdict,
            stage=ctx.stage,
            reason=reason,
            detail=detail,
            name=ctx.cand.name,
            stages=list(ctx.stages),
            rounds=ctx.rounds,
            history=ctx.history,
            tokens=dict(ctx.tokens),
            paid_tokens=dict(ctx.paid),
            requests=ctx.requests,
            cached=ctx.cached,
            seconds=round(time.monotonic() - t0, 2),
            exec_seconds=round(ctx.exec_seconds, 2),
            path=str(path.relative_to(self.out)) if path else None,
        )
        self.ledger.append(rec)
        if self.on_record:
            self.on_record(rec)
        return rec

    def _pipeline(self, ctx: _Ctx) -> Path:
        cand, spec, c = ctx.cand, ctx.spec, self.config
        # 1. propose -> judge -> near-duplicate filter over ideas
        ideas = self._ask(ctx, "propose", lambda d: d["ideas"])
        verdicts = self._ask(ctx, "judge", lambda d: _check_verdicts(d, len(ideas)), ideas=ideas)
        passing = sorted(
            (v for v in verdicts if _judged_ok(v, c.judge_min_score)), key=lambda v: (-v["score"], v["index"])
        )
        if not passing:
            why = "; ".join(f"idea {v['index']} ({v['score']}/10): {v['reason']}" for v in verdicts)
            raise _Reject("judge", "judge_rejected", why[:600])
        ctx.stages.append("judge")
        chosen = None
        dups: list[str] = []
        for v in passing:
            idea = ideas[v["index"]]
            matches = (
                self._ideas.check_and_add(cand.id, f"{idea['title']}. {idea['summary']}") if c.dedupe else []
            )
            if matches:
                dups.append(f"idea {idea['name']!r} ~ {matches[0][0]} ({matches[0][1]:.2f})")
                continue
            chosen = idea
            break
        if chosen is None:
            raise _Reject("dedupe", "duplicate", "; ".join(dups))
        ctx.stages.append("dedupe")
        cand.idea = {k: chosen.get(k) for k in ("name", "title", "summary", "skills", "difficulty")}
        cand.name = self._reserve_name(chosen["name"])

        # 2. the artifacts, stage by stage
        def set_instruction(d: dict[str, Any]) -> None:
            cand.instruction, cand.constraints = d["instruction"], d["constraints"]

        self._ask(ctx, "instruction", set_instruction)
        self._ask(ctx, "environment", lambda d: cand.set_environment(d, base_image=spec.base_image))
        self._ask(ctx, "solution", lambda d: setattr(cand, "solve_sh", d["solve_sh"]))
        self._ask(ctx, "tests", lambda d: cand.set_tests(d))
        self._ask(ctx, "attack", lambda d: _set_attacks(cand, d))
        self._ask(ctx, "task_toml", lambda d: setattr(cand, "meta", d))

        # 3. near-duplicates of the registry and of accepted tasks
        self._check_duplicate(ctx, add=False)

        # 4-5. execute, then refine/repair with the log
        work = self.out / "work" / cand.id
        ctx.stage = "validate"
        for round_ in range(c.repair_rounds + 1):
            task_dir = cand.write(work / cand.name)
            report = self._validate(ctx, task_dir, round_)
            if report.ok:
                break
            if round_ == c.repair_rounds:
                raise _Reject("validate", report.reason or "oracle_fails", report.detail)
            ctx.rounds += 1
            ctx.log = f"Result: rejected ({report.reason}). {report.detail}\n\n{report.log}"
            if report.reason in ("attack_passes", "nop_passes"):
                self._ask(ctx, "refine", lambda d: cand.set_tests(d, stage="refine"), log=ctx.log)
            else:
                self._ask(
                    ctx,
                    "repair",
                    lambda d: cand.apply_repair(d, base_image=spec.base_image),
                    log=ctx.log,
                    reason=report.reason or "",
                )
            ctx.stage = "validate"
        ctx.stages.append("validate")

        # 6. accept
        self._check_duplicate(ctx, add=True)
        dest = self.out / "tasks" / cand.domain / cand.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(task_dir, dest, symlinks=True)
        return dest

    # ----------------------------------------------------------------------------------- helpers
    def _reserve_name(self, name: str) -> str:
        with self._lock:
            candidate, k = name, 2
            while candidate in self._names:
                candidate, k = f"{name}-{k}", k + 1
            self._names.add(candidate)
            return candidate

    def _release_name(self, name: str | None) -> None:
        if name:
            with self._lock:
                self._names.discard(name)

    def _check_duplicate(self, ctx: _Ctx, *, add: bool) -> None:
        if not self.config.dedupe:
            return
        cand = ctx.cand
        text = f"{cand.instruction}\n{cand.test_outputs_py}"
        key = f"synth/{cand.domain}/{cand.name}"
        matches = self._tasks.check_and_add(key, text) if add else self._tasks.query(text)
        if matches:
            raise _Reject(
                "dedupe",
                "duplicate",
                f"instruction and tests are a near-duplicate of {matches[0][0]} (estimated Jaccard "
                f"{matches[0][1]:.2f} >= {self.config.dup_threshold})",
            )

    def _validate(self, ctx: _Ctx, task_dir: Path, round_: int) -> Any:
        from ltenv.synth.execution import validate_candidate

        report = validate_candidate(
            task_dir,
            ctx.cand.attacks,
            backend=self.config.backend,
            store=self.store,
            runs=self.config.runs,
            jobs=self.config.jobs,
            solution_timeout=self.config.solution_timeout,
        )
        ctx.exec_seconds += report.seconds
        ctx.history.append(
            {
                "round": round_,
                "reason": report.reason,
                "detail": report.detail,
                "seconds": round(report.seconds, 2),
            }
        )
        (task_dir.parent / f"validation-{round_}.json").write_text(
            json.dumps(report.to_dict(), indent=1, default=str), encoding="utf-8"
        )
        return report

    def _values(self, ctx: _Ctx, **extra: Any) -> dict[str, str]:
        spec, seed = ctx.spec, ctx.seed
        values = {
            "domain_block": _domain_block(spec),
            "seed_block": _seed_block(seed),
            "existing": "\n".join(f"- {t}" for t in self._registry_titles.get(spec.name, []))
            or "- (none yet)",
            "n_ideas": str(self.config.ideas),
            "candidate": ctx.cand.prompt_view(),
            "example": "(none)",
            "base_image": spec.base_image,
            "tools": ", ".join(spec.tools),
            "default_test_sh": DEFAULT_TEST_SH.strip(),
            "ideas": json.dumps(extra.pop("ideas", []), indent=1, ensure_ascii=False),
            "log": extra.pop("log", ""),
            "reason": extra.pop("reason", ""),
        }
        return values

    def _example(self, ctx: _Ctx, stage: str) -> str:
        examples = ctx.spec.examples
        if not examples:
            return "(none)"
        folder = self.registry_root / ctx.spec.name / examples[ctx.seed.index % len(examples)]
        path = folder / ("instruction.md" if stage == "instruction" else "tests/test_outputs.py")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return "(none)"
        if len(text) > _EXAMPLE_CHARS:
            text = text[:_EXAMPLE_CHARS] + "\n[... truncated]"
        return f"```\n{text}\n```"

    def _ask(self, ctx: _Ctx, stage: str, apply: Callable[[dict[str, Any]], Any], **extra: Any) -> Any:
        """One stage: render its prompt, ask (cache first), validate, apply; one retry with the error."""
        ctx.stage = stage
        values = self._values(ctx, **extra)
        if stage in ("instruction", "tests"):
            values["example"] = self._example(ctx, stage)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(**values)},
            {"role": "user", "content": render(stage, **values)},
        ]
        key_extra = f"seed={self.config.seed};candidate={ctx.cand.id}"
        if stage in ("refine", "repair"):  # an unchanged candidate in a later round deserves a new sample
            key_extra += f";round={ctx.rounds}"
        last_error = ""
        for attempt in range(self.config.format_retries + 1):
            try:
                resp = self.llm.complete(stage, messages, schema=SCHEMAS[stage], key_extra=key_extra)
            except LLMRequestError as e:
                raise _Reject(stage, "llm_error", e.reason) from None
            except LLMOutputError as e:
                self._account(ctx, None)
                last_error = e.reason
                text = e.text
            else:
                self._account(ctx, resp)
                try:
                    result = apply(resp.data)
                except ArtifactError as e:
                    if e.verdict != "bad_output":
                        raise _Reject(stage, e.verdict, str(e)) from None
                    last_error, text = e.reason, resp.text
                else:
                    if stage not in ("judge", "refine", "repair"):
                        ctx.stages.append(stage)
                    return result
            if attempt < self.config.format_retries:
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": f"Your reply cannot be used: {last_error}\nReply again with only the corrected "
                        "JSON object, following the schema above.",
                    },
                ]
        raise _Reject(stage, "bad_output", f"stage {stage}: {last_error}")

    def _account(self, ctx: _Ctx, resp: Any) -> None:
        if resp is None:  # an invalid reply: paid for, but its usage is not returned with the error
            ctx.requests += 1
            return
        p, comp = resp.usage.get("prompt_tokens", 0), resp.usage.get("completion_tokens", 0)
        ctx.tokens["prompt"] += p
        ctx.tokens["completion"] += comp
        if resp.cached:
            ctx.cached += 1
        else:
            ctx.requests += 1
            ctx.paid["prompt"] += p
            ctx.paid["completion"] += comp


# ------------------------------------------------------------------------------------------ helpers
def _judged_ok(v: dict[str, Any], min_score: int) -> bool:
    return bool(
        v["clear"]
        and v["moderate_complexity"]
        and v["self_contained"]
        and v["verifiable"]
        and v["score"] >= min_score
    )


def _check_verdicts(data: dict[str, Any], n_ideas: int) -> list[dict[str, Any]]:
    verdicts = data["verdicts"]
    seen: set[int] = set()
    for i, v in enumerate(verdicts):
        if v["index"] >= n_ideas:
            raise ArtifactError(
                "judge", f"$.verdicts[{i}].index", f"{v['index']} but there are {n_ideas} ideas"
            )
        if v["index"] in seen:
            raise ArtifactError("judge", f"$.verdicts[{i}].index", f"idea {v['index']} is judged twice")
        seen.add(v["index"])
    return verdicts


def _set_attacks(cand: Candidate, data: dict[str, Any]) -> None:
    names = [a["name"] for a in data["attacks"]]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ArtifactError("attack", "$.attacks", f"two attacks are named {dup!r}")
    cand.attacks = {a["name"]: a["script"] for a in data["attacks"]}
    cand.attack_kinds = {a["name"]: a["kind"] for a in data["attacks"]}


def _domain_block(spec: DomainSpec) -> str:
    lines = [f"Domain: {spec.name}", spec.description.strip()]
    lines.append("Tools in the image: " + ", ".join(spec.tools))
    if spec.notes:
        lines.append("Notes: " + spec.notes.strip())
    return "\n".join(lines)


def _seed_block(seed: Seed) -> str:
    if seed.mode == "free" or not seed.skill:
        return (
            f"Free continuation: propose jobs that are new next to the existing tasks listed below, in any "
            f"setting of this domain. Target difficulty: {seed.difficulty}."
        )
    return (
        f'Seed: every idea must exercise the skill "{seed.skill}" in the setting "{seed.subtopic}". '
        f"Target difficulty: {seed.difficulty}."
    )


def _task_domain(folder: Path) -> str | None:
    try:
        import tomllib

        return (
            tomllib.loads((folder / "task.toml").read_text(encoding="utf-8"))
            .get("metadata", {})
            .get("domain")
        )
    except (OSError, ValueError):
        return None


def _title_line(folder: Path) -> str:
    try:
        text = (folder / "instruction.md").read_text(encoding="utf-8")
    except OSError:
        return folder.name
    first = next((ln.strip("# ").strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{folder.name}: {first[:140]}"


def synthesize(config: SynthConfig, **kwargs: Any) -> list[LedgerRecord]:
    """Run :class:`Synthesizer` with ``config`` (see it for ``kwargs``)."""
    synth = Synthesizer(config, **kwargs)
    try:
        return synth.run()
    finally:
        synth.llm.close()


__all__ = [
    "CONFIG_FILE",
    "RETRYABLE_REASONS",
    "SynthConfig",
    "SynthConfigMismatch",
    "Synthesizer",
    "synthesize",
]
