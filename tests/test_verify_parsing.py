"""Reward and per-test result parsing (the in-sandbox verifier runs are tested in test_env.py)."""

import json

import pytest

from ltenv.verify import parse_ctrf, parse_junit, parse_reward


@pytest.mark.parametrize(
    ("text", "source", "value"),
    [
        ("1\n", "reward.txt", 1.0),
        ("0", "reward.txt", 0.0),
        (" 0.25 ", "reward.txt", 0.25),
        ('{"reward": 0.5}', "reward.json", 0.5),
        ('{"a": 1, "b": 0}', "reward.json", 0.5),
        ("1", "reward.json", 1.0),
    ],
)
def test_parse_reward(text, source, value):
    assert parse_reward(text, source) == value


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("", "reward.txt"),
        ("1.5", "reward.txt"),
        ("-0.1", "reward.txt"),
        ("nan", "reward.txt"),
        ("yes", "reward.txt"),
        ('"x"', "reward.json"),
        ("{}", "reward.json"),
    ],
)
def test_parse_reward_rejects(text, source):
    with pytest.raises(ValueError):
        parse_reward(text, source)


def test_parse_junit():
    xml = """<?xml version="1.0"?><testsuites><testsuite name="pytest">
    <testcase classname="test_outputs" name="test_a" time="0.01"/>
    <testcase classname="test_outputs" name="test_b" time="0.02"><failure message="assert 1 == 2">trace</failure></testcase>
    <testcase classname="test_outputs" name="test_c"><skipped message="why"/></testcase>
    </testsuite></testsuites>"""
    res = parse_junit(xml)
    assert [(t.name, t.outcome) for t in res] == [
        ("test_outputs::test_a", "passed"),
        ("test_outputs::test_b", "failed"),
        ("test_outputs::test_c", "skipped"),
    ]
    assert res[1].message == "assert 1 == 2"
    assert res[0].duration_s == 0.01


def test_parse_ctrf():
    data = {
        "results": {
            "tests": [
                {"name": "t1", "status": "passed", "duration": 12},
                {"name": "t2", "status": "failed", "message": "boom"},
            ]
        }
    }
    res = parse_ctrf(json.dumps(data))
    assert [(t.name, t.outcome, t.message) for t in res] == [("t1", "passed", ""), ("t2", "failed", "boom")]
    assert res[0].duration_s == 0.012
