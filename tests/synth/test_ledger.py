"""The synthesis ledger (ltenv.synth.ledger): JSONL records, reading torn or bad files, and the report."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from rich.console import Console

from ltenv.synth.ledger import (
    LEDGER_FILE,
    PIPELINE_STAGES,
    REJECTION_REASONS,
    Ledger,
    LedgerError,
    LedgerRecord,
    read_ledger,
    report,
)


def stages_to(stage: str) -> list[str]:
    """The stages completed by a candidate that ended in ``stage`` (everything before it)."""
    return list(PIPELINE_STAGES[: PIPELINE_STAGES.index(stage)])


def rec(id: str, verdict: str = "rejected", stage: str = "validate", **kw) -> LedgerRecord:
    kw.setdefault("domain", "data_science")
    kw.setdefault("seed", {"id": id})
    if verdict == "accepted":
        stage = "accept"
        kw.setdefault("stages", list(PIPELINE_STAGES))
    else:
        if "stages" not in kw:
            kw["stages"] = stages_to(stage)
        kw.setdefault("reason", "oracle_fails")
    return LedgerRecord(id=id, verdict=verdict, stage=stage, **kw)


def line(**fields) -> str:
    base = {"id": "c1", "domain": "games", "seed": {}, "verdict": "rejected", "stage": "judge"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


# ------------------------------------------------------------------------------------ read / write
class TestLedgerFile:
    def test_roundtrip(self, tmp_path):
        ledger = Ledger(tmp_path / "out" / LEDGER_FILE)  # the parent is created on append
        a = rec(
            "c1",
            "accepted",
            name="orders-total",
            rounds=2,
            history=[{"round": 0, "reason": "oracle_fails", "detail": "x", "seconds": 1.5}],
            tokens={"prompt": 100, "completion": 20},
            paid_tokens={"prompt": 60, "completion": 10},
            requests=9,
            cached=3,
            seconds=12.5,
            exec_seconds=7.25,
            path="tasks/data_science/orders-total",
        )
        b = rec("c2", stage="judge", reason="judge_rejected", detail="idea 0 (3/10): dull — ünïcode")
        ledger.append(a)
        ledger.append(b)
        assert a.finished and b.finished  # stamped on append
        got = read_ledger(ledger.path)
        assert [r.to_dict() for r in got] == [a.to_dict(), b.to_dict()]
        assert ledger.records() == got
        assert ledger.done_ids() == {"c1", "c2"}
        text = ledger.path.read_text(encoding="utf-8")
        assert text.count("\n") == 2 and text.endswith("}\n")
        assert "ünïcode" in text  # not \u-escaped

    def test_finished_kept_when_set(self, tmp_path):
        ledger = Ledger(tmp_path / LEDGER_FILE)
        ledger.append(rec("c1", finished="2020-01-01T00:00:00+00:00"))
        assert read_ledger(tmp_path)[0].finished == "2020-01-01T00:00:00+00:00"

    def test_dir_or_file_path(self, tmp_path):
        Ledger(tmp_path / LEDGER_FILE).append(rec("c1"))
        assert [r.id for r in read_ledger(tmp_path)] == ["c1"]
        assert [r.id for r in read_ledger(str(tmp_path / LEDGER_FILE))] == ["c1"]

    def test_missing_file(self, tmp_path):
        with pytest.raises(LedgerError, match="no such ledger file"):
            read_ledger(tmp_path)
        with pytest.raises(LedgerError, match="no such ledger file"):
            read_ledger(tmp_path / "nope.jsonl")

    def test_concurrent_appends_keep_whole_lines(self, tmp_path):
        ledger = Ledger(tmp_path / LEDGER_FILE)
        threads = [
            threading.Thread(target=lambda t=t: [ledger.append(rec(f"c{t}-{i}")) for i in range(10)])
            for t in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ledger.done_ids()) == 40

    def test_blank_lines_and_unknown_fields(self, tmp_path):
        path = tmp_path / LEDGER_FILE
        path.write_text("\n" + line(id="a", future_field=1) + "\n\n   \n" + line(id="b") + "\n\n")
        got = read_ledger(path)
        assert [r.id for r in got] == ["a", "b"]
        assert got[0].reason is None and got[0].stages == [] and got[0].rounds == 0

    def test_torn_last_line_skipped_with_warning(self, tmp_path, caplog):
        path = tmp_path / LEDGER_FILE
        whole = line(id="a") + "\n" + line(id="b") + "\n"
        path.write_text(whole + line(id="c")[:25])
        with caplog.at_level(logging.WARNING, logger="ltenv.synth.ledger"):
            got = read_ledger(path)
        assert [r.id for r in got] == ["a", "b"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "line 3 is incomplete" in warnings[0] and str(path) in warnings[0]

    def test_newline_terminated_garbage_is_not_taken_for_a_torn_write(self, tmp_path):
        path = tmp_path / LEDGER_FILE
        path.write_text(line(id="a") + "\n" + '{"id": "b", "dom' + "\n\n")
        with pytest.raises(LedgerError, match=r"line 2"):
            read_ledger(path)

    def test_bad_line_in_the_middle(self, tmp_path):
        path = tmp_path / LEDGER_FILE
        path.write_text(line(id="a") + "\n" + line(id="b")[:20] + "\n" + line(id="c") + "\n")
        with pytest.raises(LedgerError) as info:
            read_ledger(path)
        assert str(path) in str(info.value) and "line 2" in str(info.value)

    def test_complete_but_invalid_last_line_raises(self, tmp_path):
        path = tmp_path / LEDGER_FILE
        path.write_text(line(id="a") + "\n" + '{"id": "b", oops}\n')
        with pytest.raises(LedgerError, match=r"line 2"):
            read_ledger(path)

    @pytest.mark.parametrize("missing", ["id", "domain", "verdict", "stage"])
    def test_missing_required_field(self, tmp_path, missing):
        path = tmp_path / LEDGER_FILE
        path.write_text(line(id="a") + "\n" + line(**{missing: ...}) + "\n")
        with pytest.raises(LedgerError) as info:
            read_ledger(path)
        assert f"line 2: missing field {missing!r}" in str(info.value)

    def test_not_an_object(self, tmp_path):
        path = tmp_path / LEDGER_FILE
        path.write_text('["id", "a"]\n' + line(id="b") + "\n")
        with pytest.raises(LedgerError, match=r"line 1: not a JSON object"):
            read_ledger(path)


# ------------------------------------------------------------------------------------------ report
def sample() -> list[LedgerRecord]:
    return [
        rec("a1", "accepted", domain="games", rounds=0, tokens={"prompt": 100, "completion": 10},
            paid_tokens={"prompt": 100, "completion": 10}, requests=8, cached=0, seconds=10.0, exec_seconds=4.0),
        rec("a2", "accepted", domain="data_science", rounds=2, tokens={"prompt": 200, "completion": 20},
            paid_tokens={"prompt": 50}, requests=10, cached=4, seconds=20.5, exec_seconds=9.5),
        rec("r1", stage="judge", reason="judge_rejected", domain="games", tokens={"prompt": 5}),
        rec("r2", stage="validate", reason="oracle_fails", domain="data_science"),
        rec("r3", stage="validate", reason="oracle_fails", domain="data_science"),
        rec("r4", stage="environment", reason="needs_network", domain="data_science"),
        rec("r5", stage="validate", reason="oracle_fails", domain="data_science"),
        rec("r6", stage="dedupe", reason="duplicate", domain="security"),
        rec("r7", stage="validate", reason="attack_passes", domain="security"),
        rec("r8", stage="validate", reason="attack_passes", domain="security"),
    ]  # fmt: skip


class TestReport:
    def test_counts(self):
        r = report(sample())
        assert (r.n, r.accepted) == (10, 2)
        assert r.acceptance == pytest.approx(0.2)

    def test_funnel(self):
        r = report(sample())
        assert [s for s, _ in r.funnel] == list(PIPELINE_STAGES)
        funnel = dict(r.funnel)
        assert funnel["propose"] == 10  # everyone got past propose
        assert funnel["judge"] == 9  # r1 ended in judge
        assert funnel["dedupe"] == 8  # r6 ended in dedupe
        assert funnel["instruction"] == 8
        assert funnel["environment"] == 7  # r4 ended in environment
        assert funnel["task_toml"] == 7
        assert funnel["validate"] == 2 and funnel["accept"] == 2

    def test_reasons_sorted_by_count(self):
        r = report(sample())
        assert r.reasons[:2] == [("oracle_fails", 3), ("attack_passes", 2)]
        assert sorted(r.reasons[2:]) == [("duplicate", 1), ("judge_rejected", 1), ("needs_network", 1)]
        assert [c for _, c in r.reasons] == sorted((c for _, c in r.reasons), reverse=True)

    def test_unknown_reason(self):
        r = report([rec("x", reason=None)])
        assert r.reasons == [("unknown", 1)]

    def test_rejected_at_in_pipeline_order(self):
        r = report(sample())
        assert r.rejected_at == [("judge", 1), ("dedupe", 1), ("environment", 1), ("validate", 5)]
        r = report(
            [rec("x", stage="validate"), rec("y", stage="weird-stage", stages=[]), rec("z", stage="propose")]
        )
        assert r.rejected_at == [("propose", 1), ("validate", 1), ("weird-stage", 1)]

    def test_domains(self):
        r = report(sample())
        assert r.domains == [("data_science", 5, 1), ("games", 2, 1), ("security", 3, 0)]

    def test_tokens_and_time(self):
        r = report(sample())
        assert r.tokens == {"prompt": 305, "completion": 30}
        assert r.paid_tokens == {"prompt": 150, "completion": 10}
        assert (r.requests, r.cached) == (18, 4)
        assert r.seconds == pytest.approx(30.5) and r.exec_seconds == pytest.approx(13.5)

    def test_mean_rounds_of_accepted_only(self):
        recs = [*sample(), rec("r9", rounds=5)]
        assert report(recs).mean_rounds_accepted == pytest.approx(1.0)
        assert report([rec("x", rounds=3)]).mean_rounds_accepted == 0.0

    def test_last_record_per_id_wins(self):
        first = rec("c1", stage="validate", reason="sandbox_error", tokens={"prompt": 1000}, domain="games")
        retry = rec("c1", "accepted", rounds=1, tokens={"prompt": 7}, domain="games")
        r = report([first, rec("c2", stage="judge", reason="judge_rejected"), retry])
        assert (r.n, r.accepted) == (2, 1)
        assert r.reasons == [("judge_rejected", 1)]
        assert r.rejected_at == [("judge", 1)]
        assert r.tokens == {"prompt": 7}
        assert r.mean_rounds_accepted == 1.0
        assert ("games", 1, 1) in r.domains
        # and the other way round: a later rejection replaces an earlier acceptance
        r = report([retry, first])
        assert (r.n, r.accepted) == (1, 0) and r.reasons == [("sandbox_error", 1)]

    def test_empty(self):
        r = report([])
        assert (r.n, r.accepted, r.acceptance, r.mean_rounds_accepted) == (0, 0, 0.0, 0.0)
        assert all(count == 0 for _, count in r.funnel)
        assert r.reasons == [] and r.domains == [] and r.rejected_at == []
        render(r)  # no division by zero

    def test_to_dict(self):
        d = report(sample()).to_dict()
        assert d["acceptance"] == pytest.approx(0.2)
        assert d["n"] == 10 and d["accepted"] == 2
        assert dict(map(tuple, d["reasons"]))["oracle_fails"] == 3
        assert json.loads(json.dumps(d))["domains"][0] == ["data_science", 5, 1]

    def test_from_file(self, tmp_path):
        ledger = Ledger(tmp_path / LEDGER_FILE)
        for r in sample():
            ledger.append(r)
        assert report(read_ledger(tmp_path)).to_dict() == report(sample()).to_dict()


def render(r) -> str:
    console = Console(record=True, width=200)
    for table in r.tables():
        console.print(table)
    return console.export_text()


class TestTables:
    def test_render(self):
        r = report(sample())
        tables = r.tables()
        assert [t.title for t in tables] == [
            "Synthesis ledger",
            "Acceptance per stage",
            "Rejections by reason",
            "Acceptance per domain",
        ]
        text = render(r)
        rows = {ln.split("│")[1].strip(): ln for ln in text.splitlines() if ln.count("│") >= 3}
        assert "2 (20.0%)" in rows["accepted"]
        assert "10" in rows["candidates"]
        assert "150 / 10" in rows["tokens paid (prompt / completion)"]
        assert "18 / 4" in rows["LLM requests / cache hits"]
        assert "30.5 (13.5)" in rows["candidate-seconds (of which execution)"]
        assert "1.00" in rows["mean repair rounds (accepted)"]

        def cells(key: str) -> list[str]:
            return [c.strip() for c in rows[key].split("│")[1:-1]]

        assert cells("propose") == ["propose", "10", "100%", "0"]
        assert cells("judge") == ["judge", "9", "90%", "1"]
        assert cells("validate") == ["validate", "2", "20%", "5"]
        assert cells("oracle_fails") == ["oracle_fails", "3", REJECTION_REASONS["oracle_fails"]]
        assert cells("needs_network") == ["needs_network", "1", REJECTION_REASONS["needs_network"]]
        assert cells("games") == ["games", "2", "1", "50%"]
        assert cells("security") == ["security", "3", "0", "0%"]
        assert text.index("oracle_fails") < text.index("attack_passes")

    def test_empty_report_renders_dashes(self):
        text = render(report([]))
        assert "0 (0.0%)" in text
        propose = next(ln for ln in text.splitlines() if "│ propose" in ln)
        assert [c.strip() for c in propose.split("│")[1:-1]] == ["propose", "0", "-", "0"]


def test_append_after_an_interrupted_write_starts_a_fresh_line(tmp_path):
    path = tmp_path / LEDGER_FILE
    path.write_text(line(id="a") + "\n" + line(id="b")[:30])  # killed mid-write
    Ledger(path).append(LedgerRecord(id="c", domain="coding", seed={}, verdict="accepted", stage="accept"))
    assert [r.id for r in read_ledger(path)] == ["a", "c"]
    assert path.read_text().count("\n") == 2


def test_torn_record_ending_in_a_brace_is_skipped(tmp_path):
    path = tmp_path / LEDGER_FILE
    whole = line(id="a") + "\n"
    path.write_text(whole + '{"id": "b", "paid_tokens": {"prompt": 1}')
    assert [r.id for r in read_ledger(path)] == ["a"]
