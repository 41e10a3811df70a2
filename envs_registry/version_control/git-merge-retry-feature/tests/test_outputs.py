"""Verifier for git-merge-retry-feature."""
import configparser
import io
import subprocess
import sys
import types

import pytest

REPO = "/app/repo"
MAIN_BEFORE = "cfc9b46e2d17a1e11613984ca994d551910b3837"
FEATURE_TIP = "e96da6cbc4a9f07d066983df544f65d9caeed0c2"


def git(*args):
    return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=True).stdout


def show(path):
    return git("show", f"HEAD:{path}")


def load_client():
    mod = types.ModuleType("client_under_test")
    exec(compile(show("src/client.py"), "client.py", "exec"), mod.__dict__)
    return mod


class FakeResp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_merge_commit_topology():
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git("rev-parse", "feature/retry").strip() == FEATURE_TIP
    parents = git("rev-list", "--parents", "-n", "1", "main").split()[1:]
    assert parents == [MAIN_BEFORE, FEATURE_TIP]
    assert git("log", "-1", "--format=%s", "main").strip() == "Merge branch 'feature/retry'"
    assert git("status", "--porcelain", "--untracked-files=no").strip() == ""


def test_no_conflict_markers():
    for path in git("ls-files").split():
        text = show(path)
        for marker in ("<<<<<<<", ">>>>>>>", "\n=======\n"):
            assert marker not in text, f"conflict marker left in {path}"


def test_client_api_and_retry_behaviour():
    client = load_client()
    assert not hasattr(client, "fetch"), "fetch() must be gone"
    import inspect
    sig = inspect.signature(client.fetch_json)
    assert list(sig.parameters) == ["url", "timeout", "retries", "opener"]
    assert sig.parameters["timeout"].default == 10 and sig.parameters["retries"].default == 3

    state = {"n": 0}

    def flaky(url, timeout):
        state["n"] += 1
        if state["n"] <= 2:
            raise TimeoutError("slow")
        return FakeResp(b'{"items": [1, 2]}')

    assert client.fetch_json("http://h/", opener=flaky) == {"items": [1, 2]}
    assert state["n"] == 3

    state["n"] = 0
    with pytest.raises(OSError):
        client.fetch_json("http://h/", retries=2, opener=flaky)
    assert state["n"] == 2

    seen = []
    assert client.fetch_json("http://h/", timeout=7, retries=1,
                             opener=lambda u, timeout: seen.append(timeout) or FakeResp(b"[]")) == []
    assert seen == [7]

    def broken(url, timeout):
        raise ValueError("not retried")
    with pytest.raises(ValueError):
        client.fetch_json("http://h/", opener=broken)


def test_settings_merged():
    cp = configparser.ConfigParser()
    cp.read_string(show("config/settings.ini"))
    assert dict(cp["http"]) == {"base_url": "http://127.0.0.1:8000", "timeout": "30",
                                "user_agent": "httpclient-lite/1.2", "retries": "3"}
    assert dict(cp["logging"]) == {"level": "INFO"}
    assert cp.sections() == ["http", "logging"]


def test_changelog():
    assert show("CHANGELOG.md") == (
        "# Changelog\n\n## Unreleased\n"
        "- Rename fetch() to fetch_json() and decode JSON responses (#39)\n"
        "- Retry transient network errors, configurable via `retries` (#41)\n"
        "\n## 1.1.0\n- Add timeout support\n"
    )


def test_repo_test_suite_passes(tmp_path):
    text = show("tests/test_client.py")
    for name in ("test_fetch_json_decodes", "test_fetch_retries_then_succeeds", "test_fetch_gives_up"):
        assert f"def {name}(" in text
    assert "client.fetch(" not in text
    export = tmp_path / "export"
    export.mkdir()
    archive = subprocess.run(["git", "-C", REPO, "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=export, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
