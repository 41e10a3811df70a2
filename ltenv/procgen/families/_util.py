"""Shared helpers of the bundled families: random pronounceable names and small check-script builders.

Everything random is drawn from the ``random.Random`` passed in, so instances stay deterministic.
"""

from __future__ import annotations

import hashlib
import random

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


def word(rng: random.Random, lo: int = 2, hi: int = 3) -> str:
    """A pronounceable lowercase word of ``lo``..``hi`` consonant-vowel syllables (e.g. ``bakotu``)."""
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(lo, hi)))


def distinct_words(
    rng: random.Random, n: int, lo: int = 2, hi: int = 3, avoid: set[str] = frozenset()
) -> list[str]:
    """``n`` different words, none equal to one in ``avoid``."""
    out: list[str] = []
    while len(out) < n:
        w = word(rng, lo, hi)
        if w not in out and w not in avoid:
            out.append(w)
    return out


def fresh_value(rng: random.Random, forbidden: str) -> str:
    """A value (a 3-4 syllable word or a 3-5 digit number) that does not occur in ``forbidden``."""
    while True:
        v = word(rng, 2, 3) + word(rng, 1, 1) if rng.random() < 0.6 else str(rng.randint(100, 99999))
        if v not in forbidden:
            return v


def answer_check(expected: str, path: str = "/app/answer.txt") -> str:
    """Bash: exit 0 iff ``path`` holds ``expected`` (whitespace ignored). ``expected`` must be shell-safe."""
    return (
        f'#!/bin/bash\ngot=$(tr -d \'[:space:]\' < {path} 2>/dev/null) || exit 1\n[ "$got" = "{expected}" ]\n'
    )


def sha256_line(content: str, path: str) -> str:
    """Bash: exit non-zero unless ``path`` holds exactly ``content``."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    return f"echo '{digest}  {path}' | sha256sum -c --status - || exit 1\n"
