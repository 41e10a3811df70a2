"""Verifier for backup-rotation-script-fix."""
import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = "/app/backup/backup.sh"
BACKUPS = Path("/app/backups")


def _members(archive):
    with tarfile.open(archive, "r:gz") as tf:
        names = tf.getnames()
        files = {m.name for m in tf.getmembers() if m.isfile()}
    return names, files


def _check_manifest(dest):
    lines = (Path(dest) / "SHA256SUMS").read_text().splitlines()
    expected = sorted((p.name for p in Path(dest).iterdir()
                       if p.is_file() and p.name.endswith(".tar.gz") and not p.name.startswith(".")),
                      key=lambda s: s.encode())
    assert [l.split("  ", 1)[1] for l in lines] == expected
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((Path(dest) / name).read_bytes()).hexdigest() == digest, name


def _run(env_extra, cwd="/"):
    env = dict(os.environ, **env_extra)
    return subprocess.run(["bash", SCRIPT], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


# ---------- state left by the agent's real run for 2024-06-01 ----------

def test_real_run_backup_dir():
    assert sorted(p.name for p in BACKUPS.iterdir() if not p.name.startswith(".")) == sorted([
        "Client Portal_2024-05-31.tar.gz", "Client Portal_2024-06-01.tar.gz", "README.txt", "SHA256SUMS",
        "api_2024-05-31.tar.gz", "api_2024-06-01.tar.gz", "web_2024-05-15.tar.gz.partial",
        "web_2024-05-30.tar.gz", "web_2024-05-31.tar.gz", "web_2024-06-01.tar.gz",
        "web_admin_2024-05-30.tar.gz", "web_admin_2024-05-31.tar.gz", "web_admin_2024-06-01.tar.gz",
    ])
    _check_manifest(BACKUPS)


def test_real_run_archive_contents():
    names, files = _members(BACKUPS / "web_2024-06-01.tar.gz")
    assert files == {"web/index.html", "web/src/app.js", "web/src/util/format.js", "web/.env.example"}
    assert all(n == "web" or n.startswith("web/") for n in names)
    assert not any("node_modules" in n or ".cache" in n for n in names)
    names, files = _members(BACKUPS / "api_2024-06-01.tar.gz")
    assert files == {"api/main.py", "api/requirements.txt", "api/tmp/keep-me.txt", "api/data/seed.tmp.json",
                     "api/plugins/payments/handler.py"}
    assert not any("node_modules" in n or ".cache" in n for n in names)
    _, files = _members(BACKUPS / "Client Portal_2024-06-01.tar.gz")
    assert files == {"Client Portal/docs/Read Me.txt", "Client Portal/app/main.ts"}
    _, files = _members(BACKUPS / "web_admin_2024-06-01.tar.gz")
    assert files == {"web_admin/admin.html", "web_admin/config/settings.json"}


# ---------- the script itself, exercised in a scratch area ----------

@pytest.fixture
def sandbox(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest with space"
    def mk(rel, text="x\n"):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    mk("x/a.txt"); mk("x/.hidden.cfg"); mk("x/deep/node_modules/m.js"); mk("x/deep/b.tmp"); mk("x/deep/c.txt")
    mk("x_y/y.txt"); mk("a b/c d/e f.txt"); mk("a b/.cache/z"); mk(".secret/s.txt"); mk("file.txt")
    (src / "link").symlink_to("x")
    dest.mkdir()
    # x archives: mtimes deliberately in reverse order of the dates
    for i, day in enumerate(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]):
        f = dest / f"x_{day}.tar.gz"
        f.write_bytes(b"old")
        os.utime(f, (1_800_000_000 - i * 1000, 1_800_000_000 - i * 1000))
    for day in ["2024-01-01", "2024-01-02", "2024-01-03"]:
        (dest / f"x_y_{day}.tar.gz").write_bytes(b"old")
    (dest / "x_2024-01-02.tar.gz.bak").write_bytes(b"keep")
    (dest / "x_latest.tar.gz").write_bytes(b"keep")
    (dest / "notes.txt").write_text("keep")
    return src, dest


def test_script_rotation_and_selection(sandbox, tmp_path):
    src, dest = sandbox
    r = _run({"SRC_DIR": str(src), "DEST_DIR": str(dest), "KEEP": "2", "BACKUP_DATE": "2024-01-06"}, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted([
        "SHA256SUMS", "a b_2024-01-06.tar.gz", "notes.txt", "x_2024-01-02.tar.gz.bak", "x_2024-01-05.tar.gz",
        "x_2024-01-06.tar.gz", "x_latest.tar.gz", "x_y_2024-01-03.tar.gz", "x_y_2024-01-06.tar.gz"])
    _check_manifest(dest)
    _, files = _members(dest / "x_2024-01-06.tar.gz")
    assert files == {"x/a.txt", "x/.hidden.cfg", "x/deep/c.txt"}
    _, files = _members(dest / "a b_2024-01-06.tar.gz")
    assert files == {"a b/c d/e f.txt"}


def test_script_rerun_same_day_replaces(sandbox):
    src, dest = sandbox
    env = {"SRC_DIR": str(src), "DEST_DIR": str(dest), "KEEP": "3", "BACKUP_DATE": "2024-01-06"}
    assert _run(env).returncode == 0
    (src / "x" / "new.txt").write_text("added later\n")
    r = _run(env)
    assert r.returncode == 0, r.stderr
    x_archives = sorted(p.name for p in dest.glob("x_2024-*.tar.gz"))
    assert x_archives == ["x_2024-01-04.tar.gz", "x_2024-01-05.tar.gz", "x_2024-01-06.tar.gz"]
    assert "x/new.txt" in _members(dest / "x_2024-01-06.tar.gz")[1]
    _check_manifest(dest)


def test_script_default_keep_and_missing_source(sandbox):
    src, dest = sandbox
    r = _run({"SRC_DIR": str(src), "DEST_DIR": str(dest), "BACKUP_DATE": "2024-01-07"})
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.glob("x_2024-*.tar.gz")) == [
        "x_2024-01-04.tar.gz", "x_2024-01-05.tar.gz", "x_2024-01-07.tar.gz"]
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    r = _run({"SRC_DIR": str(src / "nope"), "DEST_DIR": str(dest), "BACKUP_DATE": "2024-01-08"})
    assert r.returncode != 0
    assert r.stderr.strip() != ""
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
