import hashlib
import os
import re
import subprocess

import pytest

SCRIPT = "/app/scripts/prune_backups.sh"

BACKUPS = {
    "db": ["20240301-0200", "20240302-0200", "20240303-0200", "20240229-2330", "20231231-2359"],
    "db_replica": ["20240301-0300", "20240302-0300", "20240228-0300", "20240303-0300"],
    "web assets": ["20240110-0100", "20240111-0100", "20240112-0100", "20240109-0100", "20240113-0100"],
    "-tmp cleanup": ["20240201-0000", "20240202-0000", "20240203-0000", "20240131-2300"],
    "logs [eu] *": ["20240105-1200", "20240105-1130", "20240105-1300", "20240104-2359"],
    "solo": ["20240101-0000"],
}
OTHERS = ["notes.tar.gz", "db_20240301-0200.tar.gz.partial", "db_2024031-0200.tar.gz", "db-20240101-0000.tar.gz",
          "manifest.txt", "_20240101-0000.tar.gz", "db_20240301-0200.tgz"]


def make_fixture(root):
    root.mkdir()
    names = []
    for job, stamps in BACKUPS.items():
        for i, stamp in enumerate(stamps):
            names.append(f"{job}_{stamp}.tar.gz")
    names += OTHERS
    for i, name in enumerate(sorted(names)):
        path = root / name
        path.write_text(name)
        # modification times deliberately unrelated to the timestamps in the names
        t = 1700000000 + ((i * 7919) % 97) * 3600
        os.utime(path, (t, t))
    sub = root / "archive"
    sub.mkdir()
    (sub / "db_20200101-0000.tar.gz").write_text("old")
    return set(names)


def expected_victims(names, keep):
    rx = re.compile(r"^(.+)_(\d{8}-\d{4})\.tar\.gz$")
    jobs = {}
    for n in names:
        m = rx.match(n)
        if m:
            jobs.setdefault(m.group(1), []).append((m.group(2), n))
    victims = []
    for items in jobs.values():
        items.sort(reverse=True)
        victims += [n for _, n in items[keep:]]
    return sorted(victims, key=lambda s: s.encode())


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30)


def listing(root):
    return set(os.listdir(root))


@pytest.mark.parametrize("keep", [3, 1])
def test_prune(tmp_path, keep):
    root = tmp_path / "vol"
    names = make_fixture(root)
    res = run(str(root), str(keep))
    assert res.returncode == 0, res.stderr
    victims = expected_victims(names, keep)
    assert res.stdout == "".join(f"deleted {v}\n" for v in victims)
    assert listing(root) == (names - set(victims)) | {"archive"}
    assert os.listdir(root / "archive") == ["db_20200101-0000.tar.gz"]


def test_prune_expected_set(tmp_path):
    root = tmp_path / "vol"
    make_fixture(root)
    res = run(str(root), "3")
    assert res.stdout.splitlines() == [
        "deleted -tmp cleanup_20240131-2300.tar.gz",
        "deleted db_20231231-2359.tar.gz",
        "deleted db_20240229-2330.tar.gz",
        "deleted db_replica_20240228-0300.tar.gz",
        "deleted logs [eu] *_20240104-2359.tar.gz",
        "deleted web assets_20240109-0100.tar.gz",
        "deleted web assets_20240110-0100.tar.gz",
    ]


def test_dry_run_deletes_nothing(tmp_path):
    root = tmp_path / "vol"
    names = make_fixture(root)
    res = run("--dry-run", str(root), "2")
    assert res.returncode == 0
    assert res.stdout == "".join(f"would delete {v}\n" for v in expected_victims(names, 2))
    assert listing(root) == names | {"archive"}


def test_keep_larger_than_count(tmp_path):
    root = tmp_path / "vol"
    names = make_fixture(root)
    res = run(str(root), "10")
    assert res.returncode == 0 and res.stdout == ""
    assert listing(root) == names | {"archive"}


@pytest.mark.parametrize("args", [["VOL", "0"], ["VOL", "abc"], ["VOL", "-3"], ["VOL"], ["VOL", "2", "extra"],
                                  ["MISSING", "2"], ["--dry-run", "VOL"]])
def test_invalid_arguments(tmp_path, args):
    root = tmp_path / "vol"
    names = make_fixture(root)
    args = [str(root) if a == "VOL" else str(tmp_path / "nope") if a == "MISSING" else a for a in args]
    res = run(*args)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.strip() != ""
    assert listing(root) == names | {"archive"}


def test_sample_untouched():
    digest = hashlib.sha256()
    for name in sorted(os.listdir("/app/backups-sample")):
        digest.update(name.encode())
    assert digest.hexdigest() == "523aea032abee15b392f8225d189c790c8a88a0ab8bbd534d1780a40b2f0e180"
