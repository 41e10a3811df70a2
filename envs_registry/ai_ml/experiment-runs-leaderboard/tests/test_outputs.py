import csv
import hashlib
import json
import math
import os
import re
import subprocess

ROOT = "/app/experiments"
OUT = "/app/leaderboard.csv"
HEADER = ["run", "model", "lr", "best_epoch", "best_val_acc", "final_val_loss"]


def expected_rows():
    """Independent re-implementation of the leaderboard rules."""
    result = []
    for name in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        with open(os.path.join(path, "status.txt")) as fh:
            if fh.read().strip() != "completed":
                continue
        text = open(os.path.join(path, "config.yaml")).read()
        model = re.search(r"^model:\s*(\S+)", text, re.M).group(1)
        lr = re.search(r"^\s+lr:\s*(\S+)", text, re.M).group(1)
        last = {}
        with open(os.path.join(path, "metrics.jsonl")) as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "epoch" in obj:
                    last[int(obj["epoch"])] = obj
        if any(math.isnan(float(v["val_loss"])) for v in last.values()):
            continue
        best_epoch, best_acc = None, -1.0
        for ep in sorted(last):
            if last[ep]["val_acc"] > best_acc:
                best_epoch, best_acc = ep, last[ep]["val_acc"]
        final_loss = last[max(last)]["val_loss"]
        result.append([name, model, lr, str(best_epoch), "%.4f" % best_acc, "%.4f" % final_loss])
    result.sort(key=lambda r: r[0])
    result.sort(key=lambda r: float(r[4]), reverse=True)
    return result


def read_output():
    assert os.path.isfile(OUT), "leaderboard.csv missing"
    with open(OUT, newline="") as fh:
        return list(csv.reader(fh))


def test_header_and_format():
    rows = read_output()
    assert rows[0] == HEADER
    for r in rows[1:]:
        assert len(r) == 6
        assert re.fullmatch(r"\d+\.\d{4}", r[4]), r
        assert re.fullmatch(r"\d+\.\d{4}", r[5]), r


def test_included_runs():
    runs = [r[0] for r in read_output()[1:]]
    assert len(runs) == len(set(runs))
    # failed, still-running, diverged (NaN) and hidden scratch runs must not appear
    for bad in ("run-004", "run-007", "run-010", ".run-999-scratch"):
        assert bad not in runs
    assert sorted(runs) == sorted(r[0] for r in expected_rows())
    assert len(runs) == 11


def test_rows_match_exactly():
    assert read_output()[1:] == expected_rows()


def test_resumed_and_tie_runs():
    by_run = {r[0]: r for r in read_output()[1:]}
    # run-002 was resumed: stale pre-resume epochs must not win
    assert by_run["run-002"][3] == "12" and by_run["run-002"][4] == "0.8728"
    # run-013 has a tie on val_acc: earliest epoch wins
    assert by_run["run-013"][3] == "5"
    assert by_run["run-006"][3] == "10"


def test_best_run_file():
    with open("/app/best_run.txt") as fh:
        content = fh.read()
    assert content == expected_rows()[0][0] + "\n"
    assert content.strip() == read_output()[1][0]


def test_experiments_unchanged():
    files = subprocess.run("cd /app && find experiments -type f | sort | xargs sha256sum | sha256sum",
                           shell=True, capture_output=True, text=True).stdout.split()[0]
    assert files == "9b756253a2e3bcd33b6db4c5a137154df2091afa9ac0526fa9ba94927173873d"
