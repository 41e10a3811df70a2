"""Evaluation: pass@k, failure modes, reports, leaderboard markdown and the HTML page in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ltenv.evaluation import (
    FAILURE_MODES,
    classify_failure,
    episode_passed,
    evaluate,
    leaderboard,
    pass_at_k,
)
from ltenv.trajectory import Step, Trajectory, TrajectoryStore
from tests.support.cli import run_ltenv as ltenv

XSS = "<script>document.body.setAttribute('data-pwned','1')</script>"


def ep(task: str, attempt: int, passed: bool, **kw) -> Trajectory:
    kw.setdefault("domain", "coding")
    kw.setdefault("difficulty", "easy")
    return Trajectory(
        task=task,
        attempt=attempt,
        passed=passed,
        reward=1.0 if passed else 0.0,
        messages=[
            {"role": "user", "content": f"Solve {task}"},
            {"role": "assistant", "content": '{"commands": []}'},
        ],
        **kw,
    )


def write_run(root: Path, name: str, trajs: list[Trajectory]) -> Path:
    d = root / name
    store = TrajectoryStore(d / "trajectories.jsonl")
    for t in trajs:
        store.append(t)
    return d


# ---------------------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 0, 1, 0.0),  # c = 0
        (4, 4, 1, 1.0),  # c = n
        (4, 4, 4, 1.0),
        (4, 1, 1, 0.25),  # pass@1 = c/n
        (4, 2, 1, 0.5),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (4, 1, 4, 1.0),  # n - c < k
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (2, 0, 4, 0.0),  # n < k, none passed
        (2, 1, 4, 1.0),  # n < k, some passed (reference-implementation convention)
        (0, 0, 1, 0.0),
    ],
)
def test_pass_at_k_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_is_mean_over_subsets():
    """pass@k equals the fraction of k-subsets of the attempts that contain a success."""
    from itertools import combinations

    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(range(n), k))
                brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute)


@pytest.mark.parametrize(("n", "c", "k"), [(2, 3, 1), (-1, 0, 1), (3, 1, 0)])
def test_pass_at_k_rejects_bad_input(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# ---------------------------------------------------------------------------------------------- failure modes


@pytest.mark.parametrize(
    ("fields", "mode"),
    [
        ({"passed": True}, None),
        ({"termination": "sandbox_error", "error": "container exited (137)"}, "sandbox_error"),
        ({"termination": "policy_error"}, "policy_error"),
        ({"termination": "context_overflow"}, "context_overflow"),
        ({"termination": "parse_error", "parse_errors": 3}, "parse_error"),
        ({"verifier_error": "verifier timed out after 120s ([verifier] timeout_sec)"}, "test_timeout"),
        ({"verifier_error": "tests timed out after 60s (task.yaml max_test_timeout_sec)"}, "test_timeout"),
        ({"termination": "max_steps"}, "agent_timeout"),
        ({"termination": "time_limit"}, "agent_timeout"),
        ({"termination": "shell_exited"}, "shell_exited"),
        ({"verifier_error": "no reward file written"}, "verifier_error"),
        # the verifier gave no valid reward: that, not the agent's budget, is what is known of the episode
        ({"termination": "max_steps", "verifier_error": "reward.txt is malformed"}, "verifier_error"),
        ({"termination": "shell_exited", "verifier_status": "verifier_error"}, "verifier_error"),
        # a timed-out verifier is no pass even where a reward file was read
        (
            {"passed": True, "verifier_error": "verifier timed out after 120s ([verifier] timeout_sec)"},
            "test_timeout",
        ),
        # tampering is never a pass and outranks every other mode
        (
            {"passed": True, "verifier_status": "tampered", "verifier_error": "reward file rewritten"},
            "tampered",
        ),
        ({"termination": "max_steps", "verifier_status": "tampered"}, "tampered"),
        ({}, "tests_failed"),
    ],
)
def test_classify_failure(fields, mode):
    passed = fields.pop("passed", False)
    t = ep("t", 0, passed, **fields)
    assert classify_failure(t) == mode
    assert mode is None or mode in FAILURE_MODES
    assert episode_passed(t) == (mode is None)


# ---------------------------------------------------------------------------------------------- reports


def _sample_run() -> list[Trajectory]:
    trajs = []
    # a: 4 attempts, 2 pass; b: 4 attempts, 0 pass; c: 4 attempts, all pass (hard, security)
    for i in range(4):
        trajs.append(ep("a", i, i < 2))
        trajs.append(
            ep(
                "b",
                i,
                False,
                termination="max_steps" if i < 3 else "submitted",
                domain="games",
                difficulty="medium",
            )
        )
        trajs.append(ep("c", i, True, domain="security", difficulty="hard"))
    return trajs


def test_evaluate_run_dir_writes_results(tmp_path):
    d = write_run(tmp_path, "myrun", _sample_run())
    (d / "run.json").write_text(json.dumps({"policy": "oracle", "k": 4}))
    report = evaluate(d)
    assert report.ks == [1, 4]
    assert report.n_tasks == 3 and report.n_episodes == 12
    assert report.pass_at_1 == pytest.approx((0.5 + 0 + 1) / 3)
    assert report.pass_at_k[4] == pytest.approx((1 + 0 + 1) / 3)
    assert report.runs == ["myrun"] and report.run_info == {"policy": "oracle", "k": 4}
    per_task = {r.task: r for r in report.tasks}
    assert per_task["a"].n == 4 and per_task["a"].c == 2
    assert per_task["b"].failures == {"agent_timeout": 3, "tests_failed": 1}
    assert report.failure_modes["agent_timeout"] == 3 and report.failure_modes["tests_failed"] == 3
    domains = {g.name: g for g in report.by_domain}
    assert set(domains) == {"coding", "games", "security"}
    assert domains["coding"].pass_at_1 == 0.5 and domains["games"].pass_at_k[4] == 0.0
    diffs = {g.name: g for g in report.by_difficulty}
    assert diffs["hard"].passed == 4 and diffs["medium"].episodes == 4

    data = json.loads((d / "results.json").read_text())
    assert data["pass_at_1"] == pytest.approx(report.pass_at_1)
    assert data["pass_at_k"]["4"] == pytest.approx(report.pass_at_k[4])
    assert data["n_tasks"] == 3 and {t["task"] for t in data["tasks"]} == {"a", "b", "c"}
    assert data["failure_modes"]["agent_timeout"] == 3


def test_evaluate_k_options_and_uneven_attempts():
    trajs = [ep("a", 0, True), ep("a", 1, False), ep("a", 2, False), ep("b", 0, False)]
    report = evaluate(trajs)
    assert report.ks == [1]  # b has one attempt: pass@1 only by default
    assert report.pass_at_1 == pytest.approx((1 / 3 + 0) / 2)
    report = evaluate(trajs, k=[2, 3])
    assert report.pass_at_k[2] == pytest.approx((pass_at_k(3, 1, 2) + 0) / 2)
    assert report.short_tasks == {2: ["b"], 3: ["b"]}
    # a re-recorded (task, attempt) counts once: the last record wins
    report = evaluate([ep("a", 0, False), ep("a", 0, True)])
    assert report.n_episodes == 1 and report.pass_at_1 == 1.0
    with pytest.raises(ValueError):
        evaluate(trajs, k=0)


def test_tampered_episodes_are_failures_in_reports_and_leaderboard(tmp_path):
    """A tampered record that still says reward 1 / passed counts as failure mode ``tampered``, not as a pass:
    in the report, results.json, the markdown leaderboard and the HTML page."""
    cheats = [
        ep("a", 0, True),
        ep("a", 1, True, verifier_status="tampered", verifier_error="reward.txt disagrees with the tests"),
        ep("b", 0, False, verifier_error="the verifier wrote no /logs/verifier/reward.txt or reward.json"),
        ep("b", 1, False),
    ]
    d = write_run(tmp_path, "cheats", cheats)
    report = evaluate(d)
    per_task = {r.task: r for r in report.tasks}
    assert per_task["a"].c == 1 and per_task["a"].mean_reward == 0.5
    assert per_task["a"].failures == {"tampered": 1}
    assert per_task["b"].failures == {"verifier_error": 1, "tests_failed": 1}
    assert report.pass_at_1 == pytest.approx((0.5 + 0.0) / 2) and report.overall.passed == 1
    data = json.loads((d / "results.json").read_text())
    assert data["failure_modes"]["tampered"] == 1 and data["failure_modes"]["verifier_error"] == 1
    assert data["tasks"][0]["failures"] == {"tampered": 1}

    honest = write_run(tmp_path, "honest", [ep("a", i, True) for i in range(2)] + [ep("b", 0, False)])
    board = leaderboard([d, honest], out=tmp_path / "board")
    lines = (tmp_path / "board" / "leaderboard.md").read_text().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[-3:] == ["verifier_error", "tampered", "domains"]
    rows = {r[1]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert (
        rows["cheats"][header.index("tampered")] == "1" and rows["cheats"][header.index("pass@1")] == "25.0%"
    )
    assert rows["cheats"][header.index("verifier_error")] == "1"
    assert rows["honest"][header.index("tampered")] == "0"
    page = board.html()
    failures = page.split("<table id='failures'>")[1].split("</table>")[0]
    assert "<tr><td>tampered</td>\n<td class='num'>0</td>\n<td class='num'>1</td>" in failures
    episode = page.split('data-run="cheats" data-task="a" data-attempt="1">')[1].split("</summary>")[0]
    assert "FAIL" in episode and "PASS" not in episode and "tampered" in episode


def test_report_tables_render():
    from rich.console import Console

    report = evaluate(_sample_run(), k=4)
    console = Console(record=True, width=140)
    for t in report.tables():
        console.print(t)
    text = console.export_text()
    for s in ("pass@1", "pass@4", "coding", "games", "security", "hard", "agent_timeout", "50.0%", "66.7%"):
        assert s in text


# ---------------------------------------------------------------------------------------------- leaderboard


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    weak = [ep("a", i, i == 0, policy="nop") for i in range(2)] + [
        ep("b", i, False, policy="nop") for i in range(2)
    ]
    strong = [ep("a", i, True, policy="oracle") for i in range(2)] + [
        ep("b", i, i == 1, policy="oracle") for i in range(2)
    ]
    evil = ep(
        "evil<b>|task",
        0,
        False,
        policy="oracle",
        domain="security",
        verifier_error="boom </pre><script>alert(2)</script>",
        tests=[{"name": "test_<img src=x onerror=alert(3)>", "outcome": "failed"}],
        steps=[Step(action="cat page.html", observation=XSS + "\n& done", exit_code=0)],
        termination="max_steps",
    )
    evil.messages.append({"role": "user", "content": "output:\n" + XSS})
    return write_run(tmp_path, "weak", weak), write_run(tmp_path, "strong", [*strong, evil])


def test_leaderboard_markdown(tmp_path):
    weak, strong = _two_runs(tmp_path)
    board = leaderboard([weak, strong], out=tmp_path / "board")
    assert [e.name for e in board.entries] == ["strong", "weak"]  # ranked by pass@1
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    lines = md.strip().splitlines()
    assert board.k == 1  # evil<b>|task has a single attempt
    assert (
        lines[0]
        == "| rank | run | policy | model | pass@1 | tasks | episodes | verifier_error | tampered | domains |"
    )  # no pass@1 twice
    assert lines[1].count("|") == lines[0].count("|")
    assert lines[2].startswith("| 1 | strong | oracle |") and lines[3].startswith("| 2 | weak | nop |")
    # strong: a 2/2, b 1/2, evil 0/1 -> (1 + 0.5 + 0) / 3; evil's verifier failed
    assert "| 50.0% |" in lines[2] and "| 3 | 5 | 1 | 0 |" in lines[2]
    assert "| 25.0% |" in lines[3] and "| 2 | 4 | 0 | 0 |" in lines[3]
    assert "coding, security" in lines[2]
    board2 = leaderboard([weak, strong], k=2)
    header, rule = board2.markdown().splitlines()[:2]
    assert header == (
        "| rank | run | policy | model | pass@1 | pass@2 | tasks | episodes | verifier_error | tampered | domains |"
    )
    assert rule.count("|") == header.count("|")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _chromium()
    if path is None:
        reason = "chromium is not installed (apt-get install chromium; scripts/setup.sh installs it)"
        if os.environ.get("LTENV_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"required in CI but unavailable: {reason}")
        pytest.skip(reason)
    return path


def _dump_dom(chromium: str, url: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=2000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_leaderboard_html_in_chromium(tmp_path, chromium):
    weak, strong = _two_runs(tmp_path)
    leaderboard([weak, strong], out=tmp_path / "board")
    page = tmp_path / "board" / "index.html"
    source = page.read_text()
    assert "http://" not in source and "https://" not in source  # self-contained
    assert XSS not in source and "&lt;script&gt;document.body.setAttribute" in source

    dom, log = _dump_dom(chromium, page.as_uri() + "#ep-0-0")
    console = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert 'data-ready="1"' in dom  # the page's script ran to the end
    assert "data-pwned" not in dom.split("&lt;script&gt;")[0]  # the payload did not run ...
    assert 'data-pwned="1"' not in dom and '<img src="x"' not in dom
    assert (
        "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in dom
    )  # ... it is text

    from html.parser import HTMLParser

    class Grid(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows: dict[str, list[str]] = {}
            self.runs: list[str] = []
            self.episodes: list[tuple[str, str, str, bool]] = []
            self._row: str | None = None
            self._in_grid = False
            self._cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self._in_grid = a.get("id") == "grid"
            if self._in_grid and tag == "tr" and "data-task" in a:
                self._row = a["data-task"]
                self.rows[self._row] = []
            if self._in_grid and tag == "td" and "cell" in (a.get("class") or ""):
                self._cell = []
            if tag == "tr" and "data-run" in a:
                self.runs.append(a["data-run"])
            if tag == "details":
                self.episodes.append((a["data-run"], a["data-task"], a["data-attempt"], "open" in a))

        def handle_data(self, data):
            if self._cell is not None:
                self._cell.append(data)

        def handle_endtag(self, tag):
            if tag == "td" and self._cell is not None and self._row is not None:
                self.rows[self._row].append("".join(self._cell).strip())
                self._cell = None
            if tag == "table":
                self._in_grid = False

    grid = Grid()
    grid.feed(dom)
    assert grid.runs == ["strong", "weak"]
    assert grid.rows == {"a": ["2/2", "1/2"], "b": ["1/2", "0/2"], "evil<b>|task": ["0/1", "-"]}
    assert len(grid.episodes) == 9
    assert ("weak", "b", "1", False) in grid.episodes
    opened = [e for e in grid.episodes if e[3]]
    assert opened == [("strong", "a", "0", True)]  # the #ep-0-0 link opened its replay
    assert "test_&lt;img src=x onerror=alert(3)&gt;" in dom
    assert "boom &lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in dom


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_eval_from_and_leaderboard(tmp_path):
    d = write_run(tmp_path, "myrun", _sample_run())
    proc = ltenv("eval", "--from", d, "-k", "2")
    assert proc.returncode == 0, proc.stderr
    for s in ("pass@1", "pass@2", "coding", "security", "agent_timeout", "50.0%"):
        assert s in proc.stdout
    data = json.loads((d / "results.json").read_text())
    assert data["ks"] == [1, 2] and data["n_tasks"] == 3
    proc = ltenv("eval", "--from", d, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pass_at_k"]["4"] == pytest.approx(2 / 3)
    assert "pass@4" in proc.stderr
    proc = ltenv("eval", "--from", tmp_path / "nothing")
    assert proc.returncode == 2 and "no trajectories.jsonl" in proc.stderr

    weak, strong = _two_runs(tmp_path)
    proc = ltenv("leaderboard", weak, strong, "--out", tmp_path / "lb")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (tmp_path / "lb" / "leaderboard.md").read_text()
    assert proc.stdout.splitlines()[2].startswith("| 1 | strong |")
    assert (tmp_path / "lb" / "index.html").is_file()
    assert ltenv("leaderboard", tmp_path / "nothing", "--out", tmp_path / "lb2").returncode == 2


# ---------------------------------------------------------------------------------------------- end to end

E2E_TASKS = ["write-greeting", "oracle-fails"]


@pytest.mark.bwrap
@pytest.mark.docker
@pytest.mark.slow
def test_end_to_end_rollout_export_eval_leaderboard(tmp_path, store, bwrap_ok, chromium):
    """ltenv eval (rollout + evaluate) with the oracle, ltenv rollout with nop, then export, eval --from and
    leaderboard, on the fixture tasks in real bwrap sandboxes."""
    from ltenv.data import read_dataset

    fixtures = Path(__file__).parent / "fixtures" / "tasks"
    oracle, nop = tmp_path / "oracle", tmp_path / "nop"
    proc = ltenv(
        "eval", *E2E_TASKS, "--policy", "oracle", "--tasks", fixtures, "-k", "2", "-j", "2", "--out", oracle
    )
    assert proc.returncode == 0, proc.stderr
    assert "pass@2" in proc.stdout and "tests_failed" in proc.stdout
    results = json.loads((oracle / "results.json").read_text())
    per_task = {t["task"]: t for t in results["tasks"]}
    assert per_task["write-greeting"]["c"] == 2 and per_task["oracle-fails"]["c"] == 0
    assert results["pass_at_1"] == pytest.approx(0.5) and results["n_episodes"] == 4
    assert results["run_info"]  # run.json of the rollout was read

    proc = ltenv(
        "rollout", *E2E_TASKS, "--policy", "nop", "--tasks", fixtures, "-k", "2", "-j", "2", "--out", nop
    )
    assert proc.returncode == 0, proc.stderr
    proc = ltenv("eval", "--from", nop, "--json")
    assert proc.returncode == 0, proc.stderr
    nop_results = json.loads(proc.stdout)
    assert nop_results["pass_at_1"] == 0.0 and nop_results["n_episodes"] == 4
    assert nop_results["failure_modes"]["tests_failed"] == 4

    proc = ltenv("export", "sft", oracle, nop, "--out", tmp_path / "sft.jsonl", "--no-dedupe")
    assert proc.returncode == 0, proc.stderr
    sft = read_dataset(tmp_path / "sft.jsonl")
    assert sorted(sft["task"]) == ["write-greeting", "write-greeting"] and set(sft["run"]) == {"oracle"}
    assert all(m[-1]["role"] == "assistant" for m in sft["messages"])

    proc = ltenv("export", "pairs", oracle, nop, "--out", tmp_path / "pairs.parquet", "--no-dedupe")
    assert proc.returncode == 0, proc.stderr
    pairs = read_dataset(tmp_path / "pairs.parquet")
    # write-greeting: 2 oracle successes x 2 nop failures; oracle-fails: all rewards tie at 0
    assert pairs.num_rows == 4 and set(pairs["task"]) == {"write-greeting"}
    assert set(pairs["chosen_run"]) == {"oracle"} and set(pairs["rejected_run"]) == {"nop"}
    assert all(p[-1]["role"] == "user" for p in pairs["prompt"])

    proc = ltenv("leaderboard", nop, oracle, "--out", tmp_path / "lb")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[2].startswith("| 1 | oracle | oracle |") and "| 50.0% | 50.0% | 2 | 4 |" in lines[2]
    assert lines[3].startswith("| 2 | nop | nop |") and "| 0.0% | 0.0% | 2 | 4 |" in lines[3]
    dom, log = _dump_dom(chromium, (tmp_path / "lb" / "index.html").as_uri())
    assert [line for line in log.splitlines() if ":CONSOLE" in line] == []
    assert 'data-ready="1"' in dom
    for task in E2E_TASKS:
        assert f'<tr data-task="{task}">' in dom
    assert dom.count('<details class="episode"') == 8


@pytest.mark.bwrap
@pytest.mark.docker
@pytest.mark.slow
def test_hf_rollout_export_matches_policy_prompts(tmp_path, store, bwrap_ok, fixture_task):
    """Token equality on a real rollout: a tiny local Qwen3 HFPolicy plays a fixture task; for every
    assistant turn of the exported SFT example (and of a preference pair), the chat template applied to the
    messages before it gives exactly the tokens of the prompt the policy was given (Completion.prompt_text)."""
    pytest.importorskip("torch")
    import ltenv
    from ltenv.agents import HFPolicy
    from ltenv.data import export_pairs, export_sft, read_dataset
    from ltenv.models.tiny import build_tiny_qwen3

    model = build_tiny_qwen3(tmp_path / "tiny")
    seen: dict[tuple[int, int], str] = {}

    class Recording(HFPolicy):
        def complete(self, messages, ctx):
            c = super().complete(messages, ctx)
            assert c.prompt_text is not None
            seen[(ctx.attempt, ctx.turn)] = c.prompt_text
            return c

    policy = Recording(model, max_new_tokens=24, temperature=1.0)
    task = fixture_task("write-greeting")
    res = ltenv.rollout(policy, [task], k=2, jobs=1, out=tmp_path / "run", max_turns=4, seed=1)
    assert len(res.trajectories) == 2 and all(t.turns >= 1 for t in res.trajectories)

    tokenizer = policy.tokenizer

    def check(messages: list[dict], attempt: int) -> int:
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        full = tokenizer.apply_chat_template(messages)["input_ids"]
        for turn, i in enumerate(turns):
            exported = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True)["input_ids"]
            given = tokenizer(seen[(attempt, turn)], add_special_tokens=False)["input_ids"]
            assert exported == given, (attempt, turn)
            # and the training sequence (the whole chat) starts with that prompt (this template's property)
            assert full[: len(given)] == given, (attempt, turn)
        return len(turns)

    export_sft(res.out, tmp_path / "sft.parquet", min_reward=0.0, dedupe=False)
    sft = read_dataset(tmp_path / "sft.parquet")
    assert sft.num_rows == 2
    assert sum(check(row["messages"], row["attempt"]) for row in sft) == len(seen)

    # the two attempts share the prompt; give them different rewards to make a pair
    trajs = list(res.trajectories)
    trajs[0] = trajs[0].model_copy(update={"reward": 1.0, "passed": True})
    export_pairs(trajs, tmp_path / "pairs.jsonl")
    pairs = read_dataset(tmp_path / "pairs.jsonl")
    assert pairs.num_rows == 1
    row = pairs[0]
    check(row["prompt"] + row["chosen"], row["chosen_attempt"])
    check(row["prompt"] + row["rejected"], row["rejected_attempt"])
