"""Terminal-Bench 1.x and Harbor / TB 2.0 fixture tasks end to end, in real bwrap sandboxes: validation, the
keystroke oracle, image-map substitution, offline verification, and gym.make through register_tasks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import ltenv
from ltenv.errors import ImageError
from ltenv.sandbox import create_sandbox
from ltenv.sandbox.images import ImageMap, ImageStore, Substitution
from ltenv.tasks import load_task
from ltenv.tasks.model import TerminalCommand
from ltenv.validate import validate_suite
from ltenv.verify import run_keystrokes, run_oracle, verify

FIXTURES = Path(__file__).parent / "fixtures"
TB1 = FIXTURES / "tb1"
HARBOR = FIXTURES / "harbor"
IMAGE_MAP = FIXTURES / "image-map.yaml"
FOREIGN_FROM = "ghcr.io/laude-institute/t-bench/python-3-13:20250620"
FOREIGN_IMAGE = "example.org/ltenv-fixtures/hello-prebuilt:20251031"

pytestmark = [pytest.mark.docker, pytest.mark.bwrap]


def ltenv_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltenv.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def mapped(store) -> ImageStore:
    """An image store with the fixture image map (the project base image is built by ``store``)."""
    return ImageStore(store.root, image_map=IMAGE_MAP)


def episode(task, store, *, oracle: bool, offline: bool = False):
    sb = create_sandbox(task, store=store)
    with sb:
        run = run_oracle(sb, task) if oracle else None
        try:
            return verify(sb, task, offline=offline), run
        finally:
            if run is not None:
                run.close()


def test_list_accepts_foreign_folders():
    proc = ltenv_cli("list", "--json", "--tasks", str(TB1))
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {
        "tb-multi-service", "tb-offline-mean", "tb-same-shell-build", "tb-sum-numbers", "tb-vim-edit-config",
        "TB_Sum_Repeated_Layers",
    }  # fmt: skip
    assert {r["format"] for r in rows.values()} == {"terminal-bench"}
    proc = ltenv_cli("list", "--json", "--tasks", str(HARBOR))
    assert proc.returncode == 0, proc.stderr
    assert {r["format"] for r in json.loads(proc.stdout)} == {"harbor"}


@pytest.mark.slow
def test_validate_tb1_fixtures_end_to_end(store, bwrap_ok):
    proc = ltenv_cli(
        "validate",
        "--tasks",
        str(TB1),
        "--image-map",
        str(IMAGE_MAP),
        "--offline-tests",
        "--json",
        "--jobs",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    results = {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    multi = results.pop("tb-multi-service")  # a multi-service task: docker only, reported as such
    assert "needs the docker backend" in multi["unsupported"] and multi["oracle_runs"] == []
    assert set(results) == {
        "tb-offline-mean", "tb-same-shell-build", "tb-sum-numbers", "tb-vim-edit-config", "TB_Sum_Repeated_Layers"
    }  # fmt: skip
    for r in results.values():
        assert r["valid"], r
        assert r["oracle_runs"] == [1.0, 1.0] and r["nop_runs"] == [0.0, 0.0]
        assert r["format"] == "terminal-bench"
    mean = results["tb-offline-mean"]
    assert mean["image_substitutions"] == [f"{FOREIGN_FROM} -> ltenv/base:bookworm"]
    assert mean["offline_tests"] is True and mean["test_runner"] == "offline pytest"
    assert any("run-tests.sh was not run" in n for n in mean["notes"])
    # A run-tests.sh that needs no network runs as it is, even in offline mode.
    plain = results["tb-sum-numbers"]
    assert plain["offline_tests"] is False and plain["test_runner"] == "run-tests.sh"
    assert plain["image_substitutions"] == []
    same_shell = results["tb-same-shell-build"]
    assert any("working directory /app/build" in n for n in same_shell["notes"])  # the oracle's shell
    assert any("no agent shell is running" in n for n in same_shell["notes"])  # the do-nothing agent
    # Reported on the console too, never silently.
    assert f"image map: {FOREIGN_FROM} -> ltenv/base:bookworm" in " ".join(proc.stderr.split())
    assert "offline tests" in proc.stderr and "5/5 valid" in proc.stderr
    # A mixed-case folder whose image lists a layer twice (overlayfs refuses a lower directory given twice:
    # bwrap mounts it de-duplicated) validates like the rest.
    task = load_task(TB1 / "TB_Sum_Repeated_Layers")
    layers = store.prepare(task).layers
    assert len({p.name for p in layers}) < len(layers), layers


def test_validate_harbor_fixtures(mapped, bwrap_ok):
    tasks = [load_task(HARBOR / "harbor-prebuilt-image"), load_task(HARBOR / "harbor-reward-json")]
    results = {r.name: r for r in validate_suite(tasks, store=mapped, runs=1, offline_tests=True)}
    pre = results["harbor-prebuilt-image"]
    assert pre.valid, pre
    assert pre.image_substitutions == [f"{FOREIGN_IMAGE} -> ltenv/base:bookworm"]
    assert pre.offline_tests and pre.test_runner == "offline pytest"
    assert any("reporting plugins not needed: pytest-json-ctrf" in n for n in pre.notes)
    rj = results["harbor-reward-json"]
    assert rj.valid, rj
    assert (rj.image_substitutions, rj.offline_tests, rj.test_runner) == ([], False, "tests/test.sh")


def test_harbor_reward_json_is_read(store, bwrap_ok):
    task = load_task(HARBOR / "harbor-reward-json")
    res, run = episode(task, store, oracle=True)
    assert run.ok and res.reward == 1.0 and res.passed and res.error is None
    assert sorted(t.name for t in res.tests) == [
        "test_outputs::test_input_untouched",
        "test_outputs::test_sorted_unique",
    ]
    res, _ = episode(task, store, oracle=False)
    assert res.reward == 0.0 and not res.passed


def test_docker_image_without_map_is_a_clear_error(store):
    task = load_task(HARBOR / "harbor-prebuilt-image")
    assert store.substitutions_for(task) == []
    with pytest.raises(ImageError, match=r"image map \(--image-map FILE\)"):
        store.build(task)


def test_image_map_substitution_is_reported_and_part_of_the_tag(store, mapped, tmp_path):
    task = load_task(TB1 / "tb-offline-mean")
    dockerfile_before = (task.path / "Dockerfile").read_text()
    assert mapped.substitutions_for(task) == [Substitution(FOREIGN_FROM, "ltenv/base:bookworm", "FROM")]
    assert str(mapped.substitutions_for(task)[0]) == f"{FOREIGN_FROM} -> ltenv/base:bookworm"
    with pytest.raises(ImageError, match="image map"):
        store.build(task)  # no map: the foreign base cannot be pulled here
    tag = mapped.build(task)
    image = mapped.client.images.get(tag)
    assert image.attrs["Config"]["WorkingDir"] == "/app"
    # Another stand-in is another image: caches never mix.
    other = ImageStore(store.root, image_map={FOREIGN_FROM: "debian:bookworm"})
    other_tag = other.build(task)
    assert other_tag != tag and other_tag.startswith("ltenv-task/tb-offline-mean:")
    assert other.client.images.get(other_tag).id != image.id
    # Built from an in-memory context: the task folder is untouched and the foreign name never tagged.
    assert (task.path / "Dockerfile").read_text() == dockerfile_before
    assert not any(p.name.startswith(".ltenv") for p in task.path.iterdir())
    with pytest.raises(Exception, match=r"(?i)not found|no such image"):
        mapped.client.images.get(FOREIGN_FROM)
    mapped.client.images.remove(other_tag, force=True)


def test_image_map_files(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"python:3.13": "ltenv/base:bookworm"}))
    (tmp_path / "m.toml").write_text('"docker.io/library/python:3.13" = "ltenv/base:bookworm"\n')
    for name in ("m.json", "m.toml"):
        m = ImageMap.load(tmp_path / name)
        assert m.lookup("python:3.13") == m.lookup("docker.io/library/python:3.13") == "ltenv/base:bookworm"
        assert m.lookup("python:3.12") is None
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ImageError, match=r"bad\.yaml: expected a mapping"):
        ImageMap.load(tmp_path / "bad.yaml")
    (tmp_path / "self.yaml").write_text("'x:1': 'docker.io/library/x:1'\n")
    with pytest.raises(ImageError, match="maps the image to itself"):
        ImageMap.load(tmp_path / "self.yaml")
    with pytest.raises(ImageError, match="no-such-file"):
        ImageMap.load(tmp_path / "no-such-file.yaml")


def test_tb1_tests_need_offline_mode_without_network(mapped, bwrap_ok):
    task = load_task(TB1 / "tb-offline-mean")
    res, run = episode(task, mapped, oracle=True)
    assert run.ok
    assert res.reward == 0.0 and res.runner == "run-tests.sh"
    assert "short test summary info" in res.error and "--offline-tests" in res.error
    res, _ = episode(task, mapped, oracle=True, offline=True)
    assert res.reward == 1.0 and res.runner == "offline pytest", res
    assert [(t.name, t.outcome) for t in res.tests] == [
        ("test_mean_value", "passed"),
        ("test_single_line", "passed"),
    ]
    assert any("versions are not enforced (pytest==8.4.1)" in n for n in res.notes)


def test_missing_offline_dependency_names_it(mapped, bwrap_ok, tmp_path):
    dest = tmp_path / "tb-offline-mean"
    shutil.copytree(TB1 / "tb-offline-mean", dest)
    script = dest / "run-tests.sh"
    script.write_text(script.read_text().replace("    numpy\n", "    numpy ltenv-no-such-package==1.0\n"))
    task = load_task(dest)
    res, _ = episode(task, mapped, oracle=True, offline=True)
    assert res.reward == 0.0 and not res.tests
    assert "ltenv-no-such-package" in res.error and "numpy" not in res.error.split("installed by")[0]
    assert "uv pip install pytest==8.4.1" in res.error  # the line that installs it
    assert "--image-map" in res.error and "not installed in the image" in res.error


def test_keystroke_oracle_edits_a_file_in_vi(store, bwrap_ok):
    task = load_task(TB1 / "tb-vim-edit-config")
    res, run = episode(task, store, oracle=True)
    assert run.ok and not run.timed_out, run.text
    assert "3:mode = production" in run.text  # the blocking grep ran after vi had saved
    assert res.reward == 1.0 and res.passed, res
    res, _ = episode(task, store, oracle=False)
    assert res.reward == 0.0


def test_keystroke_timing(store, bwrap_ok, fixture_task):
    task = fixture_task("write-greeting")
    with create_sandbox(task, store=store) as sb:
        cmds = [
            TerminalCommand(command="echo first > /app/k.txt", min_timeout_sec=0.6),
            TerminalCommand(command="sleep 30", block=True, max_timeout_sec=1.0),
            TerminalCommand(command="echo never > /app/k.txt", block=True),
        ]
        run = run_keystrokes(sb, cmds, timeout=60)
        try:
            assert run.timed_out and run.exit_code == 124 and not run.ok
            assert 1.5 <= run.duration_s < 10, run.duration_s  # min_timeout_sec waited, then max_timeout_sec
            assert "entry 1 did not finish within 1s" in run.text
            assert sb.get("/app/k.txt") == b"first\n"  # entries after the timeout are not sent
        finally:
            run.close()
        # A blocking entry returns as soon as the command is done; the shell keeps its state.
        run = run_keystrokes(
            sb,
            [
                TerminalCommand(command="cd /tmp && export K=v", block=True),
                TerminalCommand(command="echo $K > k2.txt", block=True),
            ],
            timeout=60,
        )
        try:
            assert run.ok and run.duration_s < 10
            assert sb.get("/tmp/k2.txt") == b"v\n"
        finally:
            run.close()


def test_gym_make_through_register_tasks(mapped, bwrap_ok):
    ids = ltenv.register_tasks(TB1, namespace="TerminalBench", image_store=mapped)
    assert "TerminalBench/tb-sum-numbers" in ids and "TerminalBench/tb-same-shell-build" in ids
    env = gym.make("TerminalBench/tb-sum-numbers")
    try:
        obs, info = env.reset()
        assert info["task"] == "tb-sum-numbers" and "/app/numbers.txt" in obs
        env.step("awk 'NF { s += $1 } END { print s }' numbers.txt > total.txt")
        _obs, reward, terminated, _trunc, info = env.step(ltenv.SUBMIT)
        assert terminated and reward == 1.0, info
        assert {t["name"] for t in info["tests"]} >= {
            "test_total_written",
            "test_compose_environment_reaches_the_tests",
        }
    finally:
        env.close()
    # run_tests_in_same_shell: the tests run in the agent shell's working directory.
    env = gym.make("TerminalBench/tb-same-shell-build")
    try:
        env.reset()
        env.step("mkdir -p /app/build && cd /app/build && echo built > artifact.txt")
        _obs, reward, *_ = env.step(ltenv.SUBMIT)
        assert reward == 1.0
        env.reset()
        env.step("mkdir -p /app/build && echo built > /app/build/artifact.txt")  # but stays in /app
        _obs, reward, *_ = env.step(ltenv.SUBMIT)
        assert reward == 0.0
    finally:
        env.close()
    ids = ltenv.register_tasks(HARBOR, namespace="TerminalBench", image_store=mapped)
    assert "TerminalBench/harbor-reward-json" in ids
    env = gym.make("TerminalBench/harbor-reward-json")
    try:
        env.reset()
        env.step("sort -u words.txt > sorted.txt")
        _obs, reward, *_ = env.step(ltenv.SUBMIT)
        assert reward == 1.0
    finally:
        env.close()


def test_env_offline_tests_and_compose_environment_in_the_agent_shell(mapped, backend):
    """The agent's shell gets the compose service's environment; offline verification is reported in info."""
    from ltenv.env import TerminalEnv

    env = TerminalEnv(TB1 / "tb-sum-numbers", backend=backend, image_store=mapped)
    try:
        env.reset()
        obs, *_ = env.step('echo "total at $TOTAL_PATH"')
        assert obs == "total at /app/total.txt\n"
    finally:
        env.close()
    solve = (TB1 / "tb-offline-mean" / "solution.sh").read_text()
    for offline in (True, False):
        env = TerminalEnv(TB1 / "tb-offline-mean", backend=backend, image_store=mapped, offline_tests=offline)
        try:
            env.reset()
            env.step(f"bash <<'__SOLVE__'\n{solve}\n__SOLVE__")
            _obs, reward, terminated, _trunc, info = env.step(ltenv.SUBMIT)
            assert terminated
            if offline:
                assert reward == 1.0 and info["verifier_runner"] == "offline pytest", info
                assert info["verifier_notes"], info
            else:  # the task's own run-tests.sh, which downloads uv (so it passes only where a network is)
                assert info["verifier_runner"] == "run-tests.sh"
        finally:
            env.close()
