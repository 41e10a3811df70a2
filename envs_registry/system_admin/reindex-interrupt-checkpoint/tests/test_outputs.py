import hashlib
import json
import os

STATE = "/var/lib/reindex"


def digest(n):
    return hashlib.sha256(f"catalogue-batch-{n}".encode()).hexdigest()[:16]


def load_checkpoint():
    with open(os.path.join(STATE, "checkpoint.json")) as f:
        return json.load(f)


def test_checkpoint_written_by_terminal_interrupt():
    cp = load_checkpoint()
    assert cp["stopped_by"] == "terminal-interrupt"
    assert isinstance(cp["last_batch"], int) and cp["last_batch"] >= 5
    assert cp["digest"] == digest(cp["last_batch"])


def test_lock_removed():
    assert not os.path.exists(os.path.join(STATE, "reindex.lock"))


def test_partial_index_matches_checkpoint():
    cp = load_checkpoint()
    with open(os.path.join(STATE, "index.part")) as f:
        lines = f.read().splitlines()
    assert lines == [f"{n} {digest(n)}" for n in range(1, cp["last_batch"] + 1)]


def test_no_reindex_left_running():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        assert not any(a.endswith(b"/reindex") or a == b"reindex" for a in argv[:2]), argv
