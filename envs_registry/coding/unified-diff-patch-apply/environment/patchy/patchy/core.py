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

    def old_lines(self):
        return [t for tag, t in self.lines if tag in " -"]

    def new_lines(self):
        return [t for tag, t in self.lines if tag in " +"]


class FilePatch:
    def __init__(self, old_path, new_path):
        self.old_path, self.new_path = old_path, new_path
        self.hunks = []


def _path(header):
    # "--- a/foo.c\t2024-01-01 10:00:00.000000000 +0000" -> "a/foo.c"
    return header[4:].split("\t")[0].strip()


def parse(text):
    files = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            fp = FilePatch(_path(line), _path(lines[i + 1]))
            files.append(fp)
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                m = HUNK_RE.match(lines[i])
                if not m:
                    raise PatchError(f"malformed hunk header: {lines[i]!r}")
                h = Hunk(int(m.group(1)), int(m.group(2) or "0"), int(m.group(3)), int(m.group(4) or "0"))
                i += 1
                old_left, new_left = h.old_count, h.new_count
                while i < len(lines) and (old_left > 0 or new_left > 0):
                    l = lines[i]
                    if l.startswith("\\"):
                        i += 1
                        continue
                    tag, body = (l[0], l[1:]) if l else (" ", "")
                    if tag not in " -+":
                        raise PatchError(f"unexpected line in hunk: {l!r}")
                    if tag in " -":
                        old_left -= 1
                    if tag in " +":
                        new_left -= 1
                    h.lines.append((tag, body))
                    i += 1
                fp.hunks.append(h)
            continue
        i += 1
    return files


def strip_path(path, n):
    parts = path.split("/")
    return "/".join(parts[n:])


def apply_file(content, fp):
    """content: text of the old file. Returns the new text."""
    lines = content.splitlines()
    # apply bottom-up so that earlier hunks do not shift the line numbers of later ones
    for idx in range(len(fp.hunks), 0, -1):
        h = fp.hunks[idx - 1]
        old = h.old_lines()
        pos = h.old_start - 1
        if lines[pos:pos + len(old)] != old:
            raise PatchError(f"hunk {idx} failed")
        lines[pos:pos + len(old)] = h.new_lines()
    return "\n".join(lines) + "\n"


def apply_patch(text, root=".", strip=0, dry_run=False):
    """Applies every file of the patch under `root`. Returns the list of patched paths."""
    done = []
    for fp in parse(text):
        target = strip_path(fp.new_path, strip)
        path = os.path.join(root, strip_path(fp.old_path, strip))
        with open(path, encoding="utf-8") as fh:
            content = fh.read()
        try:
            result = apply_file(content, fp)
        except PatchError as exc:
            raise PatchError(f"{exc} in {target}") from None
        if not dry_run:
            with open(os.path.join(root, target), "w", encoding="utf-8") as fh:
                fh.write(result)
        done.append(target)
    return done
