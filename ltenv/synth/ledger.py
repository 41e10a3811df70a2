"""The synthesis ledger: one JSON line per finished candidate, accepted or rejected, with the reason.

Each record (see :class:`LedgerRecord`) says how far the candidate got (``stages`` completed, the ``stage``
it ended in), the ``verdict`` and ``reason`` (one of :data:`REJECTION_REASONS`), a human ``detail`` naming
the artifact at fault, the tokens it cost (``paid_tokens``: HTTP calls made in this run; ``tokens``: all,
including replies served from the cache), and its wall-clock and execution seconds. Records are appended
with an fsync each, so a killed run loses at most the candidates in flight; a torn last line is ignored
(and reported) when reading.

:func:`report` aggregates a ledger into acceptance per stage (a funnel), per reason and per domain.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from ltenv.errors import LtenvError

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.jsonl"

#: The pipeline's stages in order, as recorded in ``LedgerRecord.stages``.
PIPELINE_STAGES: tuple[str, ...] = (
    "propose",
    "judge",
    "dedupe",
    "instruction",
    "environment",
    "solution",
    "tests",
    "attack",
    "task_toml",
    "validate",
    "accept",
)

#: Why a candidate was rejected.
REJECTION_REASONS: dict[str, str] = {
    "judge_rejected": "every proposed idea failed the LLM judge",
    "duplicate": "near-duplicate of a registry task or an earlier candidate",
    "bad_output": "the model's reply was unusable (not JSON, missing fields, a bad artifact) after a retry",
    "llm_error": "the endpoint gave no reply (down after retries, context overflow)",
    "build_failed": "the image did not build",
    "leak": "tests or solution visible in the agent's image",
    "needs_network": "the task needs the network (downloads in the build, solution or verifier)",
    "flaky": "results differ between two identical runs",
    "oracle_fails": "the reference solution does not pass",
    "nop_passes": "a do-nothing agent passes",
    "attack_passes": "a wrong or partial solution passes",
    "reward_hack": "the verifier falls to a built-in reward hack (ltenv.verify.attacks; the detail names it)",
    "sandbox_error": "a sandbox could not start or died",
    "internal_error": "an unexpected error in the pipeline (a bug: please report it)",
}


class LedgerError(LtenvError):
    """A ledger file cannot be read."""


@dataclass
class LedgerRecord:
    id: str
    domain: str
    seed: dict[str, Any]
    verdict: str
    """``accepted`` or ``rejected``."""
    stage: str
    """The stage the candidate ended in (``accept`` for an accepted one)."""
    reason: str | None = None
    detail: str | None = None
    name: str | None = None
    stages: list[str] = field(default_factory=list)
    rounds: int = 0
    """Repair/refine rounds used."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per execution validation: ``{"round", "reason", "detail", "seconds"}``."""
    tokens: dict[str, int] = field(default_factory=dict)
    paid_tokens: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    cached: int = 0
    seconds: float = 0.0
    exec_seconds: float = 0.0
    path: str | None = None
    finished: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Append-only JSONL of :class:`LedgerRecord`; thread-safe."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._checked = False

    def _repair_tail(self) -> None:
        """Cut an interrupted last write (no trailing newline) so the next record starts a fresh line."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping an interrupted last record (%d bytes)", self.path, len(data) - keep)
            with open(self.path, "r+b") as f:
                f.truncate(keep)

    def append(self, record: LedgerRecord) -> None:
        if not record.finished:
            record.finished = datetime.now(UTC).isoformat(timespec="seconds")
        line = json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._checked:
                self._repair_tail()
                self._checked = True
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def records(self) -> list[LedgerRecord]:
        return read_ledger(self.path)

    def done_ids(self) -> set[str]:
        return {r.id for r in self.records()}


def read_ledger(path: Path | str) -> list[LedgerRecord]:
    """The records of a ledger file (or of ``DIR/ledger.jsonl``). A torn last line (a killed writer) is
    skipped with a warning; any other bad line raises :class:`LedgerError` naming the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / LEDGER_FILE
    if not path.is_file():
        raise LedgerError(f"{path}: no such ledger file")
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    out: list[LedgerRecord] = []
    known = set(LedgerRecord.__dataclass_fields__)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            try:
                raw = json.loads(line)
            except ValueError:
                if n == len(lines):  # no newline after it: a write interrupted mid-record
                    log.warning("%s: line %d is incomplete (an interrupted write); ignored", path, n)
                    continue
                raise
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("id", "domain", "verdict", "stage") if k not in raw]
            if missing:
                raise ValueError(f"missing field {missing[0]!r}")
            out.append(LedgerRecord(**{k: v for k, v in raw.items() if k in known}))
        except (ValueError, TypeError) as e:
            raise LedgerError(f"{path}: line {n}: {e}") from None
    return out


