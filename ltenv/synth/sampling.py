"""Seeds of candidate task proposals, and weights that steer them towards what a model fails at.

A :class:`Seed` tells the generator what to propose next: a domain, a difficulty and either a
(skill, subtopic) cell of the domain's grid (``mode="grid"``) or nothing more (``mode="free"``: continue
freely from the domain prompt). :class:`SeedSampler` produces an endless, reproducible sequence of seeds::

    specs = load_domain_specs(default_domains_dir())
    sampler = SeedSampler(list(specs.values()), seed=7, free_fraction=0.1)
    sampler.sample(5)            # seeds 0..4
    sampler.sample(20)           # seeds 0..19: the same first five, then more

:func:`deficit_weights` turns an evaluation report (``results.json`` of ``ltenv eval``) into domain and
skill weights for the sampler: more proposals where the evaluated model fails, and within a domain more
for the skills that resemble the failed tasks::

    targeting = deficit_weights(Path("runs/qwen/results.json"), specs.values(), registry=registry_path())
    sampler = SeedSampler(list(specs.values()), **targeting.sampler_kwargs())
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ltenv.errors import LtenvError
from ltenv.synth.domains import DIFFICULTIES, DomainSpec

Mode = Literal["grid", "free"]


@dataclass(frozen=True)
class Seed:
    """One proposal seed: what the generator is asked to produce."""

    index: int
    """Position in the sampler's sequence (seed ``i`` depends only on the sampler's settings and ``i``)."""
    domain: str
    skill: str | None
    """The skill to exercise (``None`` in ``free`` mode)."""
    subtopic: str | None
    """The theme / setting (``None`` in ``free`` mode)."""
    difficulty: str
    mode: Mode
    """``grid``: seeded with skill x subtopic; ``free``: free continuation from the domain prompt."""

    @property
    def id(self) -> str:
        """Short, stable identifier, e.g. ``00042-coding``."""
        return f"{self.index:05d}-{self.domain}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}


def _as_specs(
    specs: Sequence[DomainSpec] | Mapping[str, DomainSpec] | Iterable[DomainSpec],
) -> list[DomainSpec]:
    out = list(specs.values()) if isinstance(specs, Mapping) else list(specs)
    if not out:
        raise ValueError("no domain specs given")
    seen: set[str] = set()
    for s in out:
        if not isinstance(s, DomainSpec):
            raise ValueError(f"expected DomainSpec objects, got {type(s).__name__}")
        if s.name in seen:
            raise ValueError(f"domain {s.name!r} is given twice")
        seen.add(s.name)
    return out


def _check_weight(what: str, w: Any) -> float:
    if isinstance(w, bool) or not isinstance(w, int | float):
        raise ValueError(f"{what}: weight must be a number, got {w!r}")
    w = float(w)
    if not math.isfinite(w):
        raise ValueError(f"{what}: weight must be finite, got {w}")
    if w < 0:
        raise ValueError(f"{what}: weight must be >= 0, got {w}")
    return w


class SeedSampler:
    """A reproducible, coverage-spreading sequence of :class:`Seed`.

    - **Domain**: drawn independently for every index with probability proportional to
      ``domain_weights`` (default: uniform over ``specs``). When ``domain_weights`` is given, domains it
      does not list weigh 0.
    - **Mode**: ``free`` with probability ``free_fraction`` (skill and subtopic ``None``), else ``grid``.
    - **Difficulty**: drawn from the domain's ``difficulty_mix``.
    - **Skill x subtopic** (``grid`` seeds): a pair's weight is its skill's weight (``skill_weights``
      ``(domain, skill) -> weight``; subtopics are uniform). The pairs of a domain are dealt by smooth
      weighted round-robin: every grid seed of the domain credits each pair with its share of the weight,
      the pair with the largest credit is chosen (ties broken at random) and debited by one. With uniform
      weights this deals every pair once, in random order, before any pair repeats (the first
      ``min(S*T, n)`` grid seeds of a domain with ``S`` skills and ``T`` subtopics are distinct pairs); with
      other weights each pair's long-run share equals its weight's share, still spread evenly over time.
      A domain that ``skill_weights`` does not mention is uniform; within a domain it mentions, unlisted
      skills weigh 0.

    Determinism: every random choice of seed ``i`` comes from ``random.Random(f"{seed}:{i}")`` and the
    round-robin state left by seeds ``0..i-1``, so seed ``i`` is the same whatever ``n`` and ``start`` it
    was sampled with, and a rerun with a larger ``n`` extends the same sequence. Seeds already computed are
    cached.
    """

    def __init__(
        self,
        specs: Sequence[DomainSpec] | Mapping[str, DomainSpec],
        *,
        seed: int = 0,
        domain_weights: Mapping[str, float] | None = None,
        skill_weights: Mapping[tuple[str, str], float] | None = None,
        free_fraction: float = 0.0,
    ):
        self.specs = {s.name: s for s in _as_specs(specs)}
        self.seed = seed
        if isinstance(free_fraction, bool) or not isinstance(free_fraction, int | float):
            raise ValueError(f"free_fraction must be a number in [0, 1], got {free_fraction!r}")
        if not 0.0 <= free_fraction <= 1.0:
            raise ValueError(f"free_fraction must be in [0, 1], got {free_fraction}")
        self.free_fraction = float(free_fraction)

        # Domains.
        if domain_weights is None:
            dw = dict.fromkeys(self.specs, 1.0)
        else:
            dw = dict.fromkeys(self.specs, 0.0)
            for name, w in domain_weights.items():
                if name not in self.specs:
                    raise ValueError(
                        f"domain_weights: unknown domain {name!r}; the specs have: {', '.join(self.specs)}"
                    )
                dw[name] = _check_weight(f"domain_weights[{name!r}]", w)
            if not any(w > 0 for w in dw.values()):
                raise ValueError(
                    "domain_weights: every weight is 0; at least one domain needs a positive weight"
                )
        self.domain_weights = dw
        self._domains = [d for d, w in dw.items() if w > 0]
        self._domain_cum = _cumulative([dw[d] for d in self._domains])

        # Skills.
        given: dict[str, dict[str, float]] = {}
        for key, w in (skill_weights or {}).items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"skill_weights: keys must be (domain, skill) tuples, got {key!r}")
            domain, skill = key
            if domain not in self.specs:
                raise ValueError(
                    f"skill_weights: unknown domain {domain!r}; the specs have: {', '.join(self.specs)}"
                )
            if skill not in self.specs[domain].skills:
                raise ValueError(f"skill_weights: domain {domain!r} has no skill {skill!r}")
            given.setdefault(domain, {})[skill] = _check_weight(f"skill_weights[{key!r}]", w)
        self.skill_weights: dict[tuple[str, str], float] = {}
        for name, spec in self.specs.items():
            ws = given.get(name)
            for skill in spec.skills:
                self.skill_weights[(name, skill)] = 1.0 if ws is None else ws.get(skill, 0.0)
            total = sum(self.skill_weights[(name, s)] for s in spec.skills)
            if total <= 0 and dw[name] > 0 and self.free_fraction < 1.0:
                raise ValueError(
                    f"skill_weights: every skill of domain {name!r} weighs 0 but the domain can be sampled"
                )

        # Round-robin state per domain: the grid pairs, their shares and credits.
        self._pairs: dict[str, list[tuple[str, str]]] = {}
        self._shares: dict[str, list[float]] = {}
        self._credit: dict[str, list[float]] = {}
        for name, spec in self.specs.items():
            pairs = [(sk, st) for sk in spec.skills for st in spec.subtopics]
            ws = [self.skill_weights[(name, sk)] for sk, _ in pairs]
            total = sum(ws)
            self._pairs[name] = pairs
            self._shares[name] = [w / total for w in ws] if total > 0 else [0.0] * len(ws)
            self._credit[name] = [0.0] * len(pairs)
        self._cache: list[Seed] = []

    def _next(self) -> Seed:
        i = len(self._cache)
        rng = random.Random(f"{self.seed}:{i}")
        domain = self._domains[_pick(self._domain_cum, rng.random())]
        spec = self.specs[domain]
        free = rng.random() < self.free_fraction
        levels = spec.difficulty_weights
        difficulty = DIFFICULTIES[_pick(_cumulative([levels[d] for d in DIFFICULTIES]), rng.random())]
        if free:
            return Seed(i, domain, None, None, difficulty, "free")
        credit, shares = self._credit[domain], self._shares[domain]
        for j, share in enumerate(shares):
            credit[j] += share
        best = max(c for c, s in zip(credit, shares, strict=True) if s > 0)
        # Credits are sums of floats: treat values within rounding error of the best as ties.
        ties = [j for j, (c, s) in enumerate(zip(credit, shares, strict=True)) if s > 0 and c >= best - 1e-9]
        j = ties[rng.randrange(len(ties))]
        credit[j] -= 1.0
        skill, subtopic = self._pairs[domain][j]
        return Seed(i, domain, skill, subtopic, difficulty, "grid")

    def sample(self, n: int, start: int = 0) -> list[Seed]:
        """Seeds ``start .. start + n - 1`` of the sequence."""
        if n < 0 or start < 0:
            raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
        while len(self._cache) < start + n:
            self._cache.append(self._next())
        return self._cache[start : start + n]

    def __iter__(self) -> Iterator[Seed]:
        i = 0
        while True:
            yield self.sample(1, i)[0]
            i += 1


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


def _pick(cum: Sequence[float], u: float) -> int:
    """Index ``i`` with ``cum[i-1] <= u < cum[i]``, never one of zero weight (``cum[i] == cum[i-1]``)."""
    prev = 0.0
    last = 0
    for i, c in enumerate(cum):
        if c > prev:
            last = i
            if u < c:
                return i
        prev = c
    return last  # u at the top edge after rounding


# ---------------------------------------------------------------------------------------------- deficits


class ResultsFormatError(LtenvError):
    """An evaluation report (``results.json``) is malformed; the message names the file and the field."""

    def __init__(self, file: str, field: str | None, message: str):
        self.file = file
        self.field = field
        self.reason = message
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


@dataclass
class TaskOutcome:
    """One task of an evaluation report, as used for targeting."""

    task: str
    domain: str | None
    n: int
    pass_at_1: float
    text: str = ""
    """Words the task is matched to skills by: its name, and when its folder was found, tags and
    instruction."""

    @property
    def failure(self) -> float:
        return 1.0 - self.pass_at_1


@dataclass
class Targeting:
    """Domain and skill weights derived from an evaluation report (see :func:`deficit_weights`)."""

    domain_weights: dict[str, float]
    """Normalized to sum to 1."""
    skill_weights: dict[tuple[str, str], float]
    """``(domain, skill) -> weight``, normalized to sum to 1 within each domain."""
    notes: list[str] = field(default_factory=list)
    failure_rates: dict[str, float | None] = field(default_factory=dict)
    """Per domain: 1 - mean pass@1 of its tasks in the report (``None``: not in the report)."""
    n_tasks: dict[str, int] = field(default_factory=dict)
    """Per domain: tasks in the report."""

    def sampler_kwargs(self) -> dict[str, Any]:
        """``domain_weights`` and ``skill_weights`` for :class:`SeedSampler`."""
        return {"domain_weights": dict(self.domain_weights), "skill_weights": dict(self.skill_weights)}

    def top_skills(self, domain: str, n: int = 3) -> list[tuple[str, float]]:
        items = [(s, w) for (d, s), w in self.skill_weights.items() if d == domain]
        items.sort(key=lambda sw: -sw[1])  # stable: spec order among equal weights
        return items[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain_weights": self.domain_weights,
            "skill_weights": [
                {"domain": d, "skill": s, "weight": w} for (d, s), w in self.skill_weights.items()
            ],
            "failure_rates": self.failure_rates,
            "n_tasks": self.n_tasks,
            "notes": self.notes,
        }

    def table(self, top: int = 3) -> Any:
        """A ``rich`` table: domains by descending weight, with failure rate, tasks evaluated and the
        ``top`` skills of each (with their share within the domain). :attr:`notes` are not in it."""
        from rich.table import Table

        t = Table("domain", "weight", "failure rate", "tasks", f"top skills (share within domain, top {top})")
        t.title = "deficit targeting"
        for domain, w in sorted(self.domain_weights.items(), key=lambda dw: (-dw[1], dw[0])):
            rate = self.failure_rates.get(domain)
            skills = "\n".join(f"{100 * sw:.0f}%  {_short(s)}" for s, sw in self.top_skills(domain, top))
            t.add_row(
                domain,
                f"{100 * w:.1f}%",
                "-" if rate is None else f"{100 * rate:.1f}%",
                str(self.n_tasks.get(domain, 0)),
                skills,
            )
        return t


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_STOPWORD_TEXT = """
    a an and are as at be by can do does for from has have how if in into is it its of on one or
    out so than that the their them then there these they this to up use using via was when which while
    with without your you not no all any each every only should must will may file files
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> set[str]:
    """Lowercased words of 2+ characters, stopwords removed, a plural ``s`` stripped (``commits`` ->
    ``commit``)."""
    out = set()
    for w in _TOKEN_RE.findall(text.casefold()):
        if len(w) < 2 or w in _STOPWORDS:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return out


