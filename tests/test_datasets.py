"""The dataset registry: registry files, pulls over real HTTP servers on 127.0.0.1 (``git http-backend``
behind a small CGI bridge; a Hugging-Face-compatible endpoint that ``huggingface_hub`` downloads from),
the verified cache, offline mode, and ``--dataset`` on the task commands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from typer.testing import CliRunner

from ltenv.cli import app
from ltenv.datasets import (
    DatasetError,
    Registry,
    check_cache,
    pull,
    read_registry_file,
    tree_digest,
)

FIXTURES = Path(__file__).parent / "fixtures"
HARBOR_TASKS = ["write-greeting", "nop-passes"]
TB1_TASKS = ["tb-sum-numbers"]


# --------------------------------------------------------------------------- servers on 127.0.0.1


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _git_handler(project_root: Path) -> type[BaseHTTPRequestHandler]:
    class GitCGI(BaseHTTPRequestHandler):
        """Smart HTTP: each request runs ``git http-backend`` as a CGI program."""

        def log_message(self, *args) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _cgi(self) -> None:
            url = urlsplit(self.path)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": unquote(url.path),
                "QUERY_STRING": url.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(project_root),
            }
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            body = self._body() if self.command == "POST" else b""
            env["CONTENT_LENGTH"] = str(len(body))
            proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _cgi

    return GitCGI


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory) -> Iterator[dict]:
    """A bare repository ``suites.git`` served over smart HTTP: ``harbor/`` (two Harbor tasks), ``tb1/`` (a TB 1.x
    task); two commits on main (the second adds a README and ``evil/``, a task with a symlink to a host file)."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    for name in HARBOR_TASKS:
        shutil.copytree(FIXTURES / "tasks" / name, work / "harbor" / name)
    for name in TB1_TASKS:
        shutil.copytree(FIXTURES / "tb1" / name, work / "tb1" / name)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "suites")
    first = _git(work, "rev-parse", "HEAD")
    (work / "README.md").write_text("not a task\n")
    evil = work / "evil" / "leak"
    shutil.copytree(FIXTURES / "tasks" / "write-greeting", evil)
    (evil / "environment" / "passwd").symlink_to("/etc/passwd")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "readme")
    head = _git(work, "rev-parse", "HEAD")
    root = base / "srv"
    root.mkdir()
    _git(base, "clone", "-q", "--bare", str(work), str(root / "suites.git"))
    # As GitHub does: partial clone (blobs of the sparse sub-folder only) is allowed.
    _git(root / "suites.git", "config", "uploadpack.allowFilter", "true")
    for url in _serve(_git_handler(root)):
        yield {"url": f"{url}/suites.git", "first": first, "head": head, "work": work}


HF_REPO = "lite/rl-suite"
HF_SHA = "1234567890abcdef1234567890abcdef12345678"


