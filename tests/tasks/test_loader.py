"""Task folder loading: valid folders load; malformed ones name the folder, the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ltenv.errors import SuiteLoadError, TaskLoadError
from ltenv.tasks import discover, load_suite, load_task

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tasks"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    dest = tmp_path / "write-greeting"
    shutil.copytree(FIXTURES / "write-greeting", dest)
    return dest


def test_loads_harbor_folder(good: Path):
    task = load_task(good)
    assert task.name == "write-greeting"
    assert task.domain == "coding"
    assert task.difficulty == "easy"
    assert task.config.agent.timeout_sec == 120
    assert task.config.verifier.timeout_sec == 60
    assert task.config.environment.memory_mb == 1024
    assert task.config.environment.allow_internet is False
    assert task.instruction.startswith("Write the line")
    assert task.has_solution
    assert task.dockerfile == good / "environment" / "Dockerfile"


def test_checksum_changes_with_content(good: Path):
    task = load_task(good)
    checksum, env_digest = task.checksum(), task.environment_digest()
    (good / "tests" / "test_outputs.py").write_text("# changed\n")
    assert task.checksum() != checksum
    # The image is built from environment/ only: a test change must not rebuild it.
    assert task.environment_digest() == env_digest


@pytest.mark.parametrize(
    ("mutate", "file", "field", "fragment"),
    [
        (lambda d: (d / "task.toml").unlink(), "task.toml", None, "missing"),
        (
            lambda d: (d / "task.toml").write_text("[agent\ntimeout_sec = 1"),
            "task.toml",
            None,
            "invalid TOML",
        ),
        (
            lambda d: (d / "task.toml").write_text('[agent]\ntimeout_sec = "soon"\n'),
            "task.toml",
            "[agent] timeout_sec",
            "valid number",
        ),
        (
            lambda d: (d / "task.toml").write_text("[verifier]\ntimeout_sec = -5\n"),
            "task.toml",
            "[verifier] timeout_sec",
            "greater than 0",
        ),
        (
            lambda d: (d / "task.toml").write_text('[metadata]\ndifficulty = "trivial"\n'),
            "task.toml",
            "[metadata] difficulty",
            "easy",
        ),
        (
            lambda d: (d / "task.toml").write_text('[environment]\nmemory_mb = "lots"\n'),
            "task.toml",
            "[environment] memory_mb",
            "lots",
        ),
        (lambda d: (d / "instruction.md").unlink(), "instruction.md", None, "missing"),
        (lambda d: (d / "instruction.md").write_text("  \n"), "instruction.md", None, "empty"),
        (lambda d: (d / "tests" / "test.sh").unlink(), "tests/test.sh", None, "missing"),
        (
            lambda d: (d / "environment" / "Dockerfile").unlink(),
            "environment/Dockerfile",
            None,
            "docker_image",
        ),
        (lambda d: (d / "solution" / "solve.sh").unlink(), "solution/solve.sh", None, "missing"),
    ],
)
def test_malformed_folder_names_file_and_field(good: Path, mutate, file, field, fragment):
    mutate(good)
    with pytest.raises(TaskLoadError) as exc:
        load_task(good)
    err = exc.value
    assert err.file == file
    assert err.field == field
    assert err.folder == good
    msg = str(err)
    assert "write-greeting" in msg and str(good) in msg and file in msg
    if field:
        assert field in msg
    assert fragment in msg


def test_bad_folder_name(tmp_path: Path, good: Path):
    bad = good.rename(tmp_path / "Bad Name")
    with pytest.raises(TaskLoadError, match="folder name"):
        load_task(bad)


def test_memory_accepts_harbor_size_strings(good: Path):
    text = (good / "task.toml").read_text().replace("memory_mb = 1024", 'memory_mb = "2G"')
    (good / "task.toml").write_text(text)
    assert load_task(good).config.environment.memory_mb == 2048


def test_docker_image_replaces_dockerfile(good: Path):
    (good / "environment" / "Dockerfile").unlink()
    (good / "task.toml").write_text('[environment]\ndocker_image = "example/prebuilt:1"\n')
    assert load_task(good).config.environment.docker_image == "example/prebuilt:1"


def test_suite_reports_every_bad_task(tmp_path: Path):
    for name in ("a-good", "b-bad", "c-bad", "d-good"):
        shutil.copytree(FIXTURES / "write-greeting", tmp_path / "dom" / name)
    (tmp_path / "dom" / "b-bad" / "instruction.md").unlink()
    (tmp_path / "dom" / "c-bad" / "task.toml").write_text("[agent]\ntimeout_sec = 0\n")
    suite = load_suite(tmp_path)
    assert [t.name for t in suite.tasks] == ["a-good", "d-good"]
    assert sorted(e.folder.name for e in suite.errors) == ["b-bad", "c-bad"]
    with pytest.raises(SuiteLoadError) as exc:
        load_suite(tmp_path, strict=True)
    assert "b-bad" in str(exc.value) and "c-bad" in str(exc.value)
    assert len(exc.value.errors) == 2


def test_duplicate_names_are_errors(tmp_path: Path):
    shutil.copytree(FIXTURES / "write-greeting", tmp_path / "x" / "same")
    shutil.copytree(FIXTURES / "write-greeting", tmp_path / "y" / "same")
    suite = load_suite(tmp_path)
    assert len(suite.tasks) == 1
    assert len(suite.errors) == 1 and "duplicate" in str(suite.errors[0])


def test_discover_skips_non_task_dirs(tmp_path: Path):
    shutil.copytree(FIXTURES / "write-greeting", tmp_path / "coding" / "t1")
    (tmp_path / "images" / "base").mkdir(parents=True)
    (tmp_path / "images" / "base" / "task.toml").write_text("")  # never a task
    (tmp_path / "coding" / "notes").mkdir()
    assert [p.name for p in discover(tmp_path)] == ["t1"]
    assert list(discover(tmp_path / "coding" / "t1")) == [tmp_path / "coding" / "t1"]
    assert list(discover(tmp_path / "nope")) == []
