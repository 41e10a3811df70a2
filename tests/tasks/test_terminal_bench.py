"""Terminal-Bench 1.x folders (task.yaml) and Harbor / TB 2.0 task.toml extras: loading, every error naming
folder, file and field, compose refusal; the pytest summary parser; test-script analysis for offline mode."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from ltenv.errors import TaskLoadError
from ltenv.tasks import discover, is_task_dir, load_suite, load_task
from ltenv.tasks.terminal_bench import interpolate
from ltenv.verify import (
    offline_test_files,
    parse_pytest_summary,
    run_oracle,
    script_needs_network,
    script_test_dependencies,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
TB1 = FIXTURES / "tb1"
HARBOR = FIXTURES / "harbor"


@pytest.fixture
def tb(tmp_path: Path) -> Path:
    dest = tmp_path / "tb-sum-numbers"
    shutil.copytree(TB1 / "tb-sum-numbers", dest)
    return dest


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).lstrip("\n"))


# --------------------------------------------------------------------------- loading


def test_loads_every_task_yaml_field(tb: Path):
    task = load_task(tb)
    assert task.name == "tb-sum-numbers"
    assert task.format == "terminal-bench"
    assert task.instruction.startswith("The file /app/numbers.txt holds one integer")
    md = task.config.metadata
    assert (md.difficulty, md.category, md.tags) == (
        "easy",
        "file-operations",
        ["arithmetic", "text-processing"],
    )
    assert (md.author_name, md.author_email) == ("LiteCoder-Terminal fixtures", "fixtures@example.org")
    assert md.domain == "system_admin"  # category file-operations, mapped to the project's domains
    assert task.config.agent.timeout_sec == 240.0
    assert task.config.verifier.timeout_sec == 90.0
    assert task.config.environment.allow_internet is True  # TB containers are on Docker's default network
    assert task.config.environment.docker_image is None
    t = task.terminal_bench
    assert t is not None
    assert t.parser_name == "pytest"
    assert (t.max_agent_timeout_sec, t.max_test_timeout_sec) == (240.0, 90.0)
    assert t.run_tests_in_same_shell is False
    assert t.disable_asciinema is True
    assert t.estimated_duration_sec == 45.0
    assert (t.expert_time_estimate_min, t.junior_time_estimate_min) == (2, 10)
    assert (md.model_extra or {})["expert_time_estimate_min"] == 2  # also in [metadata], as TB 2.0 has it
    assert (t.model_extra or {}) == {"env_name": "legacy-key-kept-as-extra"}  # unknown keys kept, not read
    assert t.solution == "solution.sh" and t.solution_commands == []
    assert task.has_solution and task.solution_path == tb / "solution.sh"
    assert task.solution_label == "solution.sh"
    assert task.test_script == tb / "run-tests.sh"
    assert task.tests_dir == tb / "tests"
    assert task.environment_dir == tb and task.dockerfile == tb / "Dockerfile"
    c = t.compose
    assert c is not None and c.name == "client" and c.build_context == "." and c.dockerfile == "Dockerfile"
    assert c.environment == {"TEST_DIR": "/tests", "TOTAL_PATH": "/app/total.txt"}
    assert c.working_dir is None and c.image is None and c.unresolved_variables == []
    assert task.container_env == {"TEST_DIR": "/tests", "TOTAL_PATH": "/app/total.txt"}
    assert task.container_workdir is None


def test_task_yaml_defaults_are_terminal_bench_defaults(tb: Path):
    write(tb / "task.yaml", "instruction: Do it.\ndifficulty: hard\n")
    task = load_task(tb)
    assert task.config.agent.timeout_sec == 360.0 and task.config.verifier.timeout_sec == 60.0
    md = task.config.metadata
    assert (md.category, md.tags, md.author_name, md.author_email) == (
        "software_engineering",
        [],
        "unknown",
        "unknown",
    )
    assert task.terminal_bench.parser_name == "pytest"
    assert task.terminal_bench.run_tests_in_same_shell is False
    assert task.terminal_bench.expert_time_estimate_min is None


def test_solution_yaml_is_parsed(tb: Path):
    task = load_task(TB1 / "tb-vim-edit-config")
    t = task.terminal_bench
    assert t.solution == "solution.yaml" and task.solution_label == "solution.yaml"
    assert task.solution_path == TB1 / "tb-vim-edit-config" / "solution.yaml"
    cmds = t.solution_commands
    assert [c.command for c in cmds[:2]] == ["sleep 600", "C-c"]
    assert cmds[1].append_enter is False and cmds[1].min_timeout_sec == 0.3
    assert cmds[-1].block is True and cmds[-1].max_timeout_sec == 30
    # Terminal-Bench's defaults for omitted fields.
    (tb / "solution.sh").unlink()
    (tb / "solution.yaml").write_text("- command: ls -la\n")
    (cmd,) = load_task(tb).terminal_bench.solution_commands
    assert (cmd.min_timeout_sec, cmd.max_timeout_sec, cmd.block, cmd.append_enter) == (
        0.0,
        180.0,
        False,
        True,
    )


def test_solution_sh_wins_over_solution_yaml(tb: Path):
    shutil.copy(TB1 / "tb-vim-edit-config" / "solution.yaml", tb / "solution.yaml")
    task = load_task(tb)
    assert task.terminal_bench.solution == "solution.sh" and task.terminal_bench.solution_commands == []


def test_no_oracle_loads_but_cannot_run(tb: Path):
    (tb / "solution.sh").unlink()
    task = load_task(tb)
    assert not task.has_solution and task.solution_path is None
    with pytest.raises(TaskLoadError, match=r"solution\.sh: missing: the task has no oracle"):
        run_oracle(None, task)  # type: ignore[arg-type]  # refused before the sandbox is touched


def test_compose_is_optional_with_a_root_dockerfile(tb: Path):
    (tb / "docker-compose.yaml").unlink()
    task = load_task(tb)
    assert task.terminal_bench.compose is None
    assert task.environment_dir == tb and task.dockerfile == tb / "Dockerfile"
    assert task.container_env == {}


def test_compose_reads_context_dockerfile_args_env_workdir(tb: Path):
    (tb / "env").mkdir()
    (tb / "env" / "Dockerfile.tb").write_text("FROM ltenv/base:bookworm\n")
    write(
        tb / "docker-compose.yaml",
        """
        services:
          agent:
            build:
              context: ./env
              dockerfile: Dockerfile.tb
              args:
                VERSION: "1.2"
              labels: {a: b}
            image: ${T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME}
            working_dir: /srv/${APP_DIR:-app}
            environment:
              TEST_DIR: ${T_BENCH_TEST_DIR}
              LOGS: $T_BENCH_CONTAINER_LOGS_PATH/run
              PRICE: "$$5"
              FLAG: true
              API_KEY:
              HOST_ONLY: ${SOME_HOST_VAR}
        """,
    )
    task = load_task(tb)
    c = task.terminal_bench.compose
    assert c.name == "agent" and c.build_context == "env" and c.dockerfile == "Dockerfile.tb"
    assert c.build_args == {"VERSION": "1.2"}
    assert c.working_dir == "/srv/app"
    assert c.environment == {
        "TEST_DIR": "/tests",
        "LOGS": "/logs/run",
        "PRICE": "$5",
        "FLAG": "true",
        "HOST_ONLY": "",
    }
    # The host environment is never read: API_KEY (no value) and SOME_HOST_VAR are reported, not guessed.
    assert c.unresolved_variables == ["API_KEY", "SOME_HOST_VAR"]
    assert task.environment_dir == tb / "env" and task.dockerfile == tb / "env" / "Dockerfile.tb"
    assert task.container_workdir == "/srv/app"


def test_compose_prebuilt_image_becomes_docker_image(tb: Path):
    write(tb / "docker-compose.yaml", "services:\n  client:\n    image: ghcr.io/example/prebuilt:1\n")
    task = load_task(tb)
    assert task.config.environment.docker_image == "ghcr.io/example/prebuilt:1"
    assert task.terminal_bench.compose.image == "ghcr.io/example/prebuilt:1"


def test_interpolate():
    unresolved: list[str] = []
    v = {"A": "x", "EMPTY": ""}
    assert interpolate("$A-${A}-$${A}", v, unresolved) == "x-x-${A}"
    assert interpolate("${EMPTY:-d}|${EMPTY-d}|${NOPE:-${A}}", v, unresolved) == "d||x"
    assert interpolate("${NOPE}", v, unresolved) == "" and unresolved == ["NOPE"]
    with pytest.raises(ValueError, match="REQ"):
        interpolate("${REQ:?set it}", v, [])
    with pytest.raises(ValueError, match="unclosed"):
        interpolate("${A", v, [])
    assert interpolate("cost: $5 and $", v, []) == "cost: $5 and $"


COMPOSE_HEAD = "services:\n  client:\n    build:\n      dockerfile: Dockerfile\n"


@pytest.mark.parametrize(
    ("file", "content", "field", "fragment"),
    [
        ("task.yaml", "instruction: [unclosed\n", None, "invalid YAML"),
        ("task.yaml", "- a list\n", None, "expected a mapping"),
        ("task.yaml", "difficulty: easy\n", "instruction", "Field required"),
        ("task.yaml", "instruction: '   '\ndifficulty: easy\n", "instruction", "empty"),
        ("task.yaml", "instruction: x\n", "difficulty", "Field required"),
        ("task.yaml", "instruction: x\ndifficulty: trivial\n", "difficulty", "'easy'"),
        ("task.yaml", "instruction: x\ndifficulty: easy\nmax_agent_timeout_sec: -1\n", "max_agent_timeout_sec",
         "greater than 0"),
        ("task.yaml", "instruction: x\ndifficulty: easy\nmax_test_timeout_sec: soon\n", "max_test_timeout_sec",
         "valid number"),
        ("task.yaml", "instruction: x\ndifficulty: easy\ntags: a,b\n", "tags", "valid list"),
        ("task.yaml", "instruction: x\ndifficulty: easy\nrun_tests_in_same_shell: maybe\n",
         "run_tests_in_same_shell", "valid boolean"),
        ("task.yaml", "instruction: x\ndifficulty: easy\nparser_name: swebench\n", "parser_name",
         "parser 'swebench' is not supported (only 'pytest')"),
        ("task.yaml", "instruction: x\ndifficulty: easy\nexpert_time_estimate_min: lots\n",
         "expert_time_estimate_min", "valid number"),
        ("docker-compose.yaml", "services: [\n", None, "invalid YAML"),
        ("docker-compose.yaml", "version: '3'\n", "services", "one service"),
        ("docker-compose.yaml", "services:\n  app:\n    build: .\n  cache:\n    image: redis:7\n  db:\n    image: pg:16\n",
         "services", "3 services (app, cache, db) and none is the agent's"),
        ("docker-compose.yaml", COMPOSE_HEAD + "      target: builder\n", "services.client.build.target",
         "would change the image"),
        ("docker-compose.yaml", COMPOSE_HEAD + "    privileged: true\n", "services.client.privileged",
         "not supported"),
        ("docker-compose.yaml", COMPOSE_HEAD + "    volumes:\n      - ./data:/data\n",
         "services.client.volumes[0]", "host directories are not mounted"),
        ("docker-compose.yaml", "services:\n  client:\n    build: ../elsewhere\n", "services.client.build.context",
         "outside the task folder"),
        ("docker-compose.yaml", "services:\n  client:\n    build:\n      dockerfile: Nope\n",
         "services.client.build.dockerfile", "not found in the build context"),
        ("docker-compose.yaml", COMPOSE_HEAD + "    environment:\n      - X=${REQ:?must be set}\n",
         "services.client.environment.X", "must be set"),
        ("docker-compose.yaml", COMPOSE_HEAD + "    environment: 5\n", "services.client.environment",
         "expected a mapping or a list"),
        ("docker-compose.yaml", "services:\n  client:\n    command: sleep infinity\n", "services.client",
         "neither a build section nor an image"),
        ("docker-compose.yaml", "services:\n  client:\n    image: ${T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME}\n",
         "services.client.image", "names no prebuilt image"),
        ("docker-compose.yaml", COMPOSE_HEAD + "    working_dir: app\n", "services.client.working_dir",
         "not an absolute path"),
        ("solution.yaml", "command: ls\n", None, "expected a non-empty list"),
        ("solution.yaml", "- command: ls\n- block: true\n", "[1].command", "Field required"),
        ("solution.yaml", "- command: ls\n  block: sometimes\n", "[0].block", "valid boolean"),
        ("solution.yaml", "- command: ls\n  min_timeout_sec: -1\n", "[0].min_timeout_sec", "greater than or equal"),
        ("solution.yaml", "- ls -la\n", "[0]", "expected a mapping"),
    ],
)  # fmt: skip
def test_malformed_tb_folder_names_file_and_field(tb: Path, file, content, field, fragment):
    if file == "solution.yaml":
        (tb / "solution.sh").unlink()  # solution.sh would be used instead
    (tb / file).write_text(content)
    with pytest.raises(TaskLoadError) as exc:
        load_task(tb)
    err = exc.value
    assert (err.folder, err.file, err.field) == (tb, file, field)
    msg = str(err)
    assert "tb-sum-numbers" in msg and str(tb) in msg and file in msg
    if field:
        assert f"{file}: {field}: " in msg
    assert fragment in msg


@pytest.mark.parametrize(
    ("remove", "file", "fragment"),
    [
        ("run-tests.sh", "run-tests.sh", "missing (the verifier entry point)"),
        ("Dockerfile", "docker-compose.yaml", "'Dockerfile' not found in the build context"),
    ],
)
def test_missing_tb_files(tb: Path, remove, file, fragment):
    (tb / remove).unlink()
    with pytest.raises(TaskLoadError) as exc:
        load_task(tb)
    assert exc.value.file == file and fragment in str(exc.value)


def test_missing_dockerfile_without_compose(tb: Path):
    (tb / "docker-compose.yaml").unlink()
    (tb / "Dockerfile").unlink()
    with pytest.raises(TaskLoadError) as exc:
        load_task(tb)
    assert exc.value.file == "Dockerfile" and "no docker-compose.yaml" in str(exc.value)


def test_multi_service_fixture_loads_its_services():
    task = load_task(TB1 / "tb-multi-service")  # run on the docker backend (tests/test_multi_container.py)
    assert task.services is not None and task.services.agent == "client"
    assert [(s.name, s.image) for s in task.services.services] == [("cache", "redis:7-alpine")]
    assert task.services.agent_depends_on == {"cache": "service_started"}


def test_discovery_and_suite_find_task_yaml_folders(tmp_path: Path):
    assert is_task_dir(TB1 / "tb-sum-numbers") and not is_task_dir(TB1)
    assert [p.name for p in discover(TB1)] == [
        "TB_Sum_Repeated_Layers",
        "tb-multi-service",
        "tb-offline-mean",
        "tb-same-shell-build",
        "tb-sum-numbers",
        "tb-vim-edit-config",
    ]
    suite = load_suite(TB1)
    assert sorted(t.name for t in suite.tasks) == [
        "TB_Sum_Repeated_Layers",
        "tb-multi-service",
        "tb-offline-mean",
        "tb-same-shell-build",
        "tb-sum-numbers",
        "tb-vim-edit-config",
    ]
    assert suite.errors == []
    # A mixed folder: Harbor and TB 1.x side by side.
    shutil.copytree(TB1 / "tb-sum-numbers", tmp_path / "a" / "tb-sum-numbers")
    shutil.copytree(HARBOR / "harbor-reward-json", tmp_path / "b" / "harbor-reward-json")
    assert {t.format for t in load_suite(tmp_path, strict=True).tasks} == {"terminal-bench", "harbor"}


def test_task_toml_wins_over_task_yaml(tb: Path):
    shutil.copy(HARBOR / "harbor-reward-json" / "task.toml", tb / "task.toml")
    (tb / "instruction.md").write_text("From instruction.md.\n")
    (tb / "tests" / "test.sh").write_text("#!/bin/bash\n")
    shutil.copytree(HARBOR / "harbor-reward-json" / "environment", tb / "environment")
    task = load_task(tb)
    assert task.format == "harbor" and task.terminal_bench is None
    assert task.instruction == "From instruction.md.\n"


# --------------------------------------------------------------------------- Harbor / TB 2.0 task.toml


def test_harbor_tb2_task_toml_loads_with_every_key_kept():
    task = load_task(HARBOR / "harbor-prebuilt-image")
    assert task.format == "harbor"
    cfg = task.config
    assert cfg.environment.docker_image == "example.org/ltenv-fixtures/hello-prebuilt:20251031"
    assert task.dockerfile is None
    assert (cfg.environment.memory_mb, cfg.environment.storage_mb, cfg.environment.cpus) == (2048, 10240, 1)
    assert cfg.environment.allow_internet is True
    assert (cfg.environment.model_extra or {}) == {"gpus": 0, "mcp_servers": [], "env": {}}
    assert cfg.verifier.timeout_sec == 120.0 and cfg.verifier.env == {"GREETING_FILE": "/app/hello.txt"}
    assert cfg.agent.timeout_sec == 300.0
    extra = cfg.model_extra or {}
    assert extra["schema_version"] == "1.1" and extra["artifacts"] == []
    assert cfg.task.name == task.display_name == "ltenv-fixtures/harbor-prebuilt-image"
    assert task.name == "harbor-prebuilt-image" and task.domain == "system_admin"  # from category
    assert (cfg.task.model_extra or {})["authors"] == [
        {"name": "LiteCoder-Terminal fixtures", "email": "fixtures@example.org"}
    ]
    assert cfg.solution.env == {} and "solution" not in extra
    assert (cfg.metadata.model_extra or {}) == {
        "expert_time_estimate_min": 1.0,
        "junior_time_estimate_min": 5.0,
    }


def test_harbor_deprecated_memory_and_storage_are_read():
    env = load_task(HARBOR / "harbor-reward-json").config.environment
    assert (env.memory_mb, env.storage_mb) == (1024, 2048)
    assert "memory" not in (env.model_extra or {}) and "storage" not in (env.model_extra or {})


def test_harbor_conflicting_memory_keys(tmp_path: Path):
    dest = tmp_path / "harbor-reward-json"
    shutil.copytree(HARBOR / "harbor-reward-json", dest)
    text = (dest / "task.toml").read_text().replace('memory = "1G"', 'memory = "1G"\nmemory_mb = 4096')
    (dest / "task.toml").write_text(text)
    with pytest.raises(TaskLoadError) as exc:
        load_task(dest)
    assert exc.value.file == "task.toml" and "memory" in str(exc.value) and "4096" in str(exc.value)


# --------------------------------------------------------------------------- the pytest summary parser

PYTEST_RA = """\
============================= test session starts ==============================
platform linux -- Python 3.11.2, pytest-7.2.1, pluggy-1.0.0
rootdir: /tests
collected 8 items