def _hf_handler(files: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    def oid(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    class Hub(BaseHTTPRequestHandler):
        """The Hub endpoints ``snapshot_download`` uses, for one dataset repo whose ``main`` is HF_SHA."""

        requests: list[str] = []

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj) -> None:
            self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            Hub.requests.append(f"{self.command} {path}")
            api = f"/api/datasets/{HF_REPO}/"
            resolve = f"/datasets/{HF_REPO}/resolve/"
            if path.startswith(api + "revision/"):
                rev = path[len(api + "revision/") :]
                if rev not in ("main", HF_SHA):
                    return self._send(404, b"{}", {"X-Error-Code": "RevisionNotFound"})
                return self._json(
                    {
                        "id": HF_REPO,
                        "sha": HF_SHA,
                        "private": False,
                        "siblings": [{"rfilename": p} for p in sorted(files)],
                    }
                )
            if path.startswith(api + "tree/"):
                rev, _, sub = path[len(api + "tree/") :].partition("/")
                assert rev == HF_SHA
                recursive = parse_qs(url.query).get("recursive") == ["true"]
                out, dirs = [], set()
                for p in sorted(files):
                    if sub and not p.startswith(sub + "/"):
                        continue
                    rel = p[len(sub) + 1 :] if sub else p
                    if not recursive and "/" in rel:
                        dirs.add((f"{sub}/" if sub else "") + rel.split("/")[0])
                        continue
                    out.append({"type": "file", "oid": oid(files[p]), "size": len(files[p]), "path": p})
                out += [{"type": "directory", "oid": "0" * 40, "path": d} for d in sorted(dirs)]
                return self._json(out)
            if path.startswith(resolve):
                rev, _, p = path[len(resolve) :].partition("/")
                if rev != HF_SHA or p not in files:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                data = files[p]
                return self._send(
                    200,
                    data,
                    {"X-Repo-Commit": HF_SHA, "ETag": f'"{oid(data)}"', "Content-Type": "text/plain"},
                )
            self._send(404, b"")

        do_HEAD = do_GET

    return Hub


@pytest.fixture(scope="module")
def hf_server() -> Iterator[dict]:
    """A Hugging-Face-compatible endpoint serving HF_REPO: ``envs/<task>/...`` (Harbor) and a README."""
    files: dict[str, bytes] = {"README.md": b"# rl suite\n"}
    for name in HARBOR_TASKS:
        src = FIXTURES / "tasks" / name
        for p in sorted(src.rglob("*")):
            if p.is_file():
                files[f"envs/{name}/{p.relative_to(src).as_posix()}"] = p.read_bytes()
    handler = _hf_handler(files)
    for url in _serve(handler):
        yield {"url": url, "handler": handler, "files": files}


# --------------------------------------------------------------------------- registry files


def _registry(path: Path, git: dict | None = None, hf: dict | None = None, **over: str) -> Path:
    """A registry file with ``harbor-git@1`` (pinned to the first commit), ``tb1-git@1`` (unpinned, main),
    and ``rl-hf@1`` (pinned HF revision)."""
    parts = []
    if git is not None:
        parts.append(
            f"""
[[dataset]]
name = "harbor-git"
version = "1"
format = "harbor"
tasks = {len(HARBOR_TASKS)}
requires = ["nothing"]
[dataset.source]
type = "git"
url = "{git["url"]}"
commit = "{over.get("commit", git["first"])}"
ref = "main"
subdir = "harbor"

[[dataset]]
name = "tb1-git"
version = "1"
format = "terminal-bench"
pin_note = "no pin: resolved at pull time"
[dataset.source]
type = "git"
url = "{git["url"]}"
ref = "main"
subdir = "tb1"
"""
        )
    if hf is not None:
        parts.append(
            f"""
[[dataset]]
name = "rl-hf"
version = "1"
format = "harbor"
[dataset.source]
type = "hf"
repo = "{HF_REPO}"
revision = "{over.get("revision", HF_SHA)}"
subdir = "envs"
endpoint = "{hf["url"]}"
"""
        )
    path.write_text("".join(parts))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LTENV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LTENV_OFFLINE", raising=False)
    monkeypatch.delenv("LTENV_DATASETS", raising=False)
    # Nothing here may reach the internet: the Hub client talks only to the endpoint we give it.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return tmp_path / "cache" / "datasets"


def test_builtin_registry_has_the_published_suites_with_real_pins():
    reg = Registry.load()
    core = reg.get("terminal-bench-core@0.1.1")
    assert (core.format, core.tasks, core.source.subdir) == ("terminal-bench", 80, "tasks")
    assert core.source.url == "https://github.com/laude-institute/terminal-bench.git"
    assert core.source.commit == "91e10457b5410f16c44364da1a34cb6de8c488a5"
    tb2 = reg.get("terminal-bench@2.0")
    assert (tb2.format, tb2.tasks, tb2.source.commit) == (
        "harbor",
        89,
        "69671fbaac6d67a7ef0dfec016cc38a64ef7a77c",
    )
    rl = reg.get("litecoder-terminal-rl")
    assert (rl.source.type, rl.source.repo, rl.tasks) == (
        "hf",
        "Lite-Coder/LiteCoder-Terminal-RL-preview",
        602,
    )
    assert rl.source.pinned == rl.source.revision
    tg = reg.get("termigen")
    assert (tg.version, tg.tasks, tg.source.subdir) == ("1.0", 3566, "environments_harbor")
    assert all(e.requires and e.pin_note for e in reg.entries())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            '[[dataset]]\nname = "x"\nversion = "1"\nformat = "harbor"\n'
            '[dataset.source]\ntype = "git"\nurl = "u"\ncommit = "abc"\n',
            "dataset[0].source.commit",
        ),
        (
            '[[dataset]]\nname = "x"\nversion = "1"\nformat = "harbor"\n'
            '[dataset.source]\ntype = "svn"\nurl = "u"\n',
            "dataset[0].source",
        ),
        (
            '[[dataset]]\nname = "x"\nversion = "1"\nformat = "tb"\n'
            '[dataset.source]\ntype = "hf"\nrepo = "a/b"\n',
            "dataset[0].format",
        ),
        (
            '[[dataset]]\nname = "x"\nversion = "1"\nformat = "harbor"\ncolour = 1\n'
            '[dataset.source]\ntype = "hf"\nrepo = "a/b"\n',
            "dataset[0].colour",
        ),
        (
            '[[dataset]]\nname = "x"\nversion = "1"\nformat = "harbor"\n'
            '[dataset.source]\ntype = "hf"\nrepo = "a/b"\nsubdir = "../up"\n',
            "dataset[0].source.subdir",
        ),
        ("[[dataset]\n", "not valid TOML"),
    ],
)
def test_bad_registry_file_names_file_and_field(tmp_path, text, field):
    bad = tmp_path / "mirror.toml"
    bad.write_text(text)
    with pytest.raises(DatasetError) as e:
        read_registry_file(bad)
    assert str(bad) in str(e.value) and field in str(e.value)


