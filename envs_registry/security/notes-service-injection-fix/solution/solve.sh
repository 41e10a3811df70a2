#!/bin/bash
# Reference fix for SEC-212: parameterised SQL, allow-listed ORDER BY, validated ids,
# and resolved-path containment checks for attachments.
set -euo pipefail
cd /app/notes_service

python3 - <<'PY'
import re
from pathlib import Path

p = Path("notesvc/db.py")
src = p.read_text()
start = src.index("def add_note(")
end = src.index("def owner_for_token(")
fixed = '''_ORDER_COLUMNS = ("id", "title", "created_at")


def _note_id(note_id):
    if isinstance(note_id, bool):
        raise ValueError("invalid note id")
    if isinstance(note_id, int):
        return note_id
    if isinstance(note_id, str) and note_id and all(c in "0123456789" for c in note_id):
        return int(note_id)
    raise ValueError("invalid note id")


def _like_escape(term):
    return term.replace("\\\\", "\\\\\\\\").replace("%", "\\\\%").replace("_", "\\\\_")


def add_note(conn, owner, title, body, created_at=None):
    """Store a note and return its id."""
    created_at = created_at or datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S")
    cur = conn.execute(
        "INSERT INTO notes (owner, title, body, created_at) VALUES (?, ?, ?, ?)",
        (owner, title, body, created_at),
    )
    conn.commit()
    return cur.lastrowid


def get_note(conn, owner, note_id):
    """Return the note as a dict, or None if it does not exist or belongs to someone else."""
    row = conn.execute(
        "SELECT id, owner, title, body, created_at FROM notes WHERE id = ? AND owner = ?",
        (_note_id(note_id), owner),
    ).fetchone()
    return dict(row) if row else None


def search_notes(conn, owner, term):
    """Notes of `owner` whose title or body contains `term` (case-insensitive), ordered by id."""
    pattern = "%" + _like_escape(term) + "%"
    sql = (
        "SELECT id, title FROM notes "
        "WHERE owner = ? AND (title LIKE ? ESCAPE '\\\\' OR body LIKE ? ESCAPE '\\\\') "
        "ORDER BY id"
    )
    return [dict(r) for r in conn.execute(sql, (owner, pattern, pattern)).fetchall()]


def list_notes(conn, owner, order_by="id"):
    """All notes of `owner` (id, title, created_at), sorted by the given column."""
    if order_by not in _ORDER_COLUMNS:
        raise ValueError(f"cannot order by {order_by!r}")
    sql = f"SELECT id, title, created_at FROM notes WHERE owner = ? ORDER BY {order_by}"
    return [dict(r) for r in conn.execute(sql, (owner,)).fetchall()]


def delete_note(conn, owner, note_id):
    """Delete one note of `owner`; return True if something was deleted."""
    cur = conn.execute("DELETE FROM notes WHERE id = ? AND owner = ?", (_note_id(note_id), owner))
    conn.commit()
    return cur.rowcount > 0


'''
p.write_text(src[:start] + fixed + src[end:])
PY

cat > notesvc/attachments.py <<'PY'
"""Attachment files. Each user has a folder attachments/<owner>/ that only they may read."""
import os

ATTACH_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attachments")


def _owner_dir(owner):
    if not isinstance(owner, str) or not owner or "/" in owner or "\0" in owner or owner in (".", ".."):
        raise PermissionError("invalid owner")
    root = os.path.realpath(ATTACH_ROOT)
    base = os.path.join(root, owner)
    if os.path.islink(base) or not os.path.isdir(base) or os.path.dirname(os.path.realpath(base)) != root:
        raise PermissionError("invalid owner")
    return os.path.realpath(base)


def attachment_path(owner, name):
    base = _owner_dir(owner)
    target = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([base, target]) != base or target == base:
        raise PermissionError("path escapes the owner's attachment folder")
    return target


def read_attachment(owner, name):
    """Return the bytes of attachment `name` of `owner`."""
    with open(attachment_path(owner, name), "rb") as fh:
        return fh.read()


def list_attachments(owner):
    base = _owner_dir(owner)
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), base))
    return sorted(out)
PY

python3 -m pytest -q -p no:cacheprovider tests