../tests/test_outputs.py .F.sxXE.                                        [100%]

==================================== ERRORS ====================================
________________________ ERROR at setup of test_server _________________________
    @pytest.fixture
E       fixture 'server' not found
=================================== FAILURES ===================================
__________________________________ test_total __________________________________
    def test_total():
>       assert 1 == 2
E       assert 1 == 2
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED ../tests/test_outputs.py::test_exists
PASSED ../tests/test_outputs.py::TestFormat::test_header
PASSED ../tests/test_outputs.py::test_param[a - b]
SKIPPED [1] ../tests/test_outputs.py:40: needs a GPU
XFAIL ../tests/test_outputs.py::test_known_bug - reason: upstream issue
XPASS ../tests/test_outputs.py::test_flaky
ERROR ../tests/test_outputs.py::test_server
FAILED ../tests/test_outputs.py::test_total - assert 1 == 2
============== 1 failed, 4 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 error in 0.12s ==============
"""


def test_parse_pytest_summary_every_status():
    s = parse_pytest_summary(PYTEST_RA)
    assert s.found and not s.resolved
    got = {t.name: t.outcome for t in s.tests}
    assert got == {
        "test_exists": "passed",
        "TestFormat::test_header": "passed",  # the name is what follows the first '::', as in TB
        "test_param[a - b]": "passed",
        "../tests/test_outputs.py:40: needs a GPU": "skipped",
        "test_known_bug - reason: upstream issue": "passed",  # XFAIL counts as passed
        "test_flaky": "failed",  # XPASS counts as failed
        "test_server": "error",
        "test_total": "failed",
    }
    by_name = {t.name: t for t in s.tests}
    assert by_name["test_total"].message == "assert 1 == 2"
    assert (
        "XPASS" in by_name["test_flaky"].message
        and "XFAIL" in by_name["test_known_bug - reason: upstream issue"].message
    )


def test_parse_pytest_summary_passed_xfail_skipped_resolve():
    out = textwrap.dedent(
        """\
        ..sx                                                                     [100%]
        =========================== short test summary info ============================
        PASSED test_outputs.py::test_a
        PASSED test_outputs.py::test_b
        SKIPPED [1] test_outputs.py:9: optional
        XFAIL test_outputs.py::test_c - known
        ================== 2 passed, 1 skipped, 1 xfailed in 0.05s ==================
        """
    )
    s = parse_pytest_summary(out)
    assert s.found and s.resolved and len(s.tests) == 4


def test_parse_pytest_summary_missing_or_empty():
    no_summary = "bash: uv: command not found\ncurl: (6) Could not resolve host: astral.sh\n"
    s = parse_pytest_summary(no_summary)
    assert not s.found and not s.resolved and s.tests == []
    # -rA with nothing collected: TB would call an empty result resolved; we need at least one test.
    empty = "=========================== short test summary info ============================\nno tests ran\n"
    s = parse_pytest_summary(empty)
    assert s.found and s.tests == [] and not s.resolved


def test_parse_pytest_summary_last_status_wins_and_colors_are_stripped():
    out = (
        "\x1b[36m=========================== short test summary info ============================\x1b[0m\n"
        "\x1b[32mPASSED\x1b[0m test_outputs.py::test_a\n"
        "\x1b[32mPASSED\x1b[0m test_outputs.py::test_b\n"
        "\x1b[31mERROR\x1b[0m test_outputs.py::test_a - teardown failed\n"
        "UNKNOWN test_outputs.py::test_z\n"
        "some unrelated line\n"
    )
    s = parse_pytest_summary(out)
    # As in TB, only FAILED lines lose their " - message": this ERROR line is a test of its own.
    assert [(t.name, t.outcome) for t in s.tests] == [
        ("test_a", "passed"),
        ("test_b", "passed"),
        ("test_a - teardown failed", "error"),
    ]
    assert not s.resolved
    again = parse_pytest_summary(out + "FAILED test_outputs.py::test_b - assert 0\n")
    assert [(t.name, t.outcome) for t in again.tests][-1] == ("test_b", "failed")  # the last status wins
    out2 = out.replace("ERROR\x1b[0m test_outputs.py::test_a - teardown failed", "PASSED\x1b[0m x.py::test_c")
    assert parse_pytest_summary(out2).resolved


# --------------------------------------------------------------------------- test scripts (offline mode)

TB_TEMPLATE = """\
#!/bin/bash
# Install curl
apt-get update
apt-get install -y curl
curl -LsSf https://astral.sh/uv/0.7.13/install.sh | sh
source $HOME/.local/bin/env
uv venv .tbench-testing
source .tbench-testing/bin/activate
uv pip install pytest==8.4.1 \\
    requests==2.32.4
