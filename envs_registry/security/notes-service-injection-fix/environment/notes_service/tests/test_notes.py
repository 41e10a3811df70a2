"""Happy-path tests kept by the team (run: python3 -m pytest tests)."""
import pytest

from notesvc import attachments, db


@pytest.fixture
def conn(tmp_path):
    c = db.connect(tmp_path / "t.db")
    db.init_db(c)
    return c


def test_search_is_case_insensitive(conn):
    assert [n["title"] for n in db.search_notes(conn, "alice", "MEETING")] == ["Q2 planning"]


def test_search_only_own_notes(conn):
    assert [n["title"] for n in db.search_notes(conn, "bob", "meeting")] == ["Incident 4411"]


def test_add_and_get(conn):
    nid = db.add_note(conn, "bob", "Lunch", "sushi on thursday", "2024-05-01T12:00:00")
    note = db.get_note(conn, "bob", nid)
    assert note["title"] == "Lunch" and note["created_at"] == "2024-05-01T12:00:00"
    assert db.get_note(conn, "alice", nid) is None


def test_list_order(conn):
    assert [n["title"] for n in db.list_notes(conn, "alice", "title")] == [
        "Groceries", "Naming", "Promo copy", "Q2 planning"]


def test_delete(conn):
    nid = db.add_note(conn, "alice", "tmp", "x")
    assert db.delete_note(conn, "alice", nid) is True
    assert db.get_note(conn, "alice", nid) is None


def test_read_attachment():
    assert attachments.read_attachment("alice", "reports/q2.txt").startswith(b"Q2 capacity report")