def test_user_registry_overrides_builtin_entry_and_cli_reports_bad_file(tmp_path, cache, monkeypatch):
    mirror = tmp_path / "mirror.toml"
    mirror.write_text(
        '[[dataset]]\nname = "terminal-bench-core"\nversion = "0.1.1"\nformat = "terminal-bench"\n'
        '[dataset.source]\ntype = "git"\nurl = "https://git.cluster.example/tb.git"\nref = "main"\n'
    )
    monkeypatch.setenv("LTENV_DATASETS", str(mirror))
    entry = Registry.load().get("terminal-bench-core@0.1.1")
    assert entry.source.url == "https://git.cluster.example/tb.git" and entry.origin == str(mirror)
    mirror.write_text('[[dataset]]\nname = "Bad Name"\n')
    res = CliRunner().invoke(app, ["datasets", "list"])
    assert res.exit_code == 2 and str(mirror) in res.output and "dataset[0].name" in res.output


# --------------------------------------------------------------------------- pulls


def test_git_pull_verifies_caches_and_detects_corruption(git_server, cache, tmp_path):
    reg = Registry.load(_registry(tmp_path / "reg.toml", git=git_server))
    entry = reg.get("harbor-git@1")
    (cache / "harbor-git" / ".1.pull-killed" / "tasks").mkdir(parents=True)  # left by a killed pull
    (cache / "harbor-git" / ".1.0.pull-running").mkdir()  # another version's: not ours to remove
    first = pull(entry)
    assert not first.cached and first.manifest.revision == git_server["first"]
    assert sorted(p.name for p in first.tasks.iterdir()) == sorted(HARBOR_TASKS)
    assert not (first.path / "tasks" / ".git").exists()
    files, digest = tree_digest(git_server["work"] / "harbor")
    assert (first.manifest.files, first.manifest.sha256) == (files, digest)
    assert first.path == cache / "harbor-git" / "1"
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["source"]["commit"] == git_server["first"] and manifest["pulled_at"].endswith("Z")
    leftovers = [p.name for p in (cache / "harbor-git").iterdir() if ".pull-" in p.name]
    assert leftovers == [".1.0.pull-running"]

    again = pull(entry)
    assert again.cached and again.manifest == first.manifest

    (first.tasks / "write-greeting" / "instruction.md").write_text("tampered\n")
    status = check_cache(entry)
    assert status is not None and not status.ok and "checksum mismatch" in (status.problem or "")
    with pytest.raises(DatasetError, match=r"offline .* unusable: checksum mismatch"):
        pull(entry, offline=True)
    fixed = pull(entry)  # online: downloaded again, atomically replacing the bad copy
    assert not fixed.cached and fixed.manifest.sha256 == digest
    assert check_cache(entry).ok