def _num(d: Mapping[str, Any], key: str, file: str, where: str, *, lo: float, hi: float | None) -> float:
    if key not in d:
        raise ResultsFormatError(file, f"{where}.{key}", "required field is missing")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ResultsFormatError(file, f"{where}.{key}", f"expected a number, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ResultsFormatError(file, f"{where}.{key}", f"must be {bound}, got {v}")
    return float(v)


def load_results(results: Mapping[str, Any] | Path | str) -> tuple[list[TaskOutcome], dict[str, Any], str]:
    """Read and validate an evaluation report: ``(task outcomes, the raw report, its label)``.

    ``results`` is a ``results.json`` path (or a run folder holding one) or the dict of
    :meth:`ltenv.evaluation.EvalReport.to_dict`. Only what targeting needs is checked: a ``tasks`` list
    whose entries have ``task`` (string), ``domain`` (string or null), ``n`` (>= 1) and ``pass_at_1``
    (in [0, 1]). Raises :class:`ResultsFormatError` naming the file and the field.
    """
    if isinstance(results, Mapping):
        file, data = "results", dict(results)
    else:
        path = Path(results)
        if path.is_dir():
            path = path / "results.json"
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResultsFormatError(
                file, None, "no such file (run `ltenv eval` on the run folder first)"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ResultsFormatError(file, None, f"cannot read: {e}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ResultsFormatError(
                file, f"line {e.lineno}, column {e.colno}", f"invalid JSON: {e.msg}"
            ) from None
        if not isinstance(data, dict):
            raise ResultsFormatError(file, None, f"expected a JSON object, got {type(data).__name__}")
    if "tasks" not in data:
        raise ResultsFormatError(file, "tasks", "required field is missing (is this an `ltenv eval` report?)")
    tasks = data["tasks"]
    if not isinstance(tasks, list):
        raise ResultsFormatError(file, "tasks", f"expected a list, got {type(tasks).__name__}")
    out: list[TaskOutcome] = []
    for i, row in enumerate(tasks):
        where = f"tasks[{i}]"
        if not isinstance(row, dict):
            raise ResultsFormatError(file, where, f"expected an object, got {type(row).__name__}")
        name = row.get("task")
        if "task" not in row:
            raise ResultsFormatError(file, f"{where}.task", "required field is missing")
        if not isinstance(name, str) or not name:
            raise ResultsFormatError(file, f"{where}.task", f"expected a task name, got {name!r}")
        if "domain" not in row:
            raise ResultsFormatError(file, f"{where}.domain", "required field is missing")
        domain = row["domain"]
        if domain is not None and not isinstance(domain, str):
            raise ResultsFormatError(file, f"{where}.domain", f"expected a string or null, got {domain!r}")
        n = _num(row, "n", file, where, lo=1, hi=None)
        p1 = _num(row, "pass_at_1", file, where, lo=0.0, hi=1.0)
        out.append(TaskOutcome(task=name, domain=domain, n=int(n), pass_at_1=p1))
    return out, data, file


def _recorded_folders(report: Mapping[str, Any]) -> dict[str, list[Path]]:
    """Task folders recorded in the report's ``run_info.tasks`` (a run's ``run.json``), per task name."""
    found: dict[str, list[Path]] = {}
    run_info = report.get("run_info")
    rows = run_info.get("tasks") if isinstance(run_info, dict) else None
    if isinstance(rows, list):
        for r in rows:
            if isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("path"), str):
                found.setdefault(r["name"], []).append(Path(r["path"]))
    return found


def _describe(folder: Path) -> str | None:
    """Tags, category and instruction of a task folder (``None`` if it does not load)."""
    from ltenv.errors import TaskLoadError
    from ltenv.tasks.discovery import is_task_dir
    from ltenv.tasks.loader import load_task

    if not is_task_dir(folder):
        return None
    try:
        task = load_task(folder)
    except TaskLoadError:
        return None
    meta = task.config.metadata
    return " ".join([*meta.tags, meta.category or "", task.instruction])


def deficit_weights(
    results: Mapping[str, Any] | Path | str,
    specs: Sequence[DomainSpec] | Mapping[str, DomainSpec] | Iterable[DomainSpec],
    *,
    registry: Path | str | None = None,
    floor: float = 0.05,
) -> Targeting:
    """Domain and skill weights that aim proposals at what the evaluated model fails.

    ``results``: an ``ltenv eval`` report (``results.json`` path, run folder, or the dict of
    :meth:`~ltenv.evaluation.EvalReport.to_dict`; see :func:`load_results`). ``registry``: where task
    folders live (``<registry>/<domain>/<task>`` or ``<registry>/<task>``); the report's
    ``run_info.tasks`` paths are tried too.

    Rules:

    - **Domains**: ``failure(d) = 1 - mean pass@1`` over the report's tasks of domain ``d`` (every task
      counts equally), and ``weight(d) ∝ floor + failure(d)``. A spec domain absent from the report gets the
      mean raw weight of the domains present (noted); tasks whose domain is not one of ``specs`` are ignored
      (noted). With no usable task at all, domains are uniform.
    - **Skills** of domain ``d``: each task ``t`` of ``d`` with ``failure(t) = 1 - pass@1 > 0`` is a bag of
      words (its name, and if its folder is found its tags, category and instruction); each skill likewise.
      Words are lowercased alphanumerics without stopwords, a plural ``s`` stripped, and weighted by
      ``idf(w) = 1 + ln((1 + S) / (1 + df(w)))`` over the ``S`` skills of ``d`` (words every skill has count
      little). ``sim(s, t)`` is the cosine of the two idf-weighted binary word vectors,
      ``score(s) = Σ_t failure(t) · sim(s, t)``, scaled so the best skill of ``d`` scores 1, and
      ``weight(s) ∝ floor + score(s)`` within ``d``. A domain without failed tasks (or without any word in
      common with them) keeps uniform skill weights (noted).

    ``floor`` (>= 0) keeps every domain and skill reachable; 0 lets fully passed domains drop out.
    """
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    spec_list = _as_specs(specs)
    outcomes, report, _ = load_results(results)
    notes: list[str] = []
    names = [s.name for s in spec_list]

    by_domain: dict[str, list[TaskOutcome]] = {d: [] for d in names}
    unknown: list[str] = []
    for o in outcomes:
        if o.domain in by_domain:
            by_domain[o.domain].append(o)
        else:
            unknown.append(f"{o.task} ({o.domain or 'no domain'})")
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        notes.append(f"{len(unknown)} task(s) of the report are outside the given domains, ignored: {shown}")

    failure_rates: dict[str, float | None] = {}
    raw: dict[str, float] = {}
    for d in names:
        ts = by_domain[d]
        if ts:
            failure_rates[d] = sum(t.failure for t in ts) / len(ts)
            raw[d] = floor + failure_rates[d]
        else:
            failure_rates[d] = None
    missing = [d for d in names if failure_rates[d] is None]
    if not raw:
        notes.append("no task of the report belongs to a spec domain: domain weights are uniform")
        domain_weights = {d: 1.0 / len(names) for d in names}
    else:
        mean = sum(raw.values()) / len(raw)
        for d in missing:
            raw[d] = mean
        if missing:
            notes.append(
                f"{len(missing)} domain(s) not in the report get the mean weight: {', '.join(missing)}"
            )
        total = sum(raw.values())
        if total <= 0:
            notes.append("every evaluated task passed and floor is 0: domain weights are uniform")
            domain_weights = {d: 1.0 / len(names) for d in names}
        else:
            domain_weights = {d: raw[d] / total for d in names}

    # Task texts.
    reg = Path(registry) if registry is not None else None
    recorded = _recorded_folders(report)
    located = 0
    for ts in by_domain.values():
        for t in ts:
            if t.failure <= 0:
                continue
            candidates = list(recorded.get(t.task, []))
            if reg is not None:
                candidates = [reg / (t.domain or "") / t.task, reg / t.task, *candidates]
            desc = next((x for x in map(_describe, candidates) if x is not None), None)
            located += desc is not None
            t.text = " ".join([t.task.replace("-", " ").replace("_", " "), desc or ""])
    n_failed = sum(t.failure > 0 for ts in by_domain.values() for t in ts)
    if n_failed and located < n_failed:
        notes.append(
            f"{n_failed - located} of {n_failed} failed task(s) matched to skills by name only "
            "(task folder not found" + ("" if reg is not None else "; pass registry=") + ")"
        )

    skill_weights: dict[tuple[str, str], float] = {}
    all_passed: list[str] = []
    no_overlap: list[str] = []
    for spec in spec_list:
        d = spec.name
        failed = [t for t in by_domain[d] if t.failure > 0]
        scores = _skill_scores(spec.skills, failed)
        if scores is None:
            if by_domain[d]:
                (no_overlap if failed else all_passed).append(d)
            for s in spec.skills:
                skill_weights[(d, s)] = 1.0 / len(spec.skills)
            continue
        raw_s = [floor + x for x in scores]
        total = sum(raw_s)
        for s, w in zip(spec.skills, raw_s, strict=True):
            skill_weights[(d, s)] = w / total if total > 0 else 1.0 / len(spec.skills)
    if all_passed:
        notes.append(f"uniform skill weights, every task passed: {', '.join(all_passed)}")
    if no_overlap:
        notes.append(
            f"uniform skill weights, no skill shares a word with a failed task: {', '.join(no_overlap)}"
        )

    return Targeting(
        domain_weights=domain_weights,
        skill_weights=skill_weights,
        notes=notes,
        failure_rates=failure_rates,
        n_tasks={d: len(by_domain[d]) for d in names},
    )


def _skill_scores(skills: Sequence[str], failed: Sequence[TaskOutcome]) -> list[float] | None:
    """Per skill, its failure-weighted similarity to the failed tasks, scaled to max 1 (``None``: no signal)."""
    if not failed:
        return None
    bags = [_tokens(s) for s in skills]
    df: dict[str, int] = {}
    for b in bags:
        for w in b:
            df[w] = df.get(w, 0) + 1
    n = len(skills)

    def idf(w: str) -> float:
        return 1.0 + math.log((1 + n) / (1 + df.get(w, 0)))

    tasks = [(_tokens(t.text), t.failure) for t in failed]
    scores = []
    for b in bags:
        norm_s = math.sqrt(sum(idf(w) ** 2 for w in b))
        total = 0.0
        for tb, failure in tasks:
            common = b & tb
            if not common or norm_s == 0:
                continue
            norm_t = math.sqrt(sum(idf(w) ** 2 for w in tb))
            total += failure * sum(idf(w) ** 2 for w in common) / (norm_s * norm_t)
        scores.append(total)
    best = max(scores)
    if best <= 0:
        return None
    return [s / best for s in scores]
