"""Synthesis candidates (ltenv.synth.candidate): the static artifact checks and the task folder they write.
Pure Python: no sandbox, no network."""

from __future__ import annotations

import json
import os
import tomllib

import pytest

from ltenv.synth.candidate import (
    DEFAULT_TEST_SH,
    MAX_FILE_BYTES,
    ArtifactError,
    Candidate,
    FileArtifact,
    check_dockerfile,
)
from ltenv.tasks import load_task

BASE = "ltenv/base-python:3.12"
FILES = [
    FileArtifact("data/orders.csv", "id,amount\n1,10\n"),
    FileArtifact("data/customers.csv", "id,name\n1,Ann\n"),
    FileArtifact("app/main.py", "print('hi')\n"),
    FileArtifact("config.json", "{}"),
]
GOOD_TESTS = "def test_total():\n    assert 1 + 1 == 2\n"


def check(text: str, files: list[FileArtifact] | None = None) -> None:
    check_dockerfile(text, FILES if files is None else files, base_image=BASE)


def rejected(text: str, files: list[FileArtifact] | None = None) -> ArtifactError:
    with pytest.raises(ArtifactError) as info:
        check(text, files)
    assert info.value.stage == "environment"
    assert info.value.field == "$.dockerfile"
    return info.value


def env(**overrides) -> dict:
    data = {
        "dockerfile": f"FROM {BASE}\nWORKDIR /app\nCOPY data/orders.csv /app/data/\n",
        "files": [{"path": "data/orders.csv", "content": "id,amount\n1,10\n"}],
    }
    data.update(overrides)
    return data


def make_candidate(**kw) -> Candidate:
    return Candidate(id=kw.pop("id", "cand-0001"), domain="data_science", seed={"difficulty": "hard"}, **kw)


def complete_candidate() -> Candidate:
    c = make_candidate()
    c.name = "orders-total"
    c.instruction = "Sum the amounts in /app/data/orders.csv into /app/total.txt."
    c.constraints = ["offline"]
    c.set_environment(
        {
            "dockerfile": f"FROM {BASE}\nWORKDIR /app\nCOPY data/ /app/data/\nCOPY run.sh /app/\n",
            "files": [
                {"path": "data/orders.csv", "content": "id,amount\n1,10\n"},
                {"path": "run.sh", "content": "#!/bin/sh\necho run", "executable": False},
                {"path": "tool.bin", "content": "x", "executable": True},
            ],
        },
        base_image=BASE,
    )
    c.solve_sh = "#!/bin/bash\necho 10 > /app/total.txt"
    c.set_tests({"test_outputs_py": GOOD_TESTS, "files": [{"path": "expected.txt", "content": "10\n"}]})
    c.meta = {
        "difficulty": "easy",
        "category": "data-processing",
        "tags": ["csv", "sum"],
        "agent_timeout_sec": 300,
        "verifier_timeout_sec": 60,
        "cpus": 2,
        "memory_mb": 1024,
    }
    return c


# ------------------------------------------------------------------------------------- check_dockerfile
class TestDockerfileFrom:
    def test_minimal_dockerfile_passes(self):
        check(f'FROM {BASE}\nWORKDIR /app\nCMD ["bash"]\n')

    def test_from_with_stage_name_passes(self):
        check(f"from {BASE} AS main\nRUN echo ok\n")

    def test_first_instruction_must_be_from(self):
        e = rejected(f"WORKDIR /app\nFROM {BASE}\n")
        assert "line 1" in str(e) and f"FROM {BASE}" in str(e)
        assert e.verdict == "bad_output"

    def test_from_must_be_the_base_image(self):
        e = rejected("# header comment\n\nFROM python:3.12-slim\n")
        assert "line 3" in str(e) and f"must be FROM {BASE}" in str(e)

    def test_multi_stage_rejected(self):
        e = rejected(f"FROM {BASE}\nRUN echo a\nFROM {BASE}\n")
        assert "line 3" in str(e) and "multi-stage" in str(e)

    def test_empty_dockerfile(self):
        assert "is empty" in str(rejected(""))
        assert "is empty" in str(rejected("\n  \n# only a comment\n"))

    def test_not_an_instruction(self):
        e = rejected(f"FROM {BASE}\n!!!\n")
        assert "line 2" in str(e) and "not a Dockerfile instruction" in str(e)

    def test_comments_and_blank_lines_ignored(self):
        check(
            f"# syntax comment\n\n   \nFROM {BASE}\n# COPY missing.txt /app/\n  # RUN curl x\n\nWORKDIR /app\n"
        )