@dataclass
class SynthReport:
    n: int
    accepted: int
    funnel: list[tuple[str, int]]
    """(stage, candidates that completed it), in pipeline order."""
    reasons: list[tuple[str, int]]
    domains: list[tuple[str, int, int]]
    """(domain, candidates, accepted)."""
    rejected_at: list[tuple[str, int]]
    """(stage, candidates rejected in it)."""
    paid_tokens: dict[str, int]
    tokens: dict[str, int]
    requests: int
    cached: int
    seconds: float
    exec_seconds: float
    mean_rounds_accepted: float

    @property
    def acceptance(self) -> float:
        return self.accepted / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["acceptance"] = self.acceptance
        return d

    def tables(self) -> list[Table]:
        summary = Table(title="Synthesis ledger", show_header=False)
        summary.add_row("candidates", str(self.n))
        summary.add_row("accepted", f"{self.accepted} ({self.acceptance:.1%})")
        summary.add_row(
            "tokens paid (prompt / completion)",
            f"{self.paid_tokens.get('prompt', 0)} / {self.paid_tokens.get('completion', 0)}",
        )
        summary.add_row("LLM requests / cache hits", f"{self.requests} / {self.cached}")
        summary.add_row(
            "candidate-seconds (of which execution)", f"{self.seconds:.1f} ({self.exec_seconds:.1f})"
        )
        summary.add_row("mean repair rounds (accepted)", f"{self.mean_rounds_accepted:.2f}")

        funnel = Table(title="Acceptance per stage")
        for col in ("stage", "completed", "of candidates", "rejected here"):
            funnel.add_column(col, justify="left" if col == "stage" else "right")
        rejected_at = dict(self.rejected_at)
        for stage, count in self.funnel:
            funnel.add_row(stage, str(count), _pct(count, self.n), str(rejected_at.get(stage, 0)))

        reasons = Table(title="Rejections by reason")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        reasons.add_column("meaning")
        for reason, count in self.reasons:
            reasons.add_row(reason, str(count), REJECTION_REASONS.get(reason, ""))

        domains = Table(title="Acceptance per domain")
        for col in ("domain", "candidates", "accepted", "rate"):
            domains.add_column(col, justify="left" if col == "domain" else "right")
        for domain, n, acc in self.domains:
            domains.add_row(domain, str(n), str(acc), _pct(acc, n))
        return [summary, funnel, reasons, domains]


def _pct(a: int, b: int) -> str:
    return f"{a / b:.0%}" if b else "-"


def report(records: list[LedgerRecord]) -> SynthReport:
    """Aggregate ledger records (the last record of an id wins, should a candidate appear twice)."""
    latest: dict[str, LedgerRecord] = {}
    for r in records:
        latest[r.id] = r
    recs = list(latest.values())
    accepted = [r for r in recs if r.verdict == "accepted"]
    funnel = [(s, sum(1 for r in recs if s in r.stages)) for s in PIPELINE_STAGES]
    rejected = [r for r in recs if r.verdict != "accepted"]
    reasons = Counter(r.reason or "unknown" for r in rejected).most_common()
    stage_rank = {s: i for i, s in enumerate(PIPELINE_STAGES)}
    rejected_at = sorted(Counter(r.stage for r in rejected).items(), key=lambda kv: stage_rank.get(kv[0], 99))
    per_domain: dict[str, list[int]] = {}
    for r in recs:
        slot = per_domain.setdefault(r.domain, [0, 0])
        slot[0] += 1
        slot[1] += r.verdict == "accepted"
    paid: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for r in recs:
        paid.update(r.paid_tokens)
        tokens.update(r.tokens)
    return SynthReport(
        n=len(recs),
        accepted=len(accepted),
        funnel=funnel,
        reasons=reasons,
        domains=[(d, v[0], v[1]) for d, v in sorted(per_domain.items())],
        rejected_at=rejected_at,
        paid_tokens=dict(paid),
        tokens=dict(tokens),
        requests=sum(r.requests for r in recs),
        cached=sum(r.cached for r in recs),
        seconds=round(sum(r.seconds for r in recs), 2),
        exec_seconds=round(sum(r.exec_seconds for r in recs), 2),
        mean_rounds_accepted=(sum(r.rounds for r in accepted) / len(accepted)) if accepted else 0.0,
    )


__all__ = [
    "LEDGER_FILE",
    "PIPELINE_STAGES",
    "REJECTION_REASONS",
    "Ledger",
    "LedgerError",
    "LedgerRecord",
    "SynthReport",
    "read_ledger",
    "report",
]
