"""Semantic version parsing, comparison and constraint matching.

See docs/versions.md for the supported syntax.
"""
import re

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")


class Version:
    def __init__(self, text):
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise ValueError(f"invalid version: {text!r}")
        self.text = text
        self.major, self.minor, self.patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
        self.prerelease = m.group(4) or ""
        self.build = m.group(5) or ""

    def key(self):
        return (self.major, self.minor, self.patch, self.prerelease, self.build)

    def __repr__(self):
        return f"Version({self.text!r})"


def parse(text):
    return Version(text)


def compare(a, b):
    """Return -1, 0 or 1 as version string a is lower than, equal to or higher than b."""
    ka, kb = parse(a).key(), parse(b).key()
    return (ka > kb) - (ka < kb)


def _bounds(op, v):
    """Translate one comparator into a list of (operator, version) pairs."""
    if op == "^":
        return [(">=", v), ("<", f"{parse(v).major + 1}.0.0")]
    if op == "~":
        return [(">=", v), ("<", f"{parse(v).major + 1}.0.0")]
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
        m = re.match(r"^(\^|~|>=|<=|>|<|=)?\s*(.+)$", part)
        for op, bound in _bounds(m.group(1), m.group(2)):
            if not _check(version, op, bound):
                return False
    return True


def pick(available, constraint, allow_pre=False):
    """Highest version from `available` that satisfies `constraint` (None if there is none)."""
    best = None
    for text in available:
        if satisfies(text, constraint, allow_pre) and (best is None or compare(text, best) > 0):
            best = text
    return best