class TestDockerfileCopy:
    @pytest.mark.parametrize(
        "line",
        [
            "COPY data/orders.csv /app/",
            "COPY ./data/orders.csv /app/",
            "COPY data /app/data",
            "COPY data/ /app/data/",
            "COPY ./data/ /app/data/",
            "COPY . /app/",
            "COPY ./ /app/",
            "COPY data/*.csv /app/data/",
            "COPY app/main.py config.json /app/",
            "COPY --chown=1000:1000 data/orders.csv /app/",
            "COPY --chmod=755 app/ /app/app/",
            'COPY ["data/orders.csv", "/app/"]',
            'COPY ["./config.json", "app/main.py", "/app/"]',
            "ADD config.json /app/",
            "copy config.json /app/",
        ],
    )
    def test_sources_among_files(self, line):
        check(f"FROM {BASE}\n{line}\n")

    @pytest.mark.parametrize(
        ("line", "src"),
        [
            ("COPY data/missing.csv /app/", "data/missing.csv"),
            ("COPY ./notes.txt /app/", "./notes.txt"),
            ("COPY --chown=1000 other/ /app/other/", "other/"),
            ('COPY ["config.json", "secret.key", "/app/"]', "secret.key"),
            ("COPY data/*.parquet /app/", "data/*.parquet"),
            ("ADD archive.tar.gz /app/", "archive.tar.gz"),
        ],
    )
    def test_missing_source(self, line, src):
        e = rejected(f"FROM {BASE}\nWORKDIR /app\n{line}\n")
        assert e.verdict == "bad_output"
        assert f"source {src!r} is not among the files" in str(e)
        assert "$.dockerfile" in str(e) and "$.dockerfile" in e.reason
        assert "line 3" in str(e)
        assert "data/orders.csv" in str(e)  # the files that were given are listed

    def test_missing_source_without_files(self):
        e = rejected(f"FROM {BASE}\nCOPY a.txt /app/\n", files=[])
        assert "'a.txt'" in str(e) and "no files were given" in str(e)

    def test_copy_from_rejected(self):
        e = rejected(f"FROM {BASE}\nCOPY --from=builder /out/bin /usr/local/bin/\n")
        assert "line 2" in str(e) and "COPY --from is not allowed" in str(e)

    @pytest.mark.parametrize("instr", ["ADD", "COPY"])
    def test_url_source_rejected(self, instr):
        e = rejected(f"FROM {BASE}\n{instr} https://example.com/data.csv /app/\n")
        assert "URL" in str(e) and "https://example.com/data.csv" in str(e)

    def test_copy_needs_source_and_target(self):
        e = rejected(f"FROM {BASE}\nCOPY config.json\n")
        assert "needs a source and a target" in str(e)

    def test_bad_json_form(self):
        e = rejected(f'FROM {BASE}\nCOPY ["config.json", /app/\n')
        assert "line 2" in str(e) and "bad JSON form" in str(e)

    def test_continued_copy_checks_every_source(self):
        check(f"FROM {BASE}\nCOPY config.json \\\n     app/main.py \\\n     /app/\n")
        e = rejected(f"FROM {BASE}\nCOPY config.json \\\n     nope.py \\\n     /app/\n")
        assert "line 2" in str(e) and "'nope.py'" in str(e)


