#!/bin/bash
set -euo pipefail
cd /app/relman
cat docs/versions.md
python3 -m pytest -q tests || true
cat > relman/versions.py <<'PY'
"""Semantic version parsing, comparison and constraint matching.

See docs/versions.md for the supported syntax.
"""
import functools
import re

_NUM = r"(0|[1-9]\d*)"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION_RE = re.compile(
    rf"^v?{_NUM}\.{_NUM}\.{_NUM}"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class Version:
    def __init__(self, text):
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise ValueError(f"invalid version: {text!r}")
        self.text = text
        self.major, self.minor, self.patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
        self.prerelease = tuple(m.group(4).split(".")) if m.group(4) else ()
        self.build = m.group(5) or ""

    def __repr__(self):
        return f"Version({self.text!r})"


def parse(text):
    return Version(text)


def _cmp(x, y):
    return (x > y) - (x < y)


def _cmp_versions(a, b):
    c = _cmp((a.major, a.minor, a.patch), (b.major, b.minor, b.patch))
    if c:
        return c
    if not a.prerelease or not b.prerelease:
        # a release has higher precedence than any of its pre-releases
        return _cmp(not a.prerelease, not b.prerelease)
    for x, y in zip(a.prerelease, b.prerelease):
        if x == y:
            continue
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            return _cmp(int(x), int(y))
        if xd != yd:
            return -1 if xd else 1  # numeric identifiers sort before alphanumeric ones
        return _cmp(x, y)
    return _cmp(len(a.prerelease), len(b.prerelease))


def compare(a, b):
    """Return -1, 0 or 1 as version string a is lower than, equal to or higher than b."""
    return _cmp_versions(parse(a), parse(b))


def _bounds(op, v):
    """Translate one comparator into a list of (operator, version) pairs."""
    p = parse(v)
    if op == "^":
        if p.major > 0:
            upper = f"{p.major + 1}.0.0"
        elif p.minor > 0:
            upper = f"0.{p.minor + 1}.0"
        else:
            upper = f"0.0.{p.patch + 1}"
        return [(">=", v), ("<", upper)]
    if op == "~":
        return [(">=", v), ("<", f"{p.major}.{p.minor + 1}.0")]
    return [(op or "=", v)]


def _check(version, op, bound):
    c = compare(version, bound)
    return {"=": c == 0, ">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]


def satisfies(version, constraint, allow_pre=False):
    v = parse(version)
    if v.prerelease and not allow_pre:
        return False
    for part in constraint.split(","):
        part = part.strip()
        if part == "*":
            continue
        m = re.match(r"^(\^|~|>=|<=|>|<|=)?\s*(\S+)$", part)
        if not m:
            raise ValueError(f"invalid comparator: {part!r}")
        for op, bound in _bounds(m.group(1), m.group(2)):
            if not _check(version, op, bound):
                return False
    return True


def pick(available, constraint, allow_pre=False):
    """Highest version from `available` that satisfies `constraint` (None if there is none)."""
    best = None
    for text in available:
        try:
            ok = satisfies(text, constraint, allow_pre)
        except ValueError:
            continue
        if ok and (best is None or compare(text, best) > 0):
            best = text
    return best
PY
python3 -m pytest -q tests
python3 -m relman pick "^1.0.0" available.txt
