"""Near-duplicate detection of tasks: word shingles, MinHash signatures and LSH (``datasketch``).

A generated task that restates a bundled (or already accepted) task with other names and numbers teaches
nothing new. Each task is reduced to the text it is judged by (:func:`task_text`: the instruction plus the
verifier's test files), the text to a set of word *k*-shingles (:func:`shingles`), and the set to a MinHash
signature whose agreement estimates the Jaccard similarity of two shingle sets. :class:`NearDupIndex` finds
candidates with locality-sensitive hashing and keeps those whose estimated Jaccard reaches the threshold::

    index = NearDupIndex.from_tasks([registry_path()])
    matches = index.check_and_add("candidate/0042", task_text(candidate_dir))
    if matches:                     # [("coding/semver-constraint-resolver", 0.83)]
        reject(...)

Estimates are deterministic: the same ``seed``, ``num_perm`` and ``k`` give the same signatures on every
machine (SHA-1 based hashing, no process-dependent ``hash()``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from datasketch import MinHash, MinHashLSH

from ltenv.tasks.discovery import discover

MAX_FILE_BYTES = 256 * 1024
"""Test files larger than this are left out of :func:`task_text` (fixtures and data, not test logic)."""

_WORD_RE = re.compile(r"[^\W_]+(?:[_'][^\W_]+)*")
"""A word: letters and digits, with inner ``_`` or ``'`` kept (``snake_case`` and ``don't`` stay one word);
every other character (punctuation, operators, quotes, markdown) separates words."""


def _words(text: str) -> list[str]:
    return ["0" if w.isdecimal() else w for w in _WORD_RE.findall(text.casefold())]


def shingles(text: str, k: int = 5) -> set[str]:
    """The set of word ``k``-shingles of ``text`` after normalization.

    Normalization: case-folded, split into words (letters and digits; punctuation, markup and whitespace
    only separate words), so ``"Write  the SUM,"`` and ``"write the sum"`` give the same shingles; every
    number becomes ``0`` (``"port 8080"`` and ``"port 9090"`` shingle alike: a copy with other values
    is still a copy). Words mixing letters and digits (``sha256``) are kept as they are. A text of
    fewer than ``k`` words (but at least one) gives a single shingle of all its words; an empty or
    punctuation-only text gives the empty set.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    words = _words(text)
    if not words:
        return set()
    if len(words) < k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def _read_text(path: Path) -> str | None:
    """A file's text, or ``None`` if it is too large, binary (NUL bytes) or not UTF-8."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _tree_texts(folder: Path) -> list[str]:
    """Texts of every readable text file below ``folder``, in sorted path order."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts:
            text = _read_text(p)
            if text is not None:
                out.append(text)
    return out


def _tb_instruction(task_yaml: Path) -> str:
    """The instruction of a Terminal-Bench 1.x ``task.yaml``: ``instruction``, or the older
    ``descriptions: [{key, description}, ...]`` list (all descriptions, in order)."""
    text = _read_text(task_yaml)
    if text is None:
        return ""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    if isinstance(data.get("instruction"), str):
        parts.append(data["instruction"])
    descriptions = data.get("descriptions")
    if isinstance(descriptions, list):
        for d in descriptions:
            if isinstance(d, dict) and isinstance(d.get("description"), str):
                parts.append(d["description"])
            elif isinstance(d, str):
                parts.append(d)
    return "\n\n".join(parts)


def task_text(task_dir: Path | str) -> str:
    """The text a task folder is compared by: its instruction followed by its tests.

    - Harbor / Terminal-Bench 2.0 (``task.toml``): ``instruction.md``, then every text file below
      ``tests/`` (``test_outputs.py``, ``test.sh``, helpers) in sorted path order.
    - Terminal-Bench 1.x (``task.yaml``): the ``instruction`` (or every entry of the older
      ``descriptions`` list), then ``tests/`` likewise, then ``run-tests.sh``.

    Binary files (NUL bytes), non-UTF-8 files and files over :data:`MAX_FILE_BYTES` are skipped; missing
    files are skipped too (the folder is not validated), so a broken folder yields whatever text it has.
    """
    folder = Path(task_dir)
    parts: list[str] = []
    if (folder / "task.toml").is_file() or not (folder / "task.yaml").is_file():
        instruction = _read_text(folder / "instruction.md")
        if instruction:
            parts.append(instruction)
        parts += _tree_texts(folder / "tests")
    else:
        instruction = _tb_instruction(folder / "task.yaml")
        if instruction:
            parts.append(instruction)
        parts += _tree_texts(folder / "tests")
        run_tests = _read_text(folder / "run-tests.sh")
        if run_tests:
            parts.append(run_tests)
    return "\n\n".join(parts)