class TestDockerfileNetwork:
    @pytest.mark.parametrize(
        ("run", "word"),
        [
            ("apt-get update && apt-get install -y jq", "apt-get"),
            ("pip install pandas", "pip"),
            ("pip3 install --no-cache-dir numpy", "pip3"),
            ("python3 -m pip install requests", "pip"),
            ("curl -fsSL https://example.com/x -o /x", "curl"),
            ("wget -q https://example.com/x", "wget"),
            ("cd /tmp && git clone https://github.com/a/b", "git clone"),
            ("npm install left-pad", "npm"),
            ('["curl", "-O", "https://example.com"]', "curl"),
        ],
    )
    def test_downloads_need_network(self, run, word):
        e = rejected(f"FROM {BASE}\nWORKDIR /app\nRUN {run}\n")
        assert e.verdict == "needs_network"
        assert "line 3" in str(e) and f"({word})" in str(e)

    @pytest.mark.parametrize(
        "run",
        [
            "set -o pipefail && cat /app/data/orders.csv | wc -l",
            "echo 'a data pipeline' > /app/README",
            "echo curly braces > /app/notes.txt",
            "mkdir -p /app/pipes /app/curls_out && chmod 755 /app",
            "python3 -c 'import json'",
        ],
    )
    def test_offline_run_allowed(self, run):
        check(f"FROM {BASE}\nRUN {run}\n")

    def test_continued_run_is_one_line(self):
        e = rejected(
            f"FROM {BASE}\nWORKDIR /app\nRUN echo start && \\\n    mkdir -p /x && \\\n    wget -q http://e/x\n"
        )
        assert e.verdict == "needs_network" and "line 3" in str(e)

    def test_comment_inside_continuation_does_not_hide_a_download(self):
        # Docker drops comment lines inside a continuation; the curl is still part of the RUN.
        text = f"FROM {BASE}\nRUN echo a && \\\n    # fetch the data\n    curl -O http://example.com/x\n"
        e = rejected(text)
        assert e.verdict == "needs_network" and "line 2" in str(e)

    def test_comment_inside_continuation_is_valid(self):
        check(
            f"FROM {BASE}\nRUN mkdir -p /app && \\\n    # then the data dir\n    mkdir -p /app/data\nWORKDIR /app\n"
        )


