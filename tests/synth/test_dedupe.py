"""Near-duplicate detection of tasks (ltenv.synth.dedupe): shingles, task texts and the MinHash/LSH index."""

from __future__ import annotations

import re
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from ltenv.synth.dedupe import NearDupIndex, shingles, task_text
from ltenv.tasks import discover

REGISTRY = Path(__file__).parent.parent.parent / "envs_registry"
TB1 = Path(__file__).parent.parent / "fixtures" / "tb1"

UNRELATED = """
The quarterly newsletter of the allotment society: the committee thanks everyone who helped repaint the
tool shed, reminds members that hosepipes may only be used before nine in the morning, and announces that
the autumn show will have new classes for the heaviest marrow, the longest runner bean and the most
unusual potato. Entries close on the first Friday of September; judging starts at noon.
"""


@pytest.fixture(scope="module")
def registry_index() -> NearDupIndex:
    return NearDupIndex.from_tasks([REGISTRY])


def bundled_tasks() -> list[Path]:
    return list(discover(REGISTRY))


def light_edit(folder: Path, dest: Path) -> Path:
    """A copy of a task with its most frequent long identifier renamed, every other number changed and a
    sentence added to the instruction: what a generator restating an existing task might produce."""
    shutil.copytree(folder, dest)
    text = task_text(dest)
    words = Counter(w for w in re.findall(r"[A-Za-z_]{6,}", text) if w not in {"assert", "return", "import"})
    name = words.most_common(1)[0][0]
    count = 0

    def number(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return str(int(m.group()) + 7) if count % 2 else m.group()

    for p in [dest / "instruction.md", *sorted((dest / "tests").rglob("*"))]:
        if p.is_file():
            try:
                t = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            t = re.sub(r"\b\d+\b", number, t.replace(name, "qq" + name[::-1]))
            if p.name == "instruction.md":
                t = "A colleague started on this last week and left it half done.\n\n" + t
            p.write_text(t, encoding="utf-8")
    return dest


# --- shingles ------------------------------------------------------------------------------------------


def test_shingles_normalize_case_whitespace_punctuation_and_numbers():
    a = shingles("Write  the SUM, of /app/numbers.txt to total.txt -- at port 8080!", k=3)
    b = shingles("write the sum of app numbers txt\nto total txt at port 9090", k=3)
    assert a == b
    assert "write the sum" in a
    assert "at port 0" in a


def test_shingles_short_and_empty_texts():
    assert shingles("two words", k=5) == {"two words"}
    assert shingles("", k=5) == set()
    assert shingles("  ...  ---  ", k=5) == set()
    assert len(shingles("a b c d e f", k=5)) == 2
    with pytest.raises(ValueError):
        shingles("x", k=0)


def test_shingles_keep_identifiers_whole():
    assert shingles("call parse_version() on sha256 sums", k=5) == {"call parse_version on sha256 sums"}


# --- task_text -----------------------------------------------------------------------------------------


def test_task_text_harbor_has_instruction_and_tests():
    folder = REGISTRY / "coding" / "semver-constraint-resolver"
    text = task_text(folder)
    assert text.startswith((folder / "instruction.md").read_text())
    assert (folder / "tests" / "test_outputs.py").read_text() in text
    assert (folder / "tests" / "test.sh").read_text() in text
    assert (folder / "solution" / "solve.sh").read_text() not in text


def test_task_text_skips_binary_and_huge_files(tmp_path):
    folder = tmp_path / "t"
    shutil.copytree(REGISTRY / "coding" / "semver-constraint-resolver", folder)
    before = task_text(folder)
    (folder / "tests" / "blob.bin").write_bytes(b"\x00\x01binary\x00")
    (folder / "tests" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "tests" / "huge.txt").write_text("word " * 100_000)
    assert task_text(folder) == before


def test_task_text_terminal_bench_1():
    folder = TB1 / "tb-sum-numbers"
    text = task_text(folder)
    assert "Write their sum, as a single integer" in text
    assert (folder / "run-tests.sh").read_text() in text
    for p in sorted((folder / "tests").rglob("*.py")):
        assert p.read_text() in text


def test_task_text_terminal_bench_descriptions(tmp_path):
    folder = tmp_path / "old-style"
    (folder / "tests").mkdir(parents=True)
    (folder / "task.yaml").write_text(
        "descriptions:\n  - key: base\n    description: Count the lines of every log file.\n"
        "  - key: hard\n    description: Also report the longest line.\ndifficulty: easy\n"
    )
    (folder / "tests" / "test_outputs.py").write_text("def test_count():\n    assert True\n")
    (folder / "run-tests.sh").write_text("#!/bin/bash\npytest /tests\n")
    text = task_text(folder)
    for part in (
        "Count the lines of every log file.",
        "Also report the longest line.",
        "def test_count",
        "pytest",
    ):
        assert part in text


def test_task_text_of_a_broken_folder_is_whatever_is_there(tmp_path):
    (tmp_path / "task.yaml").write_text(": not yaml : [")
    assert task_text(tmp_path) == ""
    assert task_text(tmp_path / "missing") == ""


# --- the index -----------------------------------------------------------------------------------------


def test_index_covers_the_registry(registry_index):
    from ltenv.tasks import load_suite

    tasks = bundled_tasks()
    assert len(tasks) == len(load_suite(REGISTRY).tasks) >= 30
    assert len(registry_index) == len(tasks)
    assert "coding/semver-constraint-resolver" in registry_index
    assert not any(k.startswith(("domains/", "images/")) for k in registry_index)
    assert registry_index.paths["coding/semver-constraint-resolver"] == (
        REGISTRY / "coding" / "semver-constraint-resolver"
    )


def test_bundled_tasks_are_not_near_duplicates_of_each_other(registry_index):
    for folder in bundled_tasks():
        key = folder.relative_to(REGISTRY).as_posix()
        matches = registry_index.query(task_text(folder))
        assert [k for k, _ in matches] == [key], f"{key} matches {matches}"
        assert matches[0][1] == 1.0
    keys = registry_index.keys()
    worst = max(registry_index.similarity(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    assert worst < registry_index.threshold / 2


@pytest.mark.parametrize("folder", bundled_tasks(), ids=lambda p: p.name)
def test_lightly_edited_copy_is_flagged(registry_index, folder, tmp_path):
    copy = light_edit(folder, tmp_path / f"{folder.name}-v2")
    text = task_text(copy)
    assert text != task_text(folder)
    matches = registry_index.query(text)
    assert matches, f"edited copy of {folder.name} not flagged"
    assert matches[0][0] == folder.relative_to(REGISTRY).as_posix()
    assert len(matches) == 1
    assert registry_index.threshold <= matches[0][1] < 1.0


def test_check_against_registry_plus_candidates(registry_index, tmp_path):
    # A registry root and a single task folder index side by side; the copy is keyed by its folder name.
    copy = light_edit(REGISTRY / "games" / "maze-shortest-paths", tmp_path / "maze-v2")
    index = NearDupIndex.from_tasks([REGISTRY, copy])
    assert len(index) == len(bundled_tasks()) + 1
    assert "maze-v2" in index
    assert index.similarity("maze-v2", "games/maze-shortest-paths") >= index.threshold


def test_unrelated_text_is_not_flagged(registry_index):
    assert registry_index.query(UNRELATED) == []
    assert registry_index.query("") == []


def test_check_and_add_semantics():
    index = NearDupIndex()
    assert index.check_and_add("a", UNRELATED) == []
    assert "a" in index and len(index) == 1
    edited = UNRELATED.replace("tool shed", "garden shed") + " Refreshments are served in the hut."
    matches = index.check_and_add("b", edited)
    assert [k for k, _ in matches] == ["a"]
    assert index.threshold <= matches[0][1] <= 1.0
    assert "b" not in index and len(index) == 1  # rejected: not added
    assert index.check_and_add("c", "Completely different: compile the kernel module and load it.") == []
    assert "c" in index and len(index) == 2
    with pytest.raises(ValueError, match="'a'"):
        index.check_and_add("a", "something new entirely, unlike anything stored so far")
    with pytest.raises(ValueError, match="already"):
        index.add("c", "x")
    # add() stores even a duplicate; query then ranks the best match first.
    index.add("a2", UNRELATED)
    found = index.query(UNRELATED)
    assert [k for k, _ in found] == ["a", "a2"]
    assert all(score == 1.0 for _, score in found)


def test_empty_texts_never_match():
    index = NearDupIndex()
    assert index.check_and_add("e1", "") == []
    assert index.check_and_add("e2", "  !!  ") == []
    assert {"e1", "e2"} <= set(index.keys())
    assert index.query("") == []
    index.add("t", UNRELATED)
    assert [k for k, _ in index.query(UNRELATED)] == ["t"]
    assert index.similarity("e1", "t") == 0.0


def test_check_and_add_is_atomic_across_threads():
    index = NearDupIndex()
    n = 24
    barrier = threading.Barrier(n)
    results: dict[int, list[tuple[str, float]]] = {}

    def worker(i: int) -> None:
        text = UNRELATED + f" Ticket number {i} of the raffle."
        barrier.wait()
        results[i] = index.check_and_add(f"k{i}", text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, found in results.items() if not found]
    assert len(winners) == 1
    assert len(index) == 1 and f"k{winners[0]}" in index
    for i, found in results.items():
        if i != winners[0]:
            assert [k for k, _ in found] == [f"k{winners[0]}"]


def test_estimates_are_deterministic():
    texts = {
        "a": UNRELATED,
        "b": UNRELATED.replace("marrow", "pumpkin").replace("potato", "carrot"),
        "c": UNRELATED[: len(UNRELATED) // 2] + " The rest of this text was lost in the post.",
    }

    def estimates(seed: int) -> list[float]:
        index = NearDupIndex(threshold=0.2, seed=seed)
        for key, text in texts.items():
            index.add(key, text)
        return [index.similarity(x, y) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))]

    assert estimates(1) == estimates(1)
    assert estimates(7) == estimates(7)
    assert estimates(1) != estimates(7)
    first, second = NearDupIndex(threshold=0.2), NearDupIndex(threshold=0.2)
    for index in (first, second):
        index.add("a", texts["a"])
        index.add("c", texts["c"])
    assert first.query(texts["b"]) == second.query(texts["b"])
    assert first.query(texts["b"])[0][0] == "a"


def test_invalid_parameters():
    for kw in ({"threshold": 0.0}, {"threshold": 1.5}, {"num_perm": 1}, {"k": 0}):
        with pytest.raises(ValueError):
            NearDupIndex(**kw)


def test_remove_frees_a_key_and_its_matches():
    index = NearDupIndex()
    text = "count the words in the file and write a sorted table of counts per word"
    index.add("a", text)
    assert index.query(text)[0][0] == "a"
    assert index.remove("a") and "a" not in index and index.query(text) == []
    assert not index.remove("a")
    assert index.check_and_add("b", text) == [] and "b" in index