class NearDupIndex:
    """A thread-safe index of texts answering "which stored texts is this one a near-duplicate of?".

    ``threshold``: the estimated Jaccard similarity of shingle sets at or above which two texts are
    near-duplicates. ``num_perm``: MinHash permutations (more: better estimates, slower). ``k``: words per
    shingle. ``seed``: the MinHash seed (estimates are reproducible for a given seed).

    LSH only proposes candidates; every candidate is then scored with the MinHash Jaccard estimate and kept
    if it reaches ``threshold``. The LSH bands are tuned towards recall (false negatives weigh 0.9,
    false positives 0.1) since false positives are filtered out by the score anyway.

    A text without shingles (empty, or punctuation only) is stored under its key but never matches and is
    never matched.
    """

    def __init__(self, threshold: float = 0.6, num_perm: int = 128, k: int = 5, seed: int = 1):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < 2:
            raise ValueError(f"num_perm must be >= 2, got {num_perm}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.k = k
        self.seed = seed
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
        self._sigs: dict[str, MinHash | None] = {}
        self._lock = threading.RLock()
        self.paths: dict[str, Path] = {}
        """Task folder of each key added by :meth:`from_tasks` (empty for texts added directly)."""

    # --- signatures ----------------------------------------------------------------------------------

    def minhash(self, text: str) -> MinHash | None:
        """The MinHash signature of ``text`` (``None`` if it has no shingles)."""
        sh = shingles(text, self.k)
        if not sh:
            return None
        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch([s.encode("utf-8") for s in sorted(sh)])
        return m

    def _matches(self, sig: MinHash | None) -> list[tuple[str, float]]:
        if sig is None:
            return []
        found = []
        for key in self._lsh.query(sig):
            other = self._sigs[key]
            assert other is not None
            score = float(sig.jaccard(other))
            if score >= self.threshold:
                found.append((key, score))
        found.sort(key=lambda kv: (-kv[1], kv[0]))
        return found

    def _insert(self, key: str, sig: MinHash | None) -> None:
        if key in self._sigs:
            raise ValueError(f"key {key!r} is already in the index")
        self._sigs[key] = sig
        if sig is not None:
            self._lsh.insert(key, sig)

    # --- public API ----------------------------------------------------------------------------------

    def add(self, key: str, text: str) -> None:
        """Store ``text`` under ``key`` (whether or not it duplicates something). A key already present
        is a :class:`ValueError`."""
        sig = self.minhash(text)
        with self._lock:
            self._insert(key, sig)

    def query(self, text: str) -> list[tuple[str, float]]:
        """Keys whose estimated Jaccard similarity to ``text`` is at least ``threshold``, with the
        estimate, best first (ties by key)."""
        sig = self.minhash(text)
        with self._lock:
            return self._matches(sig)

    def check_and_add(self, key: str, text: str) -> list[tuple[str, float]]:
        """Atomically: the near-duplicates of ``text`` (as :meth:`query`); if there are none, store it
        under ``key``. Of several threads offering near-identical texts, exactly one is stored.

        A key already present is a :class:`ValueError` (checked before anything is stored).
        """
        sig = self.minhash(text)
        with self._lock:
            if key in self._sigs:
                raise ValueError(f"key {key!r} is already in the index")
            found = self._matches(sig)
            if not found:
                self._insert(key, sig)
            return found

    def remove(self, key: str) -> bool:
        """Forget ``key`` (e.g. the idea of a candidate that was rejected later); ``False`` if absent."""
        with self._lock:
            if key not in self._sigs:
                return False
            if self._sigs.pop(key) is not None:
                self._lsh.remove(key)
            self.paths.pop(key, None)
            return True

    def similarity(self, a: str, b: str) -> float:
        """The estimated Jaccard similarity of two stored keys (0.0 if either has no shingles)."""
        with self._lock:
            sa, sb = self._sigs[a], self._sigs[b]
        if sa is None or sb is None:
            return 0.0
        return float(sa.jaccard(sb))

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._sigs)

    def __iter__(self) -> Iterator[str]:
        """The keys, in insertion order (a snapshot: adding while iterating is safe)."""
        return iter(self.keys())

    def __len__(self) -> int:
        with self._lock:
            return len(self._sigs)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._sigs

    def __repr__(self) -> str:
        return f"NearDupIndex({len(self)} texts, threshold={self.threshold}, num_perm={self.num_perm}, k={self.k})"

    @classmethod
    def from_tasks(cls, paths: Iterable[Path | str], **kw: Any) -> NearDupIndex:
        """An index of every task folder found below ``paths`` (``kw`` go to the constructor).

        Each path may be a registry root (``<domain>/<task>`` folders; ``domains/`` and ``images/`` are
        skipped, as by :func:`ltenv.tasks.discover`), a folder of task folders, or one task folder. Tasks
        are keyed by their path relative to the root they were found under, with ``/`` separators
        (``coding/semver-constraint-resolver``); a root that is itself a task is keyed by its folder name.
        If two roots yield the same key, the later one is prefixed with its root's name; if that collides
        too, :class:`ValueError`. Folders are read with :func:`task_text`, not validated.
        """
        index = cls(**kw)
        for root in paths:
            root = Path(root)
            for folder in discover(root):
                rel = folder.relative_to(root).as_posix()
                key = folder.name if rel == "." else rel
                if key in index:
                    key = f"{root.name}/{key}"
                index.add(key, task_text(folder))
                index.paths[key] = folder
        return index