def test_unpinned_git_dataset_records_the_commit_it_got(git_server, cache, tmp_path):
    reg = Registry.load(_registry(tmp_path / "reg.toml", git=git_server))
    res = pull(reg.get("tb1-git"))
    assert res.manifest.revision == git_server["head"]
    assert [p.name for p in res.tasks.iterdir()] == TB1_TASKS


def test_pinned_commit_the_server_lacks_is_a_clear_error(git_server, cache, tmp_path):
    missing = "0123456789abcdef0123456789abcdef01234567"
    reg = Registry.load(_registry(tmp_path / "reg.toml", git=git_server, commit=missing))
    with pytest.raises(DatasetError) as e:
        pull(reg.get("harbor-git@1"))
    assert f"the server has no commit {missing}" in str(e.value) and git_server["url"] in str(e.value)
    assert not (cache / "harbor-git" / "1").exists()
    assert not [p for p in (cache / "harbor-git").iterdir() if not p.name.endswith(".lock")]


def test_symlink_out_of_the_dataset_is_refused(git_server, cache, tmp_path):
    reg = _registry(tmp_path / "reg.toml", git=git_server)
    reg.write_text(reg.read_text().replace('subdir = "tb1"', 'subdir = "evil"'))
    with pytest.raises(DatasetError, match=r"leak/environment/passwd: symlink to /etc/passwd .* refused"):
        pull(Registry.load(reg).get("tb1-git@1"))
    assert not (cache / "tb1-git" / "1").exists()


def test_offline_uses_only_the_cache(git_server, cache, tmp_path, monkeypatch):
    reg = Registry.load(_registry(tmp_path / "reg.toml", git=git_server))
    entry = reg.get("harbor-git@1")
    monkeypatch.setenv("LTENV_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"offline .* not cached; run `ltenv datasets pull harbor-git@1`"):
        pull(entry)
    assert pull(entry, offline=False).cached is False
    assert pull(entry).cached is True  # offline, from the cache


def test_hf_pull_through_a_hub_endpoint(hf_server, cache, tmp_path, monkeypatch):
    from huggingface_hub import constants

    reg = Registry.load(_registry(tmp_path / "reg.toml", hf=hf_server))
    entry = reg.get("rl-hf@1")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set what this test needs on the module.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match="HF_HUB_OFFLINE is set"):
        pull(entry)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    res = pull(entry)
    assert res.manifest.revision == HF_SHA and not res.cached
    assert sorted(p.name for p in res.tasks.iterdir()) == sorted(HARBOR_TASKS)
    assert not (res.path / "tasks" / ".cache").exists()
    files, digest = tree_digest(FIXTURES / "tasks" / "write-greeting")
    sub_files, sub_digest = tree_digest(res.tasks / "write-greeting")
    assert (sub_files, sub_digest) == (files, digest)
    downloads = [r for r in hf_server["handler"].requests if "/resolve/" in r]
    assert not any("README.md" in r for r in downloads)  # only the subdir is downloaded
    assert pull(entry).cached

    bad = Registry.load(_registry(tmp_path / "bad.toml", hf=hf_server, revision="nope")).get("rl-hf@1")
    shutil.rmtree(cache / "rl-hf")
    with pytest.raises(DatasetError, match="revision nope"):
        pull(bad)


# --------------------------------------------------------------------------- command line


