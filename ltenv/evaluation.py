"""Evaluation of rollouts: pass@1, unbiased pass@k, failure modes, leaderboards and an HTML report.

- :func:`evaluate` reads a run folder (``DIR/trajectories.jsonl``) or trajectories and returns an
  :class:`EvalReport`; for a run folder it writes ``DIR/results.json``.
- :func:`pass_at_k` is the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)`` for a task
  with ``n`` attempts of which ``c`` passed, averaged over tasks.
- :func:`leaderboard` ranks runs by pass@1 into a markdown table (``leaderboard.md``) and a static,
  self-contained HTML page (``index.html``: a task x run grid and a replay of every episode).
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ltenv.data import TRAJECTORIES_FILE, TrajectorySource, load_trajectories
from ltenv.trajectory import Trajectory, now_iso

RESULTS_FILE = "results.json"
RUN_FILE = "run.json"

#: Failure modes in the order they are tested (the first that applies names the failure).
FAILURE_MODES: tuple[str, ...] = (
    "tampered",  # the verifier saw evidence the agent interfered with the verification (never a pass)
    "sandbox_error",  # the sandbox died or could not be driven
    "policy_error",  # the policy failed (endpoint down after retries, exception)
    "context_overflow",  # the prompt no longer fit the model's context
    "parse_error",  # too many consecutive malformed replies
    "resource_limit",  # the agent exhausted its sandbox's memory or process limit, which broke it
    "test_timeout",  # the verifier timed out
    "verifier_error",  # the verifier failed otherwise (no reward file, crashed script): no valid reward
    "agent_timeout",  # the agent used up its turns (max_steps) or wall-clock budget (time_limit)
    "shell_exited",  # the agent's shell exited
    "tests_failed",  # the episode ended normally and the tests did not pass
)

#: Failure modes that say the verifier gave no reward it stands behind; the leaderboard shows their counts.
VERIFIER_FAILURE_MODES: tuple[str, ...] = ("verifier_error", "tampered")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task: the probability that at least one of ``k`` attempts drawn without
    replacement from ``n`` attempts (``c`` of them correct) is correct, ``1 - C(n-c, k) / C(n, k)``.

    ``c = 0`` gives 0.0. As in Chen et al.'s reference implementation, ``n - c < k`` gives 1.0 (every
    k-subset holds a correct attempt); with fewer than ``k`` attempts (``n < k``) that is a convention, not
    an unbiased estimate: such tasks are listed in :attr:`EvalReport.short_tasks`.
    """
    if n < 0 or c < 0 or c > n or k < 1:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def episode_passed(traj: Trajectory) -> bool:
    """Whether an episode counts as a pass: ``passed`` with a reward the verifier stands behind
    (``verifier_status == "ok"``). A tampered episode is never a pass, whatever its record says."""
    return bool(traj.passed) and traj.verified


def classify_failure(traj: Trajectory) -> str | None:
    """The failure mode of an episode (one of :data:`FAILURE_MODES`), or None if it passed."""
    if traj.verifier_status == "tampered":
        return "tampered"
    if episode_passed(traj):
        return None
    term = traj.termination
    if term in ("sandbox_error", "policy_error", "context_overflow", "parse_error", "resource_limit"):
        return term
    verr = (traj.verifier_error or "").lower()
    if "timed out" in verr or "timeout" in verr:
        return "test_timeout"
    if verr or traj.verifier_status == "verifier_error":
        return "verifier_error"
    if term in ("max_steps", "time_limit"):
        return "agent_timeout"
    if term == "shell_exited":
        return "shell_exited"
    return "tests_failed"


@dataclass
class TaskResult:
    task: str
    domain: str | None
    difficulty: str
    n: int
    c: int
    pass_at_1: float
    pass_at_k: dict[int, float]
    mean_reward: float
    failures: dict[str, int]


@dataclass
class GroupResult:
    """Aggregates over the tasks of one domain or difficulty (or all of them)."""

    name: str
    tasks: int
    episodes: int
    passed: int
    pass_at_1: float
    pass_at_k: dict[int, float]


