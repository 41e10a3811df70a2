"""Verifier for notes-service-injection-fix."""
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SVC = Path("/app/notes_service")
sys.path.insert(0, str(SVC))

from notesvc import attachments, db  # noqa: E402

TEAM_TESTS_SHA256 = "ba47c82c5786c0aae9fd991c927d8b63d9d8d0b078a8b5e19c93f4220abf69e6"
ATTACH = SVC / "attachments"


@pytest.fixture
def conn(tmp_path):
    c = db.connect(tmp_path / "v.db")
    db.init_db(c)
    return c


def _titles(rows):
    return [r["title"] for r in rows]


def _count(conn, table):
    return sqlite3.connect(conn.execute("PRAGMA database_list").fetchone()[2]).execute(
        f"SELECT count(*) FROM {table}").fetchone()[0]


def test_team_tests_unchanged_and_pass():
    data = (SVC / "tests/test_notes.py").read_bytes()
    assert hashlib.sha256(data).hexdigest() == TEAM_TESTS_SHA256, "tests/test_notes.py was modified"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=SVC, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_search_is_literal_and_scoped(conn):
    assert db.search_notes(conn, "alice' OR '1'='1", "") == []
    assert db.search_notes(conn, "nobody' OR owner LIKE '%", "a") == []
    assert db.search_notes(conn, "alice", "' OR '1'='1") == []
    assert db.search_notes(conn, "alice", "%') OR 1=1 --") == []
    assert _titles(db.search_notes(conn, "alice", "%")) == ["Promo copy"]
    assert _titles(db.search_notes(conn, "alice", "_")) == ["Naming"]
    assert _titles(db.search_notes(conn, "alice", "50% OFF")) == ["Promo copy"]
    assert _titles(db.search_notes(conn, "bob", "100%")) == ["Discount idea"]
    assert db.search_notes(conn, "alice", "5%f") == []
    assert db.search_notes(conn, "alice", "user_i_") == []
    assert _titles(db.search_notes(conn, "alice", "q2")) == ["Q2 planning"]
    assert [r["id"] for r in db.search_notes(conn, "alice", "")] == [1, 2, 3, 4]
    nid = db.add_note(conn, "carol", "paths", r"C:\temp\new", "2024-05-02T00:00:00")
    assert [r["id"] for r in db.search_notes(conn, "carol", "\\")] == [nid]
    assert [r["id"] for r in db.search_notes(conn, "carol", r"\t")] == [nid]
    assert db.search_notes(conn, "carol", r"\%") == []


def test_add_note_stores_payloads_verbatim(conn):
    before = _count(conn, "notes")
    payloads = [
        ("O'Brien's notes", "it's fine"),
        ("x'); DELETE FROM api_tokens; --", "body"),
        ("t", "b'); DROP TABLE notes; --"),
        ("quote \" and ; and -- and /* */", "multi\nline"),
    ]
    ids = [db.add_note(conn, "carol", t, b, "2024-05-03T00:00:00") for t, b in payloads]
    assert _count(conn, "notes") == before + len(payloads)
    assert _count(conn, "api_tokens") == 2
    for nid, (t, b) in zip(ids, payloads):
        note = db.get_note(conn, "carol", nid)
        assert note["title"] == t and note["body"] == b and note["owner"] == "carol"
    evil_owner = "dave', 'x', 'y', 'z'); --"
    nid = db.add_note(conn, evil_owner, "t", "b", "2024-05-03T00:00:00")
    assert db.get_note(conn, evil_owner, nid)["owner"] == evil_owner


