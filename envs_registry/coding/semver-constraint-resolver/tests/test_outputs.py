import hashlib
import itertools
import subprocess
import sys

import pytest

sys.path.insert(0, "/app/relman")

from relman.versions import compare, parse, pick, satisfies  # noqa: E402

CHAIN = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
         "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0-0", "1.1.0-9", "1.1.0-10", "1.1.0-1a", "1.1.0", "1.10.0", "2.0.0"]


def test_precedence_chain():
    for (i, a), (j, b) in itertools.product(enumerate(CHAIN), repeat=2):
        assert compare(a, b) == (i > j) - (i < j), (a, b)


@pytest.mark.parametrize("a,b", [("1.0.0+build.1", "1.0.0+build.2"), ("v1.2.3", "1.2.3"),
                                 ("1.0.0-rc.1+x", "1.0.0-rc.1"), ("v0.0.1+001", "0.0.1")])
def test_equal_precedence(a, b):
    assert compare(a, b) == 0 and compare(b, a) == 0


@pytest.mark.parametrize("text", ["01.2.3", "1.02.3", "1.2", "1.2.3.4", "1.2.3-", "1.2.3+", "1.2.3-01",
                                  "1.2.3-a..b", "1.2.3+a..b", "latest", "vv1.2.3", "1.2.3 -beta", "-1.2.3",
                                  "1.2.3-be_ta", ""])
def test_invalid_versions(text):
    with pytest.raises(ValueError):
        parse(text)


@pytest.mark.parametrize("text", ["0.0.0", "v10.20.30", "1.2.3-0", "1.2.3-0a", "1.2.3-x-y.z--1+build-1.02",
                                  "1.0.0+0001", "1.2.3-rc.1+exp.sha.5114f85"])
def test_valid_versions(text):
    parse(text)


SATISFY = [
    ("1.4.0", "^1.2.3", False, True), ("2.0.0", "^1.2.3", False, False), ("1.2.2", "^1.2.3", False, False),
    ("0.2.9", "^0.2.3", False, True), ("0.3.0", "^0.2.3", False, False), ("0.0.3", "^0.0.3", False, True),
    ("0.0.4", "^0.0.3", False, False), ("1.2.9", "~1.2.3", False, True), ("1.3.0", "~1.2.3", False, False),
    ("0.1.5", "~0.1.0", False, True), ("1.2.3", "1.2.3", False, True), ("1.2.3+b7", "=1.2.3", False, True),
    ("1.2.4", "=1.2.3", False, False), ("1.5.0", ">= 1.2.0 , < 2.0.0", False, True),
    ("2.0.0", ">=1.2.0,<2.0.0", False, False), ("1.2.0", ">1.2.0", False, False), ("1.2.0", "<=1.2.0", False, True),
    ("9.9.9", "*", False, True), ("1.5.0", "v1.5.0", False, True), ("1.5.0", ">v1.4.9", False, True),
    ("2.0.0-rc.1", "<2.0.0", False, False), ("2.0.0-rc.1", "<2.0.0", True, True),
    ("2.0.0-rc.1", "^1.0.0", True, True), ("1.1.0-beta.11", ">=1.1.0-beta.2", True, True),
    ("1.1.0-beta.11", "~1.1.0", True, False), ("2.0.0-rc.1", "*", False, False), ("2.0.0-rc.1", "*", True, True),
]


@pytest.mark.parametrize("version,constraint,pre,expected", SATISFY)
def test_satisfies(version, constraint, pre, expected):
    assert bool(satisfies(version, constraint, allow_pre=pre)) == expected


AVAILABLE = ["v0.9.0", "1.0.0-alpha", "1.0.0", "1.0.1", "1.1.0-beta.2", "1.1.0-beta.11", "1.1.0",
             "1.1.1+build.7", "v1.1.1+build.12", "1.1.1", "1.2.0-rc.1", "01.3.0", "1.2.0", "v2.0.0-rc.1",
             "2.0.0-rc.2", "latest", "", "0.3.1", "0.3.0", "0.4.0"]

PICK = [
    ("^1.0.0", False, "1.2.0"), ("~1.1.0", False, "1.1.1+build.7"), ("<1.2.0, >1.0.0", False, "1.1.1+build.7"),
    ("*", False, "1.2.0"), ("*", True, "2.0.0-rc.2"), (">=2.0.0-rc.1", True, "2.0.0-rc.2"),
    (">=2.0.0-rc.1", False, None), ("^0.3.0", False, "0.3.1"), ("^0.9.0", False, "v0.9.0"),
    ("<1.1.0", True, "1.1.0-beta.11"), ("=1.3.0", False, None), ("^3.0.0", False, None),
]


@pytest.mark.parametrize("constraint,pre,expected", PICK)
def test_pick(constraint, pre, expected):
    assert pick(list(AVAILABLE), constraint, allow_pre=pre) == expected


def run_cli(tmp_path, *args):
    f = tmp_path / "available.txt"
    f.write_text("\n".join(AVAILABLE) + "\n")
    return subprocess.run([sys.executable, "-m", "relman", "pick", *args, str(f)], cwd="/app/relman",
                          capture_output=True, text=True, timeout=30)


def test_cli(tmp_path):
    res = run_cli(tmp_path, "^1.0.0")
    assert (res.returncode, res.stdout) == (0, "1.2.0\n")
    res = run_cli(tmp_path, "--pre", "*")
    assert (res.returncode, res.stdout) == (0, "2.0.0-rc.2\n")
    res = run_cli(tmp_path, "^4.0.0")
    assert res.returncode == 1 and res.stdout == "" and "no matching version" in res.stderr


def test_existing_unit_tests_untouched_and_passing():
    digest = hashlib.sha256(open("/app/relman/tests/test_versions.py", "rb").read()).hexdigest()
    assert digest == "cfbb3259504df7249c733b980e069fa69ac1e08acea34546ad972c6882b70172"
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd="/app/relman", capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