def test_datasets_cli_list_info_pull(git_server, cache, tmp_path):
    reg = str(_registry(tmp_path / "reg.toml", git=git_server))
    cli = CliRunner()
    rows = json.loads(cli.invoke(app, ["datasets", "list", "--registry", reg, "--json"]).stdout)
    by = {f"{r['name']}@{r['version']}": r for r in rows}
    assert {
        "terminal-bench-core@0.1.1",
        "terminal-bench@2.0",
        "litecoder-terminal-rl@preview",
        "termigen@1.0",
    } <= set(by)
    assert by["harbor-git@1"]["cached"] is False and by["harbor-git@1"]["tasks"] == 2

    res = cli.invoke(app, ["datasets", "pull", "harbor-git@1", "--registry", reg, "--offline"])
    assert res.exit_code == 2 and "not cached" in res.output

    res = cli.invoke(app, ["datasets", "pull", "harbor-git", "tb1-git@1", "--registry", reg, "--json"])
    assert res.exit_code == 0, res.output
    pulled = json.loads(res.stdout)
    assert [p["cached"] for p in pulled] == [False, False]
    assert pulled[0]["path"] == str(cache / "harbor-git" / "1" / "tasks")

    res = cli.invoke(app, ["datasets", "pull", "harbor-git@1", "--registry", reg, "--offline"])
    assert res.exit_code == 0 and "harbor-git@1: cached" in res.stdout and pulled[0]["sha256"] in res.stdout

    info = json.loads(
        cli.invoke(app, ["datasets", "info", "harbor-git@1", "--registry", reg, "--json"]).stdout
    )
    assert (
        info["verified"] and info["sha256"] == pulled[0]["sha256"] and info["revision"] == git_server["first"]
    )
    assert info["pinned"] == git_server["first"] and info["requires"] == ["nothing"]
    text = cli.invoke(app, ["datasets", "info", "tb1-git", "--registry", reg]).stdout
    assert "not pinned" in text and "no pin: resolved at pull time" in text and pulled[1]["sha256"] in text

    res = cli.invoke(app, ["datasets", "info", "nosuch", "--registry", reg])
    assert res.exit_code == 2 and "unknown dataset 'nosuch'" in res.output


def test_list_and_validate_load_a_dataset(git_server, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("LTENV_DATASETS", str(_registry(tmp_path / "reg.toml", git=git_server)))
    cli = CliRunner()
    res = cli.invoke(app, ["list", "--dataset", "harbor-git@1", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sorted(r["name"] for r in rows) == sorted(HARBOR_TASKS)
    assert all(r["path"].startswith(str(cache / "harbor-git" / "1" / "tasks")) for r in rows)
    res = cli.invoke(app, ["list", "-d", "tb1-git", "--json"])
    assert [(r["name"], r["format"]) for r in json.loads(res.stdout)] == [
        ("tb-sum-numbers", "terminal-bench")
    ]

    res = cli.invoke(app, ["list", "--dataset", "harbor-git@1", "--tasks", str(tmp_path)])
    assert res.exit_code == 2 and "not both" in res.output
    monkeypatch.setenv("LTENV_OFFLINE", "1")
    shutil.rmtree(cache / "tb1-git")
    res = cli.invoke(app, ["validate", "--dataset", "tb1-git@1", "tb-sum-numbers"])
    assert res.exit_code == 2 and "not cached" in res.output
    res = cli.invoke(app, ["validate", "--dataset", "harbor-git@1", "no-such-task"])
    assert res.exit_code == 2 and "unknown task(s): no-such-task" in res.output


@pytest.mark.bwrap
@pytest.mark.docker
def test_validate_runs_a_task_of_a_pulled_dataset(git_server, store, bwrap_ok, tmp_path, monkeypatch):
    """Runs in the real cache (so the task image's layers are shared) under a unique dataset name."""
    from ltenv.datasets import datasets_root

    name = f"test-{uuid.uuid4().hex[:12]}"
    reg = _registry(tmp_path / "reg.toml", git=git_server)
    reg.write_text(reg.read_text().replace('name = "harbor-git"', f'name = "{name}"'))
    monkeypatch.setenv("LTENV_DATASETS", str(reg))
    try:
        res = CliRunner().invoke(
            app, ["validate", "--dataset", f"{name}@1", "write-greeting", "--runs", "1", "--json"]
        )
        assert res.exit_code == 0, res.output
        (result,) = json.loads(res.stdout)
        assert result["name"] == "write-greeting" and result["valid"] is True
    finally:
        shutil.rmtree(datasets_root() / name, ignore_errors=True)
