#!/bin/bash
set -euo pipefail
cd /app/patchy
cat README.md; cat examples/sample.diff
cat > patchy/core.py <<'PY'
"""Apply unified diffs (GNU `diff -u`/`diff -ruN` and `git diff` output)."""
import os
import re

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    pass


class Hunk:
    def __init__(self, old_start, old_count, new_start, new_count):
        self.old_start, self.old_count = old_start, old_count
        self.new_start, self.new_count = new_start, new_count
        self.lines = []          # (tag, text) with tag in " ", "-", "+"; text without the newline
        self.old_eof_nl = True   # False when the old side ends with "\ No newline at end of file"
        self.new_eof_nl = True

    def old_lines(self):
        return [t for tag, t in self.lines if tag in " -"]

    def new_lines(self):
        return [t for tag, t in self.lines if tag in " +"]


class FilePatch:
    def __init__(self, old_header, new_header):
        self.old_path, self.old_missing = _path(old_header)
        self.new_path, self.new_missing = _path(new_header)
        self.hunks = []


def _path(header):
    """"--- a/foo.c\t2024-01-01 10:00:00.000000000 +0000" -> ("a/foo.c", False).

    The second value is True when the side does not exist: /dev/null, or the Unix-epoch
    timestamp that `diff -N` writes for absent files."""
    name, _, stamp = header[4:].partition("\t")
    name = name.strip()
    return name, name == "/dev/null" or stamp.startswith("1970-01-01 00:00:00")


def parse(text):
    files = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            fp = FilePatch(line, lines[i + 1])
            files.append(fp)
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                m = HUNK_RE.match(lines[i])
                if not m:
                    raise PatchError(f"malformed hunk header: {lines[i]!r}")
                h = Hunk(int(m.group(1)), int(m.group(2) or "1"), int(m.group(3)), int(m.group(4) or "1"))
                i += 1
                old_left, new_left = h.old_count, h.new_count
                last_tag = None
                while i < len(lines) and (old_left > 0 or new_left > 0 or lines[i].startswith("\\")):
                    l = lines[i]
                    if l.startswith("\\"):
                        if last_tag == "-":
                            h.old_eof_nl = False
                        elif last_tag == "+":
                            h.new_eof_nl = False
                        else:
                            h.old_eof_nl = h.new_eof_nl = False
                        i += 1
                        continue
                    tag, body = (l[0], l[1:]) if l else (" ", "")
                    if tag not in " -+":
                        raise PatchError(f"unexpected line in hunk: {l!r}")
                    if tag in " -":
                        old_left -= 1
                    if tag in " +":
                        new_left -= 1
                    if old_left < 0 or new_left < 0:
                        raise PatchError("hunk longer than its header says")
                    h.lines.append((tag, body))
                    last_tag = tag
                    i += 1
                if old_left or new_left:
                    raise PatchError("truncated hunk")
                fp.hunks.append(h)
            continue
        i += 1
    return files


def strip_path(path, n):
    parts = path.split("/")
    if n >= len(parts):
        raise PatchError(f"cannot strip {n} components from {path}")
    return "/".join(parts[n:])


def _find(lines, want, expected):
    """Position where `want` matches, nearest to `expected` (earlier one on ties), or None."""
    n = len(want)
    last = len(lines) - n
    if last < 0:
        return None
    for dist in range(0, max(expected, last - expected) + 1):
        for pos in (expected - dist, expected + dist):
            if 0 <= pos <= last and lines[pos:pos + n] == want:
                return pos
    return None


def apply_file(content, fp):
    """content: text of the old file (None if it does not exist). Returns the new text (None = delete)."""
    if content is None:
        lines, eof_nl = [], True
    else:
        eof_nl = content.endswith("\n") or content == ""
        lines = content.split("\n")
        if content.endswith("\n") or content == "":
            lines.pop()
    offset = 0
    for idx, h in enumerate(fp.hunks, 1):
        old = h.old_lines()
        expected = (h.old_start - 1 if h.old_count else h.old_start) + offset
        pos = _find(lines, old, max(0, expected))
        if pos is None:
            raise PatchError(f"hunk {idx} failed")
        touches_end = pos + len(old) == len(lines)
        if touches_end and not h.old_eof_nl and eof_nl:
            raise PatchError(f"hunk {idx} failed")
        lines[pos:pos + len(old)] = h.new_lines()
        if pos + len(h.new_lines()) == len(lines):
            eof_nl = h.new_eof_nl
        offset = pos - (h.old_start - 1 if h.old_count else h.old_start) + len(h.new_lines()) - len(old)
    if fp.new_missing:
        if lines:
            raise PatchError("file to delete is not empty after patching")
        return None
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if eof_nl else "")


def apply_patch(text, root=".", strip=0, dry_run=False):
    """Applies every file of the patch under `root`. All-or-nothing. Returns the list of patched paths."""
    plan = []
    for fp in parse(text):
        old = None if fp.old_missing else strip_path(fp.old_path, strip)
        new = None if fp.new_missing else strip_path(fp.new_path, strip)
        target = new if new is not None else strip_path(fp.old_path, strip)
        content = None
        if old is not None:
            try:
                with open(os.path.join(root, old), encoding="utf-8", newline="") as fh:
                    content = fh.read()
            except FileNotFoundError:
                raise PatchError(f"{old}: file not found")
        elif os.path.exists(os.path.join(root, target)):
            raise PatchError(f"{target}: file already exists")
        try:
            result = apply_file(content, fp)
        except PatchError as exc:
            raise PatchError(f"{exc} in {target}") from None
        plan.append((target, result))
    if not dry_run:
        for target, result in plan:
            path = os.path.join(root, target)
            if result is None:
                os.remove(path)
            else:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                with open(path, "w", encoding="utf-8", newline="") as fh:
                    fh.write(result)
    return [t for t, _ in plan]
PY
rm -rf /tmp/ex && cp -r examples/old /tmp/ex && python3 -m patchy -p1 -d /tmp/ex examples/sample.diff && diff -r /tmp/ex examples/new && echo sample OK
