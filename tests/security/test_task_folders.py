"""Task folders must not leak host files through symlinks (issue 15, item 5).

Every case builds a real task folder in a temporary directory, plants a link (or a fifo) that leads outside it,
and checks that loading refuses it with an error naming the file, that links staying inside keep working, that
a suite reports the bad folder among its errors without failing the good one, and that what is copied at run
time is checked again (the folder may change after it loaded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ltenv.errors import ImageError, SuiteLoadError, TaskLoadError
from ltenv.sandbox.images import ImageStore
from ltenv.tasks import load_suite, load_task

FIXTURES = Path(__file__).parent.parent / "fixtures"
NATIVE = FIXTURES / "tasks" / "write-greeting"
HARBOR = FIXTURES / "harbor" / "harbor-reward-json"
TB1 = FIXTURES / "tb1" / "tb-sum-numbers"
SECRET = "host-secret-7f3a9c"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A 'host' file and folder outside every task folder."""
    outside = tmp_path / "host"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "shadow").write_text(f"root:{SECRET}:19000::::::\n")
    return outside


def copy(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dest = tmp_path / "tasks" / (name or src.name)
    shutil.copytree(src, dest)
    return dest


def link(path: Path, target: str | Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def refused(folder: Path, file: str, field: str | None = None) -> TaskLoadError:
    with pytest.raises(TaskLoadError) as exc:
        load_task(folder)
    err = exc.value
    assert (err.folder, err.file, err.field) == (folder, file, field), str(err)
    assert "outside the task folder" in str(err) or "task folders hold files only" in str(err)
    assert SECRET not in str(err)
    return err


# -- native / Harbor format (task.toml)


def test_instruction_link_to_host_file_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    link(task / "instruction.md", secret / "etc" / "shadow")
    err = refused(task, "instruction.md")
    assert f"symlink to '{secret / 'etc' / 'shadow'}'" in str(err)
    assert str(err).startswith(f"task 'write-greeting' ({task}): instruction.md: symlink to ")


def test_instruction_link_to_etc_shadow_is_refused(tmp_path):
    task = copy(NATIVE, tmp_path)
    link(task / "instruction.md", "/etc/shadow")
    refused(task, "instruction.md")


def test_task_toml_link_is_refused_before_it_is_read(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    (secret / "task.toml").write_text((task / "task.toml").read_text())
    link(task / "task.toml", secret / "task.toml")
    refused(task, "task.toml")


def test_relative_dotdot_escape_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    # tasks/write-greeting/tests/data.txt -> ../../../host/etc/shadow
    link(task / "tests" / "data.txt", "../../../host/etc/shadow")
    assert (task / "tests" / "data.txt").read_text().startswith("root:")  # the link does reach the file
    refused(task, "tests/data.txt")


def test_link_in_tests_dir_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    link(task / "tests" / "fixtures" / "etc", secret / "etc")  # a nested folder link
    refused(task, "tests/fixtures/etc")


def test_tests_dir_itself_as_a_link_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    outside_tests = secret / "tests"
    shutil.copytree(task / "tests", outside_tests)
    link(task / "tests", outside_tests)
    refused(task, "tests")


def test_link_in_solution_dir_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    link(task / "solution" / "helper.txt", secret / "etc" / "shadow")
    refused(task, "solution/helper.txt")


def test_fifo_is_refused_without_blocking(tmp_path):
    task = copy(NATIVE, tmp_path)
    (task / "instruction.md").unlink()
    os.mkfifo(task / "instruction.md")  # reading it would block the loader
    err = refused(task, "instruction.md")
    assert "a fifo" in str(err)


def procgen_like(tmp_path: Path, name: str = "setup-task") -> Path:
    """A native task on a shared image with ``setup_files`` / ``setup_script`` (as procgen writes them)."""
    task = copy(NATIVE, tmp_path, name)
    shutil.rmtree(task / "environment")
    (task / "task.toml").write_text(
        '[metadata]\ndomain = "coding"\n\n[environment]\ndocker_image = "ltenv/base:bookworm"\n'
        'setup_files = "setup/files"\nsetup_script = "setup/setup.sh"\n'
    )
    (task / "setup" / "files" / "app").mkdir(parents=True)
    (task / "setup" / "files" / "app" / "config.ini").write_text("x = 1\n")
    (task / "setup" / "setup.sh").write_text("true\n")
    return task


def test_setup_files_load(tmp_path):
    task = load_task(procgen_like(tmp_path))
    assert task.setup_files_dir == task.path / "setup" / "files"


def test_setup_files_nested_link_is_refused(tmp_path, secret):
    task = procgen_like(tmp_path)
    link(task / "setup" / "files" / "app" / "etc", secret / "etc")
    refused(task, "setup/files/app/etc", "[environment] setup_files")


def test_setup_files_dir_linked_to_etc_is_refused(tmp_path):
    task = procgen_like(tmp_path)
    link(task / "setup" / "files", "/etc")
    refused(task, "setup/files", "[environment] setup_files")


def test_setup_files_parent_linked_out_is_refused(tmp_path, secret):
    task = procgen_like(tmp_path)
    (secret / "files").mkdir()
    link(task / "setup", secret)
    refused(task, "setup", "[environment] setup_files")


def test_setup_script_link_is_refused(tmp_path, secret):
    task = procgen_like(tmp_path)
    link(task / "setup" / "setup.sh", secret / "etc" / "shadow")
    refused(task, "setup/setup.sh", "[environment] setup_script")


def test_dockerfile_link_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    (secret / "Dockerfile").write_text((task / "environment" / "Dockerfile").read_text())
    link(task / "environment" / "Dockerfile", secret / "Dockerfile")
    refused(task, "environment/Dockerfile")


def test_environment_dir_linked_out_is_refused(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    shutil.copytree(task / "environment", secret / "environment")
    link(task / "environment", secret / "environment")
    refused(task, "environment")


def test_build_context_link_that_only_the_image_resolves_is_allowed(tmp_path):
    # docker build sends a link in the context as a link: in the image it points to the image's /etc/hostname
    # (a bundled security task ships one on purpose). Nothing on the host reads through it.
    task = copy(NATIVE, tmp_path)
    link(task / "environment" / "attachments" / "host.txt", "/etc/hostname")
    loaded = load_task(task)
    assert loaded.dockerfile == task / "environment" / "Dockerfile"


def test_environment_link_is_refused_when_the_image_is_not_built_from_it(tmp_path):
    task = copy(NATIVE, tmp_path)
    toml = (task / "task.toml").read_text()
    (task / "task.toml").write_text(
        toml.replace("[environment]\n", '[environment]\ndocker_image = "ltenv/base:bookworm"\n')
    )
    link(task / "environment" / "attachments" / "host.txt", "/etc/hostname")
    refused(task, "environment/attachments/host.txt")


def test_links_inside_the_folder_keep_working(tmp_path):
    task = copy(NATIVE, tmp_path)
    (task / "docs").mkdir()
    (task / "instruction.md").rename(task / "docs" / "instruction.md")
    link(task / "instruction.md", "docs/instruction.md")
    link(task / "tests" / "expected.txt", "../environment/seed.txt")
    link(task / "solution" / "tests", "../tests")  # a folder link, inside
    link(task / "tests" / "dangling", "not-there-yet")  # dangling, but inside
    loaded = load_task(task)
    assert loaded.instruction.startswith("Write the line")
    assert loaded.verifier_spec().tests_dir == task / "tests"
    assert loaded.oracle_spec() is not None


def test_harbor_folder_link_is_refused(tmp_path, secret):
    task = copy(HARBOR, tmp_path)
    load_task(task)
    link(task / "tests" / "words.txt", "../../../host/etc/shadow")
    refused(task, "tests/words.txt")


def test_error_lists_further_escapes(tmp_path, secret):
    task = copy(NATIVE, tmp_path)
    link(task / "tests" / "a", secret / "etc")
    link(task / "tests" / "b", secret / "etc")
    err = refused(task, "tests/a")
    assert "1 more: tests/b" in str(err)


# -- Terminal-Bench 1.x (task.yaml)


def test_tb1_loads_and_allows_context_links(tmp_path):
    task = copy(TB1, tmp_path)
    # The build context is the task folder: a data link nothing on the host reads goes to docker as a link.
    link(task / "data" / "host.txt", "/etc/hostname")
    assert load_task(task).format == "terminal-bench"


@pytest.mark.parametrize(
    "rel",
    [
        "task.yaml",
        "docker-compose.yaml",
        "Dockerfile",
        "run-tests.sh",
        "solution.sh",
        "tests/test_outputs.py",
    ],
)
def test_tb1_link_is_refused(tmp_path, secret, rel):
    task = copy(TB1, tmp_path)
    target = secret / rel.replace("/", "_")
    shutil.copy(task / rel, target)  # same content: only the link makes it wrong
    link(task / rel, target)
    refused(task, rel)


def test_tb1_tests_dir_nested_link_is_refused(tmp_path, secret):
    task = copy(TB1, tmp_path)
    link(task / "tests" / "data" / "shadow", "../../../../host/etc/shadow")
    refused(task, "tests/data/shadow")


def test_tb1_compose_context_link_is_refused(tmp_path, secret):
    task = copy(TB1, tmp_path)
    (task / "docker-compose.yaml").write_text(
        (task / "docker-compose.yaml").read_text().replace("dockerfile: Dockerfile", "context: ./env")
    )
    (task / "env").mkdir()
    shutil.copy(task / "Dockerfile", task / "env" / "Dockerfile")
    assert load_task(task).environment_dir == task / "env"
    link(task / "env" / ".dockerignore", secret / "etc" / "shadow")
    refused(task, "env/.dockerignore")


# -- suites


def test_suite_reports_the_bad_folder_and_loads_the_good_one(tmp_path, secret):
    copy(NATIVE, tmp_path, "a-good")
    bad = copy(NATIVE, tmp_path, "b-bad")
    link(bad / "instruction.md", secret / "etc" / "shadow")
    tb_bad = copy(TB1, tmp_path, "c-tb-bad")
    link(tb_bad / "solution.sh", secret / "etc" / "shadow")
    suite = load_suite(tmp_path / "tasks")
    assert [t.name for t in suite.tasks] == ["a-good"]
    assert [(e.folder.name, e.file) for e in suite.errors] == [
        ("b-bad", "instruction.md"),
        ("c-tb-bad", "solution.sh"),
    ]
    assert not any(SECRET in t.instruction for t in suite.tasks)
    with pytest.raises(SuiteLoadError):
        load_suite(tmp_path / "tasks", strict=True)


def test_cli_list_reports_the_bad_folder(tmp_path, secret):
    copy(NATIVE, tmp_path, "good")
    bad = copy(NATIVE, tmp_path, "bad")
    link(bad / "instruction.md", secret / "etc" / "shadow")
    proc = subprocess.run(
        [sys.executable, "-m", "ltenv.cli", "list", "--json", "--tasks", str(tmp_path / "tasks")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert [r["name"] for r in json.loads(proc.stdout)] == ["good"]
    assert "instruction.md: symlink to" in " ".join(proc.stderr.split())
    assert SECRET not in proc.stdout + proc.stderr


# -- run time: what is copied is checked again, the folder may have changed since it loaded


def test_tests_changed_after_load_are_refused_when_verifying(tmp_path, secret):
    task = load_task(copy(NATIVE, tmp_path))
    link(task.path / "tests" / "test_outputs.py", secret / "etc" / "shadow")
    with pytest.raises(TaskLoadError, match=re.escape("tests/test_outputs.py: symlink to")):
        task.verifier_spec()


def test_tb1_run_tests_changed_after_load_is_refused(tmp_path, secret):
    task = load_task(copy(TB1, tmp_path))
    link(task.path / "run-tests.sh", secret / "etc" / "shadow")
    with pytest.raises(TaskLoadError, match=re.escape("run-tests.sh: symlink to")):
        task.verifier_spec()


def test_solution_changed_after_load_is_refused_for_the_oracle(tmp_path, secret):
    task = load_task(copy(NATIVE, tmp_path))
    shutil.copytree(task.path / "solution", secret / "solution")
    link(task.path / "solution", secret / "solution")
    with pytest.raises(TaskLoadError, match=re.escape("solution: symlink to")):
        task.oracle_spec()
    tb = load_task(copy(TB1, tmp_path))
    link(tb.path / "solution.sh", secret / "etc" / "shadow")
    with pytest.raises(TaskLoadError, match=re.escape("solution.sh: symlink to")):
        tb.oracle_spec()


def test_setup_changed_after_load_is_refused_at_sandbox_setup(tmp_path, secret):
    from ltenv.sandbox import setup_for

    task = load_task(procgen_like(tmp_path))
    assert setup_for(task).files_dir == task.path / "setup" / "files"
    link(task.path / "setup" / "files" / "app" / "etc", secret / "etc")
    with pytest.raises(TaskLoadError, match=r"\[environment\] setup_files: symlink to"):
        setup_for(task)


def test_build_context_changed_after_load_is_refused_before_building(tmp_path, secret):
    task = load_task(copy(NATIVE, tmp_path))
    link(task.path / "environment" / ".dockerignore", secret / "etc" / "shadow")
    store = ImageStore(tmp_path / "cache")
    with pytest.raises(ImageError, match=re.escape("environment/.dockerignore: symlink to")):
        store.build(task)  # refused before any Docker engine is contacted