@dataclass
class EvalReport:
    runs: list[str]
    ks: list[int]
    tasks: list[TaskResult]
    overall: GroupResult
    by_domain: list[GroupResult]
    by_difficulty: list[GroupResult]
    failure_modes: dict[str, int]
    short_tasks: dict[int, list[str]] = field(default_factory=dict)
    """For each k: tasks with fewer than k attempts (their pass@k is 1.0 if any passed, else 0.0)."""
    policies: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    mean_turns: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)
    """The run's ``run.json`` when evaluated from a run folder."""
    created_at: str = ""

    @property
    def pass_at_1(self) -> float:
        return self.overall.pass_at_1

    @property
    def pass_at_k(self) -> dict[int, float]:
        return self.overall.pass_at_k

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_episodes(self) -> int:
        return self.overall.episodes

    @property
    def domains(self) -> list[str]:
        return [g.name for g in self.by_domain]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass_at_1"] = self.pass_at_1
        d["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        d["n_tasks"] = self.n_tasks
        d["n_episodes"] = self.n_episodes

        def keys_to_str(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {str(k): keys_to_str(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [keys_to_str(v) for v in obj]
            return obj

        return keys_to_str(d)

    def write(self, path: str | Path) -> Path:
        """Write the report as JSON (``path`` may be a folder: then ``path/results.json``)."""
        p = Path(path)
        if p.is_dir():
            p = p / RESULTS_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return p

    def tables(self) -> list[Any]:
        """Rich tables: summary, per domain, per difficulty, failure modes."""
        from rich.table import Table

        kcols = [f"pass@{k}" for k in self.ks if k != 1]

        def group_table(title: str, groups: list[GroupResult]) -> Table:
            t = Table(title, "tasks", "episodes", "passed", "pass@1", *kcols, title=None)
            for g in groups:
                t.add_row(
                    g.name,
                    str(g.tasks),
                    str(g.episodes),
                    str(g.passed),
                    _pct(g.pass_at_1),
                    *(_pct(g.pass_at_k[k]) for k in self.ks if k != 1),
                )
            return t

        summary = group_table("run" if len(self.runs) <= 1 else "runs", [self.overall])
        summary.title = f"{', '.join(self.runs) or '(trajectories)'}: {self.n_tasks} task(s)"
        failures = Table("failure mode", "episodes", title="failure modes")
        for mode in FAILURE_MODES:
            if self.failure_modes.get(mode):
                failures.add_row(mode, str(self.failure_modes[mode]))
        if not any(self.failure_modes.values()):
            failures.add_row("(none)", "0")
        return [
            summary,
            group_table("domain", self.by_domain),
            group_table("difficulty", self.by_difficulty),
            failures,
        ]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _group(name: str, results: Sequence[TaskResult], ks: Sequence[int]) -> GroupResult:
    m = len(results)
    return GroupResult(
        name=name,
        tasks=m,
        episodes=sum(r.n for r in results),
        passed=sum(r.c for r in results),
        pass_at_1=sum(r.pass_at_1 for r in results) / m if m else 0.0,
        pass_at_k={k: (sum(r.pass_at_k[k] for r in results) / m if m else 0.0) for k in ks},
    )


def _dedupe(trajs: Iterable[Trajectory]) -> list[Trajectory]:
    """One record per (run, task, attempt): the last one wins (a re-recorded episode)."""
    by_key: dict[tuple[str, str, int], Trajectory] = {}
    for t in trajs:
        by_key[(t.run, t.task, t.attempt)] = t
    return list(by_key.values())


def evaluate(
    source: TrajectorySource | Iterable[TrajectorySource],
    k: int | Sequence[int] | None = None,
    *,
    write: bool = True,
) -> EvalReport:
    """Evaluate a run folder (or trajectory files, or :class:`Trajectory` objects).

    ``k``: the pass@k values to report besides pass@1 (an int or a list); default: the smallest number of
    attempts any task has. Every task counts equally (pass@1 is the mean, over tasks, of each task's
    success rate over its attempts). With a single run folder and ``write``, ``results.json`` is written
    into it.
    """
    run_dir: Path | None = None
    if isinstance(source, str | Path) and Path(source).is_dir():
        run_dir = Path(source)
    trajs = _dedupe(load_trajectories(source))
    by_task: dict[str, list[Trajectory]] = {}
    for t in trajs:
        by_task.setdefault(t.task, []).append(t)

    if k is None:
        ks = sorted({1, min((len(v) for v in by_task.values()), default=1)})
    elif isinstance(k, int):
        ks = sorted({1, k})
    else:
        ks = sorted({1, *k})
    if any(x < 1 for x in ks):
        raise ValueError(f"k must be >= 1, got {k}")

    results: list[TaskResult] = []
    failure_modes: Counter[str] = Counter()
    short: dict[int, list[str]] = {}
    for task in sorted(by_task):
        episodes = by_task[task]
        n, c = len(episodes), sum(episode_passed(t) for t in episodes)
        fails = Counter(m for t in episodes if (m := classify_failure(t)) is not None)
        failure_modes.update(fails)
        for kk in ks:
            if n < kk:
                short.setdefault(kk, []).append(task)
        first = episodes[0]
        results.append(
            TaskResult(
                task=task,
                domain=first.domain,
                difficulty=first.difficulty,
                n=n,
                c=c,
                pass_at_1=c / n,
                pass_at_k={kk: pass_at_k(n, c, kk) for kk in ks},
                mean_reward=sum(t.reward if t.verified else 0.0 for t in episodes) / n,
                failures=dict(sorted(fails.items())),
            )
        )

    def grouped(key) -> list[GroupResult]:
        groups: dict[str, list[TaskResult]] = {}
        for r in results:
            groups.setdefault(key(r), []).append(r)
        return [_group(name, rs, ks) for name, rs in sorted(groups.items())]

    usage: Counter[str] = Counter()
    for t in trajs:
        usage.update({k2: int(v) for k2, v in t.usage.items() if isinstance(v, int | float)})
    run_info: dict[str, Any] = {}
    if run_dir is not None and (run_dir / RUN_FILE).is_file():
        try:
            run_info = json.loads((run_dir / RUN_FILE).read_text())
        except ValueError:
            run_info = {}
    report = EvalReport(
        runs=sorted({t.run for t in trajs if t.run}),
        ks=ks,
        tasks=results,
        overall=_group("all", results, ks),
        by_domain=grouped(lambda r: r.domain or "-"),
        by_difficulty=grouped(lambda r: r.difficulty or "unknown"),
        failure_modes={m: failure_modes.get(m, 0) for m in FAILURE_MODES},
        short_tasks=short,
        policies=sorted({t.policy for t in trajs if t.policy}),
        models=sorted({t.model for t in trajs if t.model}),
        mean_turns=sum(t.turns for t in trajs) / len(trajs) if trajs else 0.0,
        usage=dict(sorted(usage.items())),
        run_info=run_info,
        created_at=now_iso(),
    )
    if run_dir is not None and write:
        report.write(run_dir / RESULTS_FILE)
    return report


# ---------------------------------------------------------------------------------------------- leaderboard


@dataclass
class RunEntry:
    name: str
    path: str
    report: EvalReport
    trajectories: list[Trajectory]
    source: str = "ltenv"
    """Where the run comes from: ``ltenv``, or ``terminal-bench`` / ``harbor`` for an imported run folder."""


@dataclass
class Leaderboard:
    k: int
    entries: list[RunEntry]
    """Ranked: best pass@1 first (ties: higher pass@k, then name)."""

    def markdown(self) -> str:
        k = self.k
        kcol = [f"pass@{k}"] if k != 1 else []  # with one attempt per task pass@k is pass@1
        vcol = list(VERIFIER_FAILURE_MODES)  # episodes without a reward the verifier stands behind
        header = ["rank", "run", "policy", "model", "pass@1", *kcol, "tasks", "episodes", *vcol, "domains"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|---:|---|---|---|---:|" + "---:|" * (len(kcol) + 2 + len(vcol)) + "---|",
        ]
        for i, e in enumerate(self.entries, 1):
            r = e.report
            cells = [
                str(i),
                e.name,
                ", ".join(r.policies) or "-",
                ", ".join(r.models) or "-",
                _pct(r.pass_at_1),
                *([_pct(r.pass_at_k.get(k, 0.0))] if kcol else []),
                str(r.n_tasks),
                str(r.n_episodes),
                *(str(r.failure_modes.get(m, 0)) for m in vcol),
                ", ".join(r.domains) or "-",
            ]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        return render_html(self)

    def write(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``leaderboard.md`` and ``index.html`` into the folder ``out``."""
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        md, page = d / "leaderboard.md", d / "index.html"
        md.write_text(self.markdown())
        page.write_text(self.html())
        return md, page


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def leaderboard(
    runs: Sequence[str | Path], *, k: int | None = None, out: str | Path | None = None
) -> Leaderboard:
    """Rank run folders (or trajectory files) by pass@1. ``k`` (default: the smallest number of attempts
    per task over all runs) is the pass@k column. With ``out``, writes ``leaderboard.md`` and
    ``index.html`` there. Runs are named by their folder (a repeated name gets ``#2``...).

    A Terminal-Bench run folder or a Harbor job folder is read as an imported run
    (:func:`ltenv.results_io.import_run`) and ranked beside the others."""
    from ltenv.results_io import detect_layout, import_run

    loaded: list[tuple[str, Path, list[Trajectory], str]] = []
    names: Counter[str] = Counter()
    for src in runs:
        p = Path(src)
        layout = detect_layout(p) if p.is_dir() else None
        if layout in ("terminal-bench", "harbor"):
            trajs = import_run(p).trajectories
        else:
            trajs = _dedupe(load_trajectories(p))
        base = p.name if p.is_dir() else (p.parent.name if p.name == TRAJECTORIES_FILE else p.stem)
        names[base] += 1
        name = base if names[base] == 1 else f"{base}#{names[base]}"
        for t in trajs:
            t.run = name
        loaded.append((name, p, trajs, layout or "ltenv"))
    if k is None:
        per_task = [n for _, _, trajs, _ in loaded for n in Counter(t.task for t in trajs).values()]
        k = min(per_task, default=1)
    entries = []
    for name, p, trajs, source in loaded:
        report = evaluate(trajs, k=k, write=False)
        report.runs = [name]
        entries.append(RunEntry(name, str(p), report, trajs, source))
    entries.sort(key=lambda e: (-e.report.pass_at_1, -e.report.pass_at_k.get(k, 0.0), e.name))
    board = Leaderboard(k=k, entries=entries)
    if out is not None:
        board.write(out)
    return board


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """
:root { --fg:#1d1f21; --muted:#6b7280; --line:#d1d5db; --bg:#fff; --code:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
       margin: 0 auto; max-width: 1400px; padding: 16px 24px 64px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cell { text-align: center; font-variant-numeric: tabular-nums; min-width: 64px; }
td.cell a { color: inherit; text-decoration: none; display: block; }
td.empty { color: var(--muted); background: #fafafa; }
.muted { color: var(--muted); }
input[type=search] { padding: 4px 8px; width: 320px; margin: 4px 0; }
details.episode { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
details.episode > summary { cursor: pointer; }
details.episode[open] { background: #fcfcfd; }
.pass { color: #166534; font-weight: 600; } .fail { color: #991b1b; font-weight: 600; }
.msg { border-left: 4px solid var(--line); margin: 8px 0; padding: 2px 8px; }
.msg.system { border-color: #a78bfa; } .msg.user { border-color: #60a5fa; } .msg.assistant { border-color: #34d399; }
.role { font-weight: 600; font-size: 12px; text-transform: uppercase; color: var(--muted); }
pre { background: var(--code); padding: 6px 8px; white-space: pre-wrap; word-break: break-word; margin: 4px 0;
      max-height: 480px; overflow: auto; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
"""

_JS = """
(function () {
  "use strict";
  var filter = document.getElementById("task-filter");
  var rows = document.querySelectorAll("#grid tbody tr");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      rows.forEach(function (tr) {
        tr.style.display = tr.getAttribute("data-task").toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  }
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!id) { return; }
    var el = document.getElementById(id);
    if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  document.body.setAttribute("data-ready", "1");
})();
"""

_MAX_BLOCK = 200_000


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pre(text: str) -> str:
    if len(text) > _MAX_BLOCK:
        cut = len(text) - _MAX_BLOCK
        text = (
            text[: _MAX_BLOCK // 2] + f"\n[... {cut} characters not shown ...]\n" + text[-_MAX_BLOCK // 2 :]
        )
    return f"<pre>{_e(text)}</pre>"


def _cell_colour(rate: float) -> str:
    # red (0) -> amber -> green (1), light enough for dark text
    hue = int(120 * rate)
    return f"hsl({hue}, 70%, 82%)"


def _episode_html(anchor: str, run: str, t: Trajectory) -> str:
    verdict = '<span class="pass">PASS</span>' if episode_passed(t) else '<span class="fail">FAIL</span>'
    mode = classify_failure(t)
    parts = [
        f'<details class="episode" id="{_e(anchor)}" data-run="{_e(run)}" data-task="{_e(t.task)}" '
        f'data-attempt="{t.attempt}">',
        f"<summary>{verdict} <b>{_e(t.task)}</b> <span class='muted'>run</span> {_e(run)} "
        f"<span class='muted'>attempt</span> {t.attempt} <span class='muted'>reward</span> {t.reward:g} "
        f"<span class='muted'>termination</span> {_e(t.termination)}"
        + (f" <span class='muted'>verifier</span> {_e(t.verifier_status)}" if not t.verified else "")
        + (f" <span class='muted'>failure</span> {_e(mode)}" if mode else "")
        + f" <span class='muted'>turns</span> {t.turns}</summary>",
    ]
    meta = {
        "domain": t.domain or "-",
        "difficulty": t.difficulty,
        "policy": t.policy or "-",
        "model": t.model or "-",
        "scaffold": t.scaffold or "-",
        "steps": str(len(t.steps)),
        "seconds": f"{t.timings.get('total', 0.0):.1f}",
    }
    parts.append("<p class='muted'>" + " · ".join(f"{_e(k)}: {_e(v)}" for k, v in meta.items()) + "</p>")
    if t.error:
        parts.append("<h3>error</h3>" + _pre(t.error))
    if t.verifier_error:
        parts.append("<h3>verifier</h3>" + _pre(t.verifier_error))
    if t.tests:
        parts.append("<h3>tests</h3><table><thead><tr><th>test</th><th>outcome</th></tr></thead><tbody>")
        for test in t.tests:
            outcome = str(test.get("outcome", ""))
            cls = "pass" if outcome == "passed" else ("muted" if outcome == "skipped" else "fail")
            parts.append(f"<tr><td>{_e(test.get('name', ''))}</td><td class='{cls}'>{_e(outcome)}</td></tr>")
        parts.append("</tbody></table>")
    if t.messages:
        parts.append("<h3>conversation</h3>")
        for m in t.messages:
            role = str(m.get("role", ""))
            cls = role if role in ("system", "user", "assistant") else "other"
            parts.append(
                f"<div class='msg {cls}'><div class='role'>{_e(role)}</div>{_pre(str(m.get('content', '')))}</div>"
            )
    if t.steps:
        parts.append(
            "<h3>commands</h3><table><thead><tr><th>#</th><th>action</th><th>output</th>"
            "<th>exit</th></tr></thead><tbody>"
        )
        for i, s in enumerate(t.steps):
            status = "timeout" if s.timed_out else ("-" if s.exit_code is None else str(s.exit_code))
            parts.append(
                f"<tr><td class='num'>{i}</td><td>{_pre(s.action)}</td><td>{_pre(s.observation)}</td>"
                f"<td class='num'>{_e(status)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</details>")
    return "\n".join(parts)


def render_html(board: Leaderboard) -> str:
    """The leaderboard as one self-contained HTML page (inline CSS and JS, no external resources)."""
    k = board.k
    entries = board.entries
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing external may load: the page is a file on disk, viewed offline.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        "<title>ltenv leaderboard</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ltenv leaderboard</h1>",
        f"<p class='muted'>{len(entries)} run(s), ranked by pass@1; pass@{k} is the unbiased estimator "
        f"1 - C(n-c, {k}) / C(n, {k}) averaged over tasks. Generated {_e(now_iso())}.</p>",
        "<h2>Runs</h2>",
        '<table id="runs"><thead><tr><th>rank</th><th>run</th><th>policy</th><th>model</th>'
        "<th>pass@1</th>"
        + (f"<th>pass@{k}</th>" if k != 1 else "")
        + "<th>tasks</th><th>episodes</th>"
        + "".join(f"<th>{_e(m)}</th>" for m in VERIFIER_FAILURE_MODES)
        + "<th>domains</th></tr></thead><tbody>",
    ]
    for i, e in enumerate(entries, 1):
        r = e.report
        imported = f' <span class="muted">(imported: {_e(e.source)})</span>' if e.source != "ltenv" else ""
        out.append(
            f'<tr data-run="{_e(e.name)}" data-source="{_e(e.source)}"><td class="num">{i}</td>'
            f"<td>{_e(e.name)}{imported}</td>"
            f"<td>{_e(', '.join(r.policies) or '-')}</td><td>{_e(', '.join(r.models) or '-')}</td>"
            f'<td class="num">{_pct(r.pass_at_1)}</td>'
            + (f'<td class="num">{_pct(r.pass_at_k.get(k, 0.0))}</td>' if k != 1 else "")
            + f'<td class="num">{r.n_tasks}</td><td class="num">{r.n_episodes}</td>'
            + "".join(f'<td class="num">{r.failure_modes.get(m, 0)}</td>' for m in VERIFIER_FAILURE_MODES)
            + f"<td>{_e(', '.join(r.domains) or '-')}</td></tr>"
        )
    out.append("</tbody></table>")

    # failure modes per run
    out.append("<h2>Failure modes</h2><table id='failures'><thead><tr><th>failure mode</th>")
    out += [f"<th>{_e(e.name)}</th>" for e in entries]
    out.append("</tr></thead><tbody>")
    for mode in FAILURE_MODES:
        if any(e.report.failure_modes.get(mode) for e in entries):
            out.append(f"<tr><td>{_e(mode)}</td>")
            out += [f"<td class='num'>{e.report.failure_modes.get(mode, 0)}</td>" for e in entries]
            out.append("</tr>")
    out.append("</tbody></table>")

    # task x run grid
    tasks: dict[str, tuple[str | None, str]] = {}
    for e in entries:
        for tr in e.report.tasks:
            tasks.setdefault(tr.task, (tr.domain, tr.difficulty))
    anchors: dict[tuple[int, str, int], str] = {}
    for ri, e in enumerate(entries):
        for ti, t in enumerate(sorted(e.trajectories, key=lambda t: (t.task, t.attempt))):
            anchors[(ri, t.task, t.attempt)] = f"ep-{ri}-{ti}"
    out.append("<h2>Tasks</h2>")
    out.append(
        '<input type="search" id="task-filter" placeholder="filter tasks" aria-label="filter tasks">'
        '<table id="grid"><thead><tr><th>task</th><th>domain</th><th>difficulty</th>'
    )
    out += [f"<th>{_e(e.name)}</th>" for e in entries]
    out.append("</tr></thead><tbody>")
    for task in sorted(tasks):
        domain, difficulty = tasks[task]
        out.append(
            f'<tr data-task="{_e(task)}"><td>{_e(task)}</td><td>{_e(domain or "-")}</td><td>{_e(difficulty)}</td>'
        )
        for ri, e in enumerate(entries):
            tr = next((x for x in e.report.tasks if x.task == task), None)
            if tr is None:
                out.append(f'<td class="cell empty" data-run="{_e(e.name)}">-</td>')
                continue
            first = min(t.attempt for t in e.trajectories if t.task == task)
            href = anchors[(ri, task, first)]
            out.append(
                f'<td class="cell" data-run="{_e(e.name)}" style="background:{_cell_colour(tr.c / tr.n)}" '
                f'title="pass@1 {_pct(tr.pass_at_1)}"><a href="#{href}">{tr.c}/{tr.n}</a></td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")

    # replays
    out.append("<h2>Episodes</h2>")
    for ri, e in enumerate(entries):
        out.append(f'<h3 id="run-{ri}">{_e(e.name)} <span class="muted">{_e(e.path)}</span></h3>')
        for t in sorted(e.trajectories, key=lambda t: (t.task, t.attempt)):
            out.append(_episode_html(anchors[(ri, t.task, t.attempt)], e.name, t))
    out.append(f"<script>{_JS}</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
