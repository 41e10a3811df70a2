"""Attachment files. Each user has a folder attachments/<owner>/ that only they may read."""
import os

ATTACH_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attachments")


def attachment_path(owner, name):
    return os.path.join(ATTACH_ROOT, owner, name)


def read_attachment(owner, name):
    """Return the bytes of attachment `name` of `owner`."""
    with open(attachment_path(owner, name), "rb") as fh:
        return fh.read()


def list_attachments(owner):
    base = os.path.join(ATTACH_ROOT, owner)
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), base))
    return sorted(out)
