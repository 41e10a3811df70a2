"""Scripted model replies for the synthesis pipeline, served by the loopback OpenAI-compatible server.

A :class:`SynthWorld` answers each request by its stage (the ``# Stage: <name>`` line that opens every
stage prompt). Replies per stage are a dict (sent as JSON), a raw string, a list of those (served in
order; the last repeats), or a callable ``(body) -> reply``.

:func:`good_task` is a small, correct task (count words in a file) whose artifacts pass execution
validation; scenarios break one artifact of it.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import Counter
from typing import Any

from tests.support.openai_server import ErrorReply, Reply

_STAGE_RE = re.compile(r"^# Stage: (\w+)", re.MULTILINE)

WORDS = (
    "\n".join(
        ["apple banana apple cherry", "banana apple date", "", "cherry apple Banana fig", "fig fig grape"]
    )
    + "\n"
)

GOOD_SOLVE = """#!/bin/bash
set -euo pipefail
mkdir -p /app/out
tr -s '[:space:]' '\\n' < /app/data/words.txt | grep -v '^$' | tr 'A-Z' 'a-z' \\
  | sort | uniq -c | awk '{print $2"\\t"$1}' | sort -t$'\\t' -k2,2nr -k1,1 > /app/out/counts.tsv
"""

GOOD_TESTS = """import collections
from pathlib import Path


def expected():
    words = Path("/app/data/words.txt").read_text().lower().split()
    counts = collections.Counter(words)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def rows():
    text = Path("/app/out/counts.tsv").read_text()
    return [tuple(line.split("\\t")) for line in text.splitlines()]


def test_output_exists():
    assert Path("/app/out/counts.tsv").is_file()


def test_counts_exact():
    assert [(w, int(c)) for w, c in rows()] == expected()


def test_no_header_or_blank_lines():
    assert all(len(r) == 2 and r[0] for r in rows())
"""


def good_task() -> dict[str, Any]:
    """Stage -> reply of a task that validates."""
    return {
        "propose": {
            "ideas": [
                {
                    "name": "word-frequency-table",
                    "title": "Word frequency table from a text file",
                    "summary": "Count case-insensitive word frequencies in /app/data/words.txt and write a "
                    "sorted TSV report of word and count.",
                    "skills": ["text processing with coreutils"],
                    "difficulty": "easy",
                },
                {
                    "name": "line-length-histogram",
                    "title": "Histogram of line lengths",
                    "summary": "Bucket the lengths of lines in a log file into a histogram.",
                    "difficulty": "easy",
                },
            ]
        },
        "judge": {
            "verdicts": [
                {
                    "index": 0,
                    "clear": True,
                    "moderate_complexity": True,
                    "self_contained": True,
                    "verifiable": True,
                    "score": 8,
                    "reason": "clear, checkable output",
                },
                {
                    "index": 1,
                    "clear": True,
                    "moderate_complexity": False,
                    "self_contained": True,
                    "verifiable": True,
                    "score": 4,
                    "reason": "too small",
                },
            ]
        },
        "instruction": {
            "instruction": "# Word frequency table\n\nCount the words in `/app/data/words.txt` (words are "
            "separated by whitespace; compare case-insensitively and report them in lowercase). Write "
            "`/app/out/counts.tsv`: one line per distinct word, `word<TAB>count`, no header, sorted by count "
            "descending, then by word ascending.\n",
            "constraints": [
                "/app/out/counts.tsv exists",
                "every word's count is exact, lowercase",
                "sorted by count desc then word asc, no header",
            ],
        },
        "environment": {
            "dockerfile": "FROM ltenv/base:bookworm\nCOPY data/ /app/data/\nWORKDIR /app\n",
            "files": [{"path": "data/words.txt", "content": WORDS}],
        },
        "solution": {"solve_sh": GOOD_SOLVE, "explanation": "tr/sort/uniq pipeline"},
        "tests": {"test_outputs_py": GOOD_TESTS, "test_sh": None, "files": []},
        "attack": {
            "attacks": [
                {
                    "name": "empty-output",
                    "kind": "shortcut",
                    "description": "creates an empty report",
                    "script": "#!/bin/bash\nmkdir -p /app/out && : > /app/out/counts.tsv\n",
                },
                {
                    "name": "case-sensitive",
                    "kind": "wrong",
                    "description": "counts Banana and banana separately",
                    "script": "#!/bin/bash\nmkdir -p /app/out\ntr -s '[:space:]' '\\n' < /app/data/words.txt"
                    " | grep -v '^$' | sort | uniq -c | awk '{print $2\"\\t\"$1}' "
                    "| sort -t$'\\t' -k2,2nr -k1,1 > /app/out/counts.tsv\n",
                },
            ]
        },
        "task_toml": {
            "difficulty": "easy",
            "category": "text-processing",
            "tags": ["coreutils", "text"],
            "agent_timeout_sec": 600,
            "verifier_timeout_sec": 60,
        },
    }


def stage_of(body: dict[str, Any]) -> str:
    for msg in body.get("messages", []):
        if msg.get("role") == "user":
            m = _STAGE_RE.search(msg.get("content") or "")
            if m:
                return m.group(1)
    raise AssertionError(f"no stage line in request: {json.dumps(body)[:300]}")


def is_retry(body: dict[str, Any]) -> bool:
    """The request re-asks a stage after an unusable reply."""
    return sum(1 for m in body.get("messages", []) if m.get("role") == "user") > 1


class SynthWorld:
    """A responder for :class:`tests.support.openai_server.ScriptedOpenAIServer`."""

    def __init__(self, replies: dict[str, Any] | None = None):
        self.replies: dict[str, Any] = copy.deepcopy(replies if replies is not None else good_task())
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str | Reply | ErrorReply:
        stage = stage_of(body)
        with self._lock:
            n = self.calls[stage]
            self.calls[stage] += 1
        spec = self.replies.get(stage)
        if spec is None:
            return ErrorReply(400, f"synth world: no reply scripted for stage {stage!r}")
        if isinstance(spec, list):
            spec = spec[min(n, len(spec) - 1)]
        if callable(spec):
            spec = spec(body)
        if isinstance(spec, (Reply, ErrorReply, str)):
            return spec
        return json.dumps(spec)
