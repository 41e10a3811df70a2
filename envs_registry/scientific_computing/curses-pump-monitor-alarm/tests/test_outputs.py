import json

JOURNAL = "/var/lib/pumpmon/journal.jsonl"
PUMPS = ["P1-feed", "P2-return", "P3-bypass", "P4-chiller"]


def events():
    with open(JOURNAL) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_console_session_ended_with_quit():
    ev = events()
    assert ev[0]["event"] == "start"
    assert ev[-1]["event"] == "quit"


def test_alarm_acknowledged_then_manual():
    ev = events()
    acks = [e for e in ev if e["event"] == "ack"]
    assert [e["pump"] for e in acks] == ["P3-bypass"]
    modes = [e for e in ev if e["event"] == "mode"]
    assert modes, "no mode change journalled"
    first_manual = next(e for e in modes if e["mode"] == "MANUAL")
    assert first_manual["pump"] == "P3-bypass" and first_manual["acked"] is True


def test_final_modes():
    quit_event = events()[-1]
    assert quit_event["modes"] == {
        "P1-feed": "AUTO",
        "P2-return": "AUTO",
        "P3-bypass": "MANUAL",
        "P4-chiller": "AUTO",
    }
    assert quit_event["acked"] == ["P3-bypass"]