uv run pytest $TEST_DIR/test_outputs.py -rA
"""


@pytest.mark.parametrize(
    ("script", "names"),
    [
        (TB_TEMPLATE, ["pytest", "requests"]),
        ("uv init\nuv add pytest==8.4.1 requests==2.31.0\nuv run pytest $TEST_DIR/test_outputs.py -rA\n",
         ["pytest", "requests"]),
        ("pip3 install --break-system-packages pytest==8.3.4 psutil==7.0.0 # test deps\n", ["pytest", "psutil"]),
        ("python3 -m pip install -q --index-url https://pypi.org/simple 'scikit-learn>=1.3' Pillow[webp]\n",
         ["scikit-learn", "Pillow"]),
        ("uvx -p 3.13 -w pytest==8.4.1 -w pytest-json-ctrf==0.3.5 pytest --ctrf /logs/verifier/ctrf.json\n",
         ["pytest", "pytest-json-ctrf"]),
        ("uv run --with scipy,sympy --with=networkx pytest /tests -rA\n", ["scipy", "sympy", "networkx"]),
        ("pip install -e . && pip install git+https://github.com/x/y ./local.whl\n# pip install commented\n", []),
        ("cd /app && pip install -r $TEST_DIR/requirements.txt\n", ["pyyaml", "numpy"]),
    ],
)  # fmt: skip
def test_script_test_dependencies(tmp_path: Path, script, names):
    (tmp_path / "requirements.txt").write_text("# test deps\npyyaml==6.0\n\nnumpy>=1.24  # arrays\n")
    deps = script_test_dependencies(script, tmp_path)
    assert [d.name for d in deps] == names


def test_dependency_keeps_the_line_it_came_from():
    (dep,) = [d for d in script_test_dependencies(TB_TEMPLATE) if d.name == "requests"]
    assert dep.requirement == "requests==2.32.4"
    assert dep.command.startswith("uv pip install pytest==8.4.1") and "requests==2.32.4" in dep.command


@pytest.mark.parametrize(
    ("script", "needs"),
    [
        (TB_TEMPLATE, True),
        ("uvx pytest /tests/test_outputs.py\n", True),
        ("apt-get -y install curl\n", True),
        ("wget -q https://example.org/data.tgz\n", True),
        ("python3 -m pytest $TEST_DIR/test_outputs.py -rA\n", False),
        ("curl -s http://localhost:8000/health && curl http://127.0.0.1:9/x\npytest /tests -rA\n", False),
        ("echo 'no uv here'  # uv add x\n", False),
    ],
)
def test_script_needs_network(script, needs):
    assert script_needs_network(script) is needs


def test_offline_test_files(tmp_path: Path):
    task_dir = tmp_path / "tb-sum-numbers"
    shutil.copytree(TB1 / "tb-sum-numbers", task_dir)
    (task_dir / "tests" / "test_extra.py").write_text("def test_x():\n    pass\n")
    script = task_dir / "run-tests.sh"
    script.write_text("uv run pytest $TEST_DIR/test_outputs.py -rA\n")
    assert offline_test_files(load_task(task_dir)) == ["/tests/test_outputs.py"]
    script.write_text(
        "cd $TEST_DIR\npytest test_outputs.py::test_total_written ${TEST_DIR}/test_extra.py -rA\n"
    )
    assert offline_test_files(load_task(task_dir)) == [
        "/tests/test_outputs.py::test_total_written",
        "/tests/test_extra.py",
    ]
    script.write_text("bash /tests/run-everything.sh\n")  # names no file: every top-level test file
    assert offline_test_files(load_task(task_dir)) == ["/tests/test_extra.py", "/tests/test_outputs.py"]