# ---------------------------------------------------------------------------------------- files
class TestFiles:
    @pytest.mark.parametrize(
        ("paths", "bad_index"),
        [
            (["ok.txt", "/etc/passwd"], 1),
            (["../escape.txt"], 0),
            (["data/../../x"], 0),
            (["~/x"], 0),
            ([""], 0),
            (["a.txt", "b.txt", "a.txt"], 2),
            (["a.txt", "./a.txt"], 1),
            (["tests/test_outputs.py"], 0),
            (["ok.txt", "solution/solve.sh"], 1),
            (["Dockerfile"], 0),
            (["./Dockerfile"], 0),
            ([".dockerignore"], 0),
            (["."], 0),
            (["./"], 0),
            (["data", "data/orders.csv"], 1),
            (["data/orders.csv", "data"], 1),
            (["a/b/c.txt", "a/b"], 1),
        ],
    )
    def test_bad_paths(self, paths, bad_index):
        c = make_candidate()
        files = [{"path": p, "content": "x"} for p in paths]
        with pytest.raises(ArtifactError) as info:
            c.set_environment(env(dockerfile=f"FROM {BASE}\n", files=files), base_image=BASE)
        assert info.value.field == f"$.files[{bad_index}].path"
        assert f"$.files[{bad_index}].path" in str(info.value)
        assert info.value.verdict == "bad_output"
        assert c.dockerfile is None and c.files == []  # nothing applied

    def test_oversize_file(self):
        files = [
            {"path": "small.txt", "content": "x"},
            {"path": "big.txt", "content": "é" * (MAX_FILE_BYTES // 2 + 1)},
        ]
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_environment(env(dockerfile=f"FROM {BASE}\n", files=files), base_image=BASE)
        assert info.value.field == "$.files[1].path" and "'big.txt'" in str(info.value)
        assert str(MAX_FILE_BYTES) in str(info.value)

    def test_total_size_limit(self):
        chunk = "x" * MAX_FILE_BYTES
        files = [{"path": f"f{i}.txt", "content": chunk} for i in range(9)]
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_environment(env(dockerfile=f"FROM {BASE}\n", files=files), base_image=BASE)
        assert info.value.field == "$.files" and "total" in str(info.value)

    def test_file_and_folder_collision_named(self):
        files = [{"path": "data/x/a.csv", "content": "1"}, {"path": "data/x", "content": "2"}]
        with pytest.raises(
            ArtifactError, match=r"\$\.files\[1\]\.path: 'data/x' is both a file and a folder"
        ):
            make_candidate().set_environment(env(dockerfile=f"FROM {BASE}\n", files=files), base_image=BASE)

    def test_sibling_prefixes_are_not_collisions(self):
        c = make_candidate()
        files = [
            {"path": "data", "content": "1"},
            {"path": "data2/a.csv", "content": "2"},
            {"path": "datab", "content": "3"},
        ]
        c.set_environment(env(dockerfile=f"FROM {BASE}\n", files=files), base_image=BASE)
        assert [f.path for f in c.files] == ["data", "data2/a.csv", "datab"]

    def test_paths_normalised(self):
        c = make_candidate()
        files = [
            {"path": "./data//orders.csv", "content": "a"},
            {"path": " run.sh ", "content": "b", "executable": True},
        ]
        c.set_environment(env(files=files), base_image=BASE)
        assert [(f.path, f.executable) for f in c.files] == [("data/orders.csv", False), ("run.sh", True)]
        assert c.dockerfile.startswith(f"FROM {BASE}")

    def test_environment_stage_is_named(self):
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_environment(env(files=[]), base_image=BASE, stage="repair")
        assert info.value.stage == "repair"
        assert str(info.value).startswith(
            "stage 'repair': $.dockerfile: line 3: COPY source 'data/orders.csv'"
        )


# ---------------------------------------------------------------------------------------- tests
class TestSetTests:
    def test_good_tests(self):
        c = make_candidate()
        c.set_tests(
            {
                "test_outputs_py": GOOD_TESTS,
                "test_sh": "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
                "files": [{"path": "fixtures/expected.json", "content": "{}"}],
            }
        )
        assert c.test_outputs_py == GOOD_TESTS
        assert c.test_sh.endswith("reward.txt\n")
        assert [f.path for f in c.test_files] == ["fixtures/expected.json"]

    def test_empty_test_sh_means_default(self):
        c = make_candidate()
        c.set_tests({"test_outputs_py": GOOD_TESTS, "test_sh": None})
        assert c.test_sh is None

    def test_invalid_python_names_the_line(self):
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_tests({"test_outputs_py": "import os\n\ndef test_x(:\n    pass\n"})
        assert info.value.field == "$.test_outputs_py"
        assert "not valid Python: line 3" in str(info.value)

    def test_needs_a_test_function(self):
        src = "def helper():\n    return 1\n\n# def test_commented(): pass\nx = 'def test_in_string()'\n"
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_tests({"test_outputs_py": src})
        assert "no test function" in str(info.value)

    def test_indented_test_method_counts(self):
        c = make_candidate()
        c.set_tests({"test_outputs_py": "class TestX:\n    def test_a(self):\n        assert True\n"})
        assert c.test_outputs_py is not None

    def test_test_sh_must_write_reward(self):
        c = make_candidate()
        with pytest.raises(ArtifactError) as info:
            c.set_tests({"test_outputs_py": GOOD_TESTS, "test_sh": "#!/bin/bash\npytest /tests\n"})
        assert info.value.field == "$.test_sh" and "/logs/verifier/reward" in str(info.value)
        assert c.test_outputs_py is None

    @pytest.mark.parametrize("name", ["test.sh", "test_outputs.py", "./test.sh"])
    def test_reserved_file_names(self, name):
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_tests(
                {"test_outputs_py": GOOD_TESTS, "files": [{"path": name, "content": "x"}]}
            )
        assert info.value.field == "$.files" and "is given by its own key" in str(info.value)

    def test_files_key_and_stage(self):
        with pytest.raises(ArtifactError) as info:
            make_candidate().set_tests(
                {"test_outputs_py": GOOD_TESTS, "test_files": [{"path": "/abs", "content": "x"}]},
                stage="refine",
                files_key="test_files",
            )
        assert info.value.stage == "refine" and info.value.field == "$.test_files[0].path"


# --------------------------------------------------------------------------------------- repair
class TestApplyRepair:
    def test_only_given_keys_replace(self):
        c = complete_candidate()
        before = c.to_dict()
        changed = c.apply_repair({"solve_sh": "#!/bin/bash\necho 11 > /app/total.txt\n"}, base_image=BASE)
        assert changed == ["solution/solve.sh"]
        after = c.to_dict()
        assert after.pop("solve_sh") != before.pop("solve_sh")
        assert after == before

    def test_nothing_given_changes_nothing(self):
        c = complete_candidate()
        before = c.to_dict()
        assert c.apply_repair({}, base_image=BASE) == []
        assert c.to_dict() == before

    def test_every_artifact(self):
        c = complete_candidate()
        changed = c.apply_repair(
            {
                "instruction": "New instruction.",
                "dockerfile": f"FROM {BASE}\nWORKDIR /srv\n",
                "files": [],
                "solve_sh": "echo fixed",
                "test_outputs_py": "def test_new():\n    pass\n",
            },
            base_image=BASE,
        )
        assert changed == ["instruction.md", "environment", "solution/solve.sh", "tests"]
        assert c.instruction == "New instruction."
        assert c.dockerfile == f"FROM {BASE}\nWORKDIR /srv\n" and c.files == []
        assert c.solve_sh == "echo fixed"
        assert c.test_outputs_py.startswith("def test_new")
        assert [f.path for f in c.test_files] == ["expected.txt"]  # kept: not in the repair

    def test_files_only_keeps_dockerfile(self):
        c = complete_candidate()
        dockerfile = c.dockerfile
        files = [
            {"path": "data/orders.csv", "content": "id,amount\n1,99\n"},
            {"path": "run.sh", "content": "x"},
        ]
        assert c.apply_repair({"files": files}, base_image=BASE) == ["environment"]
        assert c.dockerfile == dockerfile
        assert [f.path for f in c.files] == ["data/orders.csv", "run.sh"]
        assert c.files[0].content.endswith("99\n")

    def test_files_only_rechecks_the_dockerfile(self):
        c = complete_candidate()
        before = c.to_dict()
        with pytest.raises(ArtifactError) as info:
            c.apply_repair({"files": [{"path": "data/orders.csv", "content": "x"}]}, base_image=BASE)
        assert info.value.stage == "repair" and "'run.sh' is not among the files" in str(info.value)
        assert c.to_dict() == before

    def test_dockerfile_only_keeps_files(self):
        c = complete_candidate()
        files = list(c.files)
        new = f"FROM {BASE}\nCOPY tool.bin /usr/local/bin/\n"
        assert c.apply_repair({"dockerfile": new}, base_image=BASE) == ["environment"]
        assert c.dockerfile == new and c.files == files
        with pytest.raises(ArtifactError) as info:
            c.apply_repair({"dockerfile": f"FROM {BASE}\nRUN pip install x\n"}, base_image=BASE)
        assert info.value.verdict == "needs_network"
        assert c.dockerfile == new

    def test_tests_repair_keeps_other_test_artifacts(self):
        c = complete_candidate()
        c.test_sh = "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n"
        assert c.apply_repair({"test_files": []}, base_image=BASE) == ["tests"]
        assert c.test_files == [] and c.test_outputs_py == GOOD_TESTS and c.test_sh.startswith("#!")
        with pytest.raises(ArtifactError) as info:
            c.apply_repair({"test_outputs_py": "x = ("}, base_image=BASE)
        assert info.value.stage == "repair" and info.value.field == "$.test_outputs_py"
        assert c.test_outputs_py == GOOD_TESTS


# ----------------------------------------------------------------------------------------- write
class TestWrite:
    def test_loadable_task_folder(self, tmp_path):
        c = complete_candidate()
        dest = c.write(tmp_path / "data_science" / "orders-total")
        assert dest == tmp_path / "data_science" / "orders-total"
        task = load_task(dest)
        assert task.name == "orders-total"
        assert task.instruction == c.instruction + "\n"
        md = task.config.metadata
        assert md.domain == "data_science" and md.difficulty == "easy" and md.category == "data-processing"
        assert md.tags == ["csv", "sum"] and md.author_name == "LiteCoder-Terminal-Gen"
        assert md.model_extra["synth_id"] == "cand-0001"
        assert task.config.agent.timeout_sec == 300 and task.config.verifier.timeout_sec == 60
        assert task.config.environment.allow_internet is False
        assert task.config.environment.cpus == 2 and task.config.environment.memory_mb == 1024

        assert (dest / "environment" / "Dockerfile").read_text() == c.dockerfile
        assert (dest / "environment" / "data" / "orders.csv").read_text() == "id,amount\n1,10\n"
        assert (dest / "environment" / "run.sh").read_text() == "#!/bin/sh\necho run\n"  # newline added
        assert (dest / "environment" / "tool.bin").read_text() == "x"  # kept as is
        assert (dest / "solution" / "solve.sh").read_text() == c.solve_sh + "\n"
        assert (dest / "tests" / "test.sh").read_text() == DEFAULT_TEST_SH
        assert (dest / "tests" / "test_outputs.py").read_text() == GOOD_TESTS
        assert (dest / "tests" / "expected.txt").read_text() == "10\n"
        for p in ("solution/solve.sh", "tests/test.sh", "environment/run.sh", "environment/tool.bin"):
            assert os.access(dest / p, os.X_OK), p
        assert not os.access(dest / "environment" / "data" / "orders.csv", os.X_OK)
        assert not os.access(dest / "tests" / "test_outputs.py", os.X_OK)

    def test_defaults_from_seed(self, tmp_path):
        c = complete_candidate()
        c.meta = None
        c.seed = {"difficulty": "hard", "skill": "csv parsing"}
        raw = tomllib.loads((c.write(tmp_path / "t") / "task.toml").read_text())
        assert raw["metadata"]["difficulty"] == "hard" and raw["metadata"]["synth_skill"] == "csv parsing"
        assert raw["metadata"]["tags"] == [] and raw["metadata"]["category"] == "general"
        assert raw["agent"]["timeout_sec"] == 900 and raw["verifier"]["timeout_sec"] == 120
        assert raw["environment"]["allow_internet"] is False
        assert load_task(tmp_path / "t").config.metadata.difficulty == "hard"

    def test_custom_test_sh(self, tmp_path):
        c = complete_candidate()
        c.set_tests(
            {"test_outputs_py": GOOD_TESTS, "test_sh": "#!/bin/bash\necho 1 > /logs/verifier/reward.txt"}
        )
        dest = c.write(tmp_path / "t")
        assert (dest / "tests" / "test.sh").read_text() == "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n"
        assert not (dest / "tests" / "expected.txt").exists()

    def test_rewrite_replaces_stale_files(self, tmp_path):
        c = complete_candidate()
        dest = c.write(tmp_path / "t")
        (dest / "environment" / "stray.txt").write_text("old")
        c.apply_repair(
            {"files": [{"path": "data/orders.csv", "content": "a"}, {"path": "run.sh", "content": "b"}]},
            base_image=BASE,
        )
        c.apply_repair({"test_files": []}, base_image=BASE)
        assert c.write(dest) == dest
        assert not (dest / "environment" / "stray.txt").exists()
        assert not (dest / "environment" / "tool.bin").exists()
        assert not (dest / "tests" / "expected.txt").exists()
        assert (dest / "environment" / "data" / "orders.csv").read_text() == "a"
        load_task(dest)

    def test_incomplete_candidate(self, tmp_path):
        c = make_candidate(instruction="Do it.")
        with pytest.raises(
            ValueError, match=r"cand-0001 is incomplete: no dockerfile, solve_sh, test_outputs_py"
        ):
            c.write(tmp_path / "t")
        assert not (tmp_path / "t").exists()
        c = complete_candidate()
        c.solve_sh = None
        with pytest.raises(ValueError, match=r"incomplete: no solve_sh$"):
            c.write(tmp_path / "t")


# ----------------------------------------------------------------------------------- prompt view
class TestPromptView:
    def test_only_what_exists(self):
        c = make_candidate()
        assert json.loads(c.prompt_view()) == {"domain": "data_science"}
        c.idea = {"name": "orders-total", "title": "Sum orders"}
        view = json.loads(c.prompt_view())
        assert view["idea"]["title"] == "Sum orders"
        assert not {"instruction_md", "environment", "solution/solve.sh", "tests", "attacks"} & view.keys()

    def test_every_artifact(self):
        c = complete_candidate()
        c.attacks = {"hardcode": "echo 10 > /app/total.txt"}
        c.attack_kinds = {"hardcode": "partial"}
        view = json.loads(c.prompt_view())
        assert view["instruction_md"] == c.instruction and view["constraints"] == ["offline"]
        assert view["environment"]["Dockerfile"] == c.dockerfile
        assert [f["path"] for f in view["environment"]["files"]] == ["data/orders.csv", "run.sh", "tool.bin"]
        assert view["environment"]["files"][2]["executable"] is True
        assert view["solution/solve.sh"] == c.solve_sh
        assert view["tests"]["test_outputs.py"] == GOOD_TESTS
        assert view["tests"]["test.sh"] == "(the standard runner)"
        assert view["tests"]["files"][0] == {"path": "expected.txt", "executable": False, "content": "10\n"}
        assert view["attacks"] == {"hardcode": {"kind": "partial", "script": "echo 10 > /app/total.txt"}}

    def test_long_files_truncated(self):
        c = complete_candidate()
        c.files = [FileArtifact("big.csv", "y" * 10_000), FileArtifact("small.csv", "z" * 6000)]
        files = json.loads(c.prompt_view())["environment"]["files"]
        assert files[0]["content"] == "y" * 6000 + "\n... (10000 chars)"
        assert files[1]["content"] == "z" * 6000
        assert c.files[0].content == "y" * 10_000  # the artifact itself is whole

    def test_non_ascii_kept(self):
        c = make_candidate(instruction="Café — naïve", constraints=[])
        assert "Café — naïve" in c.prompt_view()


def test_artifact_error_fields():
    e = ArtifactError("tests", "$.test_sh", "boom", verdict="needs_network")
    assert (e.stage, e.field, e.verdict, e.reason) == (
        "tests",
        "$.test_sh",
        "needs_network",
        "$.test_sh: boom",
    )
    assert str(e) == "stage 'tests': $.test_sh: boom"


def test_to_dict_roundtrip():
    c = complete_candidate()
    d = c.to_dict()
    assert d["files"][0] == {"path": "data/orders.csv", "content": "id,amount\n1,10\n", "executable": False}
    assert json.loads(json.dumps(d))["id"] == "cand-0001"