def test_get_and_delete_validate_ids(conn):
    assert db.get_note(conn, "alice", "1")["title"] == "Q2 planning"
    assert db.get_note(conn, "alice", 1)["title"] == "Q2 planning"
    assert db.get_note(conn, "bob", 1) is None
    assert db.get_note(conn, "x' OR '1'='1", 1) is None
    assert db.get_note(conn, "bob' --", 5) is None
    for bad in ("1 OR 1=1", "0 UNION SELECT 1,2,3,4,5", "1;", " 1", "1.0", "-1", "0x1", "", "\u0661"):
        with pytest.raises(ValueError):
            db.get_note(conn, "alice", bad)
        with pytest.raises(ValueError):
            db.delete_note(conn, "bob", bad)
    assert db.delete_note(conn, "bob", 1) is False
    assert db.delete_note(conn, "bob' OR '1'='1", 2) is False
    assert _count(conn, "notes") == 7
    assert db.delete_note(conn, "bob", "6") is True
    assert _count(conn, "notes") == 6


def test_list_notes_order_by_allowlist(conn):
    assert _titles(db.list_notes(conn, "alice", "title")) == ["Groceries", "Naming", "Promo copy", "Q2 planning"]
    assert [r["id"] for r in db.list_notes(conn, "bob", "id")] == [5, 6, 7]
    assert [r["id"] for r in db.list_notes(conn, "bob", "created_at")] == [5, 6, 7]
    assert db.list_notes(conn, "alice' OR '1'='1", "id") == []
    for bad in ("title DESC", "id; DROP TABLE notes", "(SELECT token FROM api_tokens)", "", "ID", "owner"):
        with pytest.raises(ValueError):
            db.list_notes(conn, "alice", bad)
    assert _count(conn, "notes") == 7


def test_attachments_allowed_paths():
    assert attachments.read_attachment("alice", "reports/q2.txt").startswith(b"Q2 capacity report")
    assert attachments.read_attachment("alice", "latest-report.txt").startswith(b"Q2 capacity report")
    assert attachments.read_attachment("alice", "reports/../plan.txt").startswith(b"alice private plan")
    assert attachments.read_attachment("bob", "./todo.md").startswith(b"bob todo")
    with pytest.raises(FileNotFoundError):
        attachments.read_attachment("bob", "missing.txt")
    assert attachments.list_attachments("carol") == ["host.txt", "readme.txt"]


def test_attachments_traversal_blocked():
    cases = [
        ("bob", "../alice/plan.txt"),
        ("bob", "shared-plan.txt"),
        ("carol", "host.txt"),
        ("alice", "/etc/hostname"),
        ("alice", "reports/../../bob/todo.md"),
        ("alice", "../../notesvc/db.py"),
        ("alice", "../../../../../../etc/hostname"),
        ("..", "notes_service/notesvc/db.py"),
        ("../..", "etc/hostname"),
        ("/", "etc/hostname"),
        (".", "alice/plan.txt"),
        ("", "alice/plan.txt"),
        ("alice/reports", "q2.txt"),
        ("mallory", "x"),
    ]
    for owner, name in cases:
        with pytest.raises(PermissionError):
            attachments.read_attachment(owner, name)
    for owner in ("..", "../..", "/", ".", "", "alice/reports", "mallory"):
        with pytest.raises(PermissionError):
            attachments.list_attachments(owner)


def test_attachments_tree_unchanged():
    found = {}
    for dirpath, dirs, files in os.walk(ATTACH):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(ATTACH))
            found[rel] = ("link:" + os.readlink(p)) if p.is_symlink() else ("dir" if p.is_dir() else
                                                                            hashlib.sha256(p.read_bytes()).hexdigest()[:16])
    assert found["alice/latest-report.txt"] == "link:reports/q2.txt"
    assert found["bob/shared-plan.txt"] == "link:../alice/plan.txt"
    assert found["carol/host.txt"] == "link:/etc/hostname"
    assert sorted(found) == sorted([
        "alice", "bob", "carol", "alice/reports", "alice/reports/q1.txt", "alice/reports/q2.txt",
        "alice/plan.txt", "alice/latest-report.txt", "bob/todo.md", "bob/shared-plan.txt",
        "carol/readme.txt", "carol/host.txt"])
