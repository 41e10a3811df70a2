"""Storage layer for notes (SQLite)."""
import json
import sqlite3
from datetime import datetime
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def connect(path):
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    return conn


def init_db(conn, seed=True):
    """Create the schema and (optionally) load the demo data."""
    conn.executescript((_HERE / "schema.sql").read_text())
    if seed:
        data = json.loads((_HERE / "seed.json").read_text())
        for owner, token in data["tokens"].items():
            conn.execute("INSERT OR REPLACE INTO api_tokens VALUES (?, ?)", (owner, token))
        for owner, title, body, created in data["notes"]:
            conn.execute(
                "INSERT INTO notes (owner, title, body, created_at) VALUES (?, ?, ?, ?)",
                (owner, title, body, created),
            )
    conn.commit()


def add_note(conn, owner, title, body, created_at=None):
    """Store a note and return its id."""
    created_at = created_at or datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S")
    conn.executescript(
        f"INSERT INTO notes (owner, title, body, created_at) "
        f"VALUES ('{owner}', '{title}', '{body}', '{created_at}');"
    )
    conn.commit()
    return conn.execute("SELECT max(id) FROM notes").fetchone()[0]


def get_note(conn, owner, note_id):
    """Return the note as a dict, or None if it does not exist or belongs to someone else."""
    row = conn.execute(
        f"SELECT id, owner, title, body, created_at FROM notes WHERE id = {note_id} AND owner = '{owner}'"
    ).fetchone()
    return dict(row) if row else None


def search_notes(conn, owner, term):
    """Notes of `owner` whose title or body contains `term` (case-insensitive), ordered by id."""
    sql = (
        "SELECT id, title FROM notes "
        f"WHERE owner = '{owner}' AND (title LIKE '%{term}%' OR body LIKE '%{term}%') "
        "ORDER BY id"
    )
    return [dict(r) for r in conn.execute(sql).fetchall()]


def list_notes(conn, owner, order_by="id"):
    """All notes of `owner` (id, title, created_at), sorted by the given column."""
    sql = f"SELECT id, title, created_at FROM notes WHERE owner = '{owner}' ORDER BY {order_by}"
    return [dict(r) for r in conn.execute(sql).fetchall()]


def delete_note(conn, owner, note_id):
    """Delete one note of `owner`; return True if something was deleted."""
    cur = conn.execute(f"DELETE FROM notes WHERE id = {note_id} AND owner = '{owner}'")
    conn.commit()
    return cur.rowcount > 0


def owner_for_token(conn, token):
    row = conn.execute("SELECT owner FROM api_tokens WHERE token = ?", (token,)).fetchone()
    return row[0] if row else None
