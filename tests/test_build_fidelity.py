"""Build fidelity for real suites: --force-build, host package-index settings lent to builds as secrets,
images that list a layer twice, and every task name Harbor / Terminal-Bench accept.

Fixture tasks are written under a temporary folder and built FROM ltenv/base:bookworm; builds are shared
between tests through module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltenv.errors import ImageError
from ltenv.sandbox.build_config import HostBuildConfig, lend_to_dockerfile
from ltenv.tasks import load_suite, load_task
from ltenv.tasks.terminal_bench import DEFAULT_DOMAIN, domain_for_category

BASE = "ltenv/base:bookworm"
TEST_SH = """#!/bin/bash
mkdir -p /logs/verifier
if [ "$(cat /app/answer.txt 2>/dev/null)" = "42" ]; then echo 1 > /logs/verifier/reward.txt
else echo 0 > /logs/verifier/reward.txt; fi
"""


def _task(root: Path, folder: str, dockerfile: str | None, toml: str = 'version = "1.0"\n') -> Path:
    d = root / folder
    (d / "environment").mkdir(parents=True)
    (d / "tests").mkdir()
    (d / "solution").mkdir()
    (d / "task.toml").write_text(toml)
    (d / "instruction.md").write_text("Write 42 to /app/answer.txt.\n")
    if dockerfile is not None:
        (d / "environment" / "Dockerfile").write_text(dockerfile)
    (d / "tests" / "test.sh").write_text(TEST_SH)
    (d / "solution" / "solve.sh").write_text("#!/bin/bash\necho 42 > /app/answer.txt\n")
    return d


# An image that lists a layer twice, whichever builder made it. BuildKit gives an empty layer for a WORKDIR
# that exists (twice here); its RUN layers always differ (each touches /etc's mount points). The classic
# builder makes the 1st and 3rd RUN byte-identical, with a layer between that deletes their file: Docker shows
# the file (the upper copy re-adds it), and so must bwrap.
REPEATED = f"""FROM {BASE}
WORKDIR /app
RUN mkdir -p /d && printf same > /d/x && touch -d @0 /d/x /d
RUN rm /d/x && printf other > /e
RUN mkdir -p /d && printf same > /d/x && touch -d @0 /d/x /d
WORKDIR /app
"""


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    _task(
        root,
        "R_package_Mixed_Case",
        REPEATED,
        '[task]\nname = "LiteCoder/mixed-display"\n\n[metadata]\ncategory = "software-engineering"\n',
    )
    bad = _task(root, "broken-sibling", f"FROM {BASE}\n")
    (bad / "task.toml").write_text("[agent]\ntimeout_sec = -5\n")
    return root


# ----------------------------------------------------------------------------- names, categories, siblings


def test_names_display_names_and_categories(suite_root, tmp_path):
    suite = load_suite(suite_root)
    assert [t.name for t in suite.tasks] == ["R_package_Mixed_Case"]
    task = suite.tasks[0]
    assert task.display_name == "LiteCoder/mixed-display"
    assert task.domain == "coding" and task.config.metadata.category == "software-engineering"
    [err] = suite.errors
    assert err.folder.name == "broken-sibling" and err.file == "task.toml" and "timeout_sec" in str(err)

    from ltenv.sandbox.images import image_name

    tag = image_name(task.name)
    assert tag == tag.lower() and tag != image_name("r_package_mixed_case")
    assert image_name("fix-off-by-one") == "fix-off-by-one"

    assert domain_for_category("System Administration") == "system_admin"
    assert domain_for_category("underwater-basket-weaving") == DEFAULT_DOMAIN
    tb = tmp_path / "TB_Task"
    tb.mkdir()
    (tb / "task.yaml").write_text("instruction: do it\ndifficulty: easy\ncategory: basket-weaving\n")
    (tb / "Dockerfile").write_text(f"FROM {BASE}\n")
    (tb / "run-tests.sh").write_text("#!/bin/bash\nexit 0\n")
    t = load_task(tb)
    assert (t.name, t.domain, t.config.metadata.category) == ("TB_Task", DEFAULT_DOMAIN, "basket-weaving")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltenv.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_list_and_gym_make_keep_the_display_name(suite_root):
    proc = _cli("list", "--tasks", str(suite_root), "--json")
    rows = json.loads(proc.stdout)
    assert [(r["name"], r.get("display_name")) for r in rows] == [
        ("R_package_Mixed_Case", "LiteCoder/mixed-display")
    ]
    assert "broken-sibling" in proc.stderr and proc.returncode == 1

    import gymnasium as gym

    import ltenv

    ids = ltenv.register_tasks(suite_root, namespace="Fidelity")
    assert "Fidelity/R_package_Mixed_Case" in ids
    env = gym.make("Fidelity/R_package_Mixed_Case")
    assert env.unwrapped.task.display_name == "LiteCoder/mixed-display"
    env.close()


@pytest.mark.docker
@pytest.mark.parametrize("backend_name", [pytest.param("bwrap", marks=pytest.mark.bwrap), "docker"])
def test_validate_mixed_case_task_with_a_malformed_sibling(suite_root, repeated, backend_name, request):
    if backend_name == "bwrap":
        request.getfixturevalue("bwrap_ok")
    good = _cli("validate", "R_package_Mixed_Case", "--tasks", str(suite_root), "--runs", "1",
                "--backend", backend_name, "--json", "--no-host-build-config")  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert "warning" in good.stderr and "broken-sibling" in good.stderr
    [row] = json.loads(good.stdout)
    assert row["valid"]
    bad = _cli("validate", "broken-sibling", "--tasks", str(suite_root), "--backend", backend_name)
    assert bad.returncode == 2
    assert "task.toml" in bad.stderr and "timeout_sec" in bad.stderr


# ----------------------------------------------------------------------------- repeated layers


@pytest.fixture(scope="module")
def repeated(store, suite_root):
    task = load_suite(suite_root).by_name("R_package_Mixed_Case")
    return task, store.prepare(task)


@pytest.mark.docker
@pytest.mark.bwrap
def test_repeated_layer_mounts_on_bwrap_with_dockers_view(repeated, bwrap_ok):
    from ltenv.sandbox import create_sandbox
    from ltenv.sandbox.bwrap import lower_dirs

    task, prepared = repeated
    assert len(set(prepared.layers)) < len(prepared.layers), "the image should list a layer twice"
    assert len(lower_dirs(prepared.layers)) == len(set(prepared.layers))
    views = {}
    for backend in ("bwrap", "docker"):
        with create_sandbox(task, backend=backend, memory_mb=256) as sb:
            views[backend] = sb.exec(
                ["bash", "-c", "cat /d/x; echo; cat /e; echo; ls -A /d | tr '\\n' ' '"]
            ).stdout.decode()
    assert views["bwrap"] == views["docker"] == "same\nother\nx "


def test_lower_dirs_keep_the_upper_copy_of_a_repeated_layer(tmp_path):
    from ltenv.sandbox.images import lower_dirs

    a, b, c = (tmp_path / n for n in "abc")
    # Bottom first in, top first out; the lower copy of `a` goes: the upper one redoes all it did.
    assert lower_dirs((a, b, a, c)) == [str(c), str(a), str(b)]
    assert lower_dirs((a, b, c)) == [str(c), str(b), str(a)]


# ----------------------------------------------------------------------------- --force-build


@pytest.mark.docker
def test_force_build_with_an_unreachable_docker_image(store, tmp_path):
    from ltenv.sandbox.images import ImageStore

    d = _task(
        tmp_path,
        "prebuilt-unreachable",
        f"FROM {BASE}\nRUN echo built-from-dockerfile > /built\n",
        '[environment]\ndocker_image = "registry.invalid/ltenv-test/nope:1"\n',
    )
    task = load_task(d)
    plain = ImageStore(store.root, host_build_config=False)
    with pytest.raises(ImageError, match="--force-build") as e:
        plain.build(task)
    assert "--image-map" in str(e.value)
    forced = ImageStore(store.root, host_build_config=False, force_build=True)
    prepared = forced.prepare(task)
    assert (prepared.layers[-1] / "built").read_text() == "built-from-dockerfile\n"
    assert plain.prepare(task, force_build=True).image_id == prepared.image_id  # the per-call option


# ----------------------------------------------------------------------------- host build config


PIP_DOCKERFILE = f"""FROM {BASE}
RUN apt-get update && apt-get install -y --no-install-recommends --no-install-suggests python3-pip && rm -rf /var/lib/apt/lists/*
RUN pip install --break-system-packages --no-cache-dir --retries 0 --timeout 20 tabulate==0.9.0
"""


@pytest.mark.docker
def test_pip_install_from_pypi_builds_with_host_settings_and_fails_without(store, tmp_path):
    from ltenv.sandbox.build_config import buildkit_cli
    from ltenv.sandbox.images import ImageStore

    host = HostBuildConfig.detect()
    if host.empty or buildkit_cli() is None:
        pytest.skip("no host package-index settings or no BuildKit docker CLI here")
    task = load_task(_task(tmp_path, "pip-from-pypi", PIP_DOCKERFILE))
    tag = ImageStore(store.root).build(task)
    out = store.client.containers.run(
        tag, ["python3", "-c", "import tabulate; print(tabulate.__version__)"], remove=True
    )
    assert out.decode().strip() == "0.9.0"

    off = ImageStore(store.root, host_build_config=False)
    assert off.task_tag(task, []) == ImageStore(store.root).task_tag(task, [])  # secrets never change a tag
    assert off.host_config is None

    # Opted out (here through the environment, by the CLI), a pip install from PyPI fails, and says why.
    # Built on the image above so that apt does not run twice.
    optout = tmp_path / "optout"
    pip_step = PIP_DOCKERFILE.splitlines()[-1].replace("tabulate==0.9.0", "humanize==4.9.0")
    _task(optout, "pip-opted-out", f"FROM {tag}\n{pip_step}\n")
    proc = _cli("images", "build", "--tasks", str(optout), env={"LTENV_HOST_BUILD_CONFIG": "0"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip install" in proc.stderr and "humanize" in proc.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr or "SSL" in proc.stderr


@pytest.mark.docker
def test_no_secret_is_left_in_layers_history_or_config(store, tmp_path):
    from ltenv.sandbox.build_config import buildkit_cli
    from ltenv.sandbox.images import ImageStore

    if buildkit_cli() is None:
        pytest.skip("no docker CLI with BuildKit here")
    ca = tmp_path / "fake-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nLTENVFAKECABUNDLE0123456789\n-----END CERTIFICATE-----\n")
    host = HostBuildConfig(
        ca_bundle=ca,
        pip={"index-url": "https://user:PIPFAKETOKEN42@pypi.example.invalid/simple"},
        apt=('Acquire::http::Proxy "http://APTFAKETOKEN7@proxy.example.invalid:3128";',),
        npm=("registry=https://npm.example.invalid/", "//npm.example.invalid/:_authToken=NPMFAKETOKEN9"),
    )
    secrets = ("LTENVFAKECABUNDLE", "PIPFAKETOKEN42", "APTFAKETOKEN7", "NPMFAKETOKEN9")
    # The step proves it saw each secret without spelling one (its command line is in the history).
    dockerfile = f"""FROM {BASE}
USER nobody
RUN grep -q "PIPFAKE""TOKEN42" "$PIP_CONFIG_FILE" && grep -q "LTENVFAKE""CABUNDLE" "$SSL_CERT_FILE" \\
 && grep -q "APTFAKE""TOKEN7" "$APT_CONFIG" && grep -q "NPMFAKE""TOKEN9" "$NPM_CONFIG_GLOBALCONFIG" \\
 && pip_cert="$(sed -n 's/^cert = //p' "$PIP_CONFIG_FILE")" && grep -q "LTENVFAKE""CABUNDLE" "$pip_cert" \\
 && echo seen > /tmp/secrets-were-visible
"""
    task = load_task(_task(tmp_path, "secret-check", dockerfile))
    lending = ImageStore(store.root, host_build_config=host)
    tag = lending.build(task, force=True)
    prepared = lending.export(tag)
    base_layers = set(store.export(BASE).layers)
    mine = [p for p in prepared.layers if p not in base_layers]
    assert mine and any((p / "tmp/secrets-were-visible").is_file() for p in mine)
    for layer in mine:
        for dirpath, _dirs, files in os.walk(layer):
            for fn in files:
                p = Path(dirpath) / fn
                if p.is_file() and not p.is_symlink():
                    data = p.read_bytes()
                    assert not [s for s in secrets if s.encode() in data], p
    attrs = store.client.api.inspect_image(tag)
    history = store.client.api.history(tag)
    blob = json.dumps(attrs) + json.dumps(history)
    assert not [s for s in secrets if s in blob]
    assert "/run/secrets/" in blob  # only the paths the steps were told about


def test_image_tag_follows_the_task_not_the_lent_settings(tmp_path):
    from ltenv.sandbox.images import ImageStore

    d = _task(tmp_path, "tagged", f"FROM {BASE}\nRUN true\n")
    lent = HostBuildConfig(pip={"index-url": "https://user:TOKEN@pypi.example.invalid/simple"})
    stores = [ImageStore(tmp_path / "cache", host_build_config=x) for x in (False, True, lent)]
    tags = {s.task_tag(load_task(d), ["sha256:base"]) for s in stores}
    assert len(tags) == 1  # what is lent never changes a tag
    (d / "environment" / "Dockerfile").write_text(f"FROM {BASE}\nRUN true\nRUN true\n")
    assert stores[0].task_tag(load_task(d), ["sha256:base"]) not in tags  # the task does


def test_dockerfile_rewrite_reaches_every_run_step():
    secrets_ = type("S", (), {})()
    from ltenv.sandbox.build_config import BuildSecrets

    secrets_ = BuildSecrets(
        files={"ltenv-ca.crt": Path("/x")}, args={"SSL_CERT_FILE": "/run/secrets/ltenv-ca.crt"}
    )
    text = (
        "# syntax=docker/dockerfile:1.4\n# escape=\\\nFROM a AS build\n"
        "RUN echo one \\\n  # a comment\n  RUN-not-an-instruction\n"
        'run ["echo", "two"]\nONBUILD RUN echo three\nFROM b\nCOPY --from=build /x /x\n'
    )
    out = lend_to_dockerfile(text, secrets_)
    assert "syntax" not in out
    assert out.count("--mount=type=secret,id=ltenv-ca.crt,mode=0444") == 2
    assert out.count("ARG SSL_CERT_FILE=/run/secrets/ltenv-ca.crt") == 2
    assert "  RUN-not-an-instruction" in out and "ONBUILD RUN echo three" in out
