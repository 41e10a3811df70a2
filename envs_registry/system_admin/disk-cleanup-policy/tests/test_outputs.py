"""Verifier for disk-cleanup-policy."""
import json
import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

SRV = "/app/srv"
MANIFEST = json.loads((Path(__file__).parent / "original_manifest.json").read_text())
CUTOFF = datetime(2024, 4, 1, tzinfo=timezone.utc).timestamp()


def _should_delete(path, meta):
    if not isinstance(meta, list):
        return False  # directories and symlinks are never deleted
    name = os.path.basename(path)
    if path.startswith(SRV + "/cache/") and name != ".keep":
        return True
    if path.startswith(SRV + "/logs/") and re.fullmatch(r".+\.log\.\d+(\.gz)?", name) and meta[1] < CUTOFF:
        return True
    return re.fullmatch(r"core(\.\d+)?", name) is not None


EXPECTED_DELETED = sorted((p for p, m in MANIFEST.items() if _should_delete(p, m)), key=lambda s: s.encode())


def _lines(path):
    p = Path(path)
    assert p.exists(), f"{path} missing"
    text = p.read_text()
    assert text.endswith("\n"), f"{path} must end with a newline"
    return text[:-1].split("\n")


def test_expected_set_sanity():
    # guards the rule implementation above against the hand-checked facts of the generated tree
    assert len(EXPECTED_DELETED) == 82
    for keep in ("/app/srv/logs/app.log.3.gz", "/app/srv/logs/app.log.old", "/app/srv/logs/core.log",
                 "/app/srv/uploads/tmp/core.dump", "/app/srv/cache/thumbnails/.keep"):
        assert keep not in EXPECTED_DELETED
    for gone in ("/app/srv/logs/app.log.4.gz", "/app/srv/logs/legacy app/legacy app.log.3",
                 "/app/srv/.trash/core.99", "/app/srv/app/core", "/app/srv/cache/render/.keep.bak"):
        assert gone in EXPECTED_DELETED


def test_filesystem_state():
    for path, meta in MANIFEST.items():
        if path in EXPECTED_DELETED:
            assert not os.path.lexists(path), f"{path} should have been deleted"
            continue
        assert os.path.lexists(path), f"{path} must not be deleted"
        if meta == "dir":
            assert os.path.isdir(path) and not os.path.islink(path), path
        elif isinstance(meta, str):
            assert os.path.islink(path) and "link:" + os.readlink(path) == meta, f"{path} symlink changed"
        else:
            st = os.lstat(path)
            assert os.path.isfile(path) and not os.path.islink(path), path
            assert [st.st_size, int(st.st_mtime)] == meta, f"{path} was modified"
    assert os.stat(SRV + "/backups/latest.sql.gz").st_ino == os.stat(SRV + "/backups/db-2024-05-20.sql.gz").st_ino


def test_nothing_added():
    now = set()
    for dp, ds, fs in os.walk(SRV):
        for n in ds + fs:
            now.add(os.path.join(dp, n))
    assert now == {p for p in MANIFEST if p not in EXPECTED_DELETED}


def test_deleted_files_list():
    assert _lines("/app/deleted_files.txt") == EXPECTED_DELETED


def test_freed_bytes():
    expected = sum(MANIFEST[p][0] for p in EXPECTED_DELETED)
    assert expected == 6172168
    assert _lines("/app/freed_bytes.txt") == [str(expected)]


def test_du_after():
    rows = []
    for name in os.listdir(SRV):
        full = os.path.join(SRV, name)
        if os.path.isdir(full) and not os.path.islink(full):
            out = subprocess.run(["du", "-sb", full], capture_output=True, text=True, check=True).stdout
            rows.append((int(out.split("\t")[0]), name))
    rows.sort(key=lambda r: (-r[0], r[1]))
    assert _lines("/app/du_after.txt") == [f"{b}\t{n}" for b, n in rows]
