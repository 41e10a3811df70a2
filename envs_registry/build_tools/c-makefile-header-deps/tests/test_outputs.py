import hashlib
import os
import re
import shutil
import subprocess

import pytest

SRC = "/app/wordstat"

TEXT = (
    "The quick brown Fox -- the QUICK brown fox!\n"
    "Pneumonoultramicroscopicsilicovolcanoconiosis is long; so is "
    "Supercalifragilisticexpialidociousnessxyz.\n"
    "don't stop: it's 2024, a year of ABC123def and caf\xc3\xa9s.\n"
    "\n  tabs\tand\tspaces   everywhere zebra\n"
)


def run(cmd, cwd, check=True):
    res = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture()
def tree(tmp_path):
    dst = tmp_path / "ws"
    shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns("build"))
    return str(dst)


def expected_output(raw):
    words = [w.lower()[:32] for w in re.findall(rb"[A-Za-z]+", raw)]
    n = len(words)
    total = float(sum(len(w) for w in words))
    sq = float(sum(len(w) * len(w) for w in words))
    mean = total / n
    std = (sq / n - mean * mean) ** 0.5
    longest = b""
    for w in words:
        if len(w) > len(longest):
            longest = w
    return (f"words: {n}\nunique: {len(set(words))}\nmean_length: {mean:.3f}\n"
            f"stddev_length: {std:.3f}\nlongest: {longest.decode()}\n")


def test_fresh_build_in_place():
    binary = os.path.join(SRC, "build", "wordstat")
    assert os.access(binary, os.X_OK)
    raw = TEXT.encode("latin-1")
    out = subprocess.run([binary], input=raw, capture_output=True, timeout=10).stdout.decode()
    assert out == expected_output(raw)


def test_clean_and_parallel_build(tree):
    run("make clean", tree)
    run("make -j4", tree)
    assert os.access(os.path.join(tree, "build", "wordstat"), os.X_OK)
    for name in ("main", "tokenize", "stats"):
        assert os.path.isfile(os.path.join(tree, "build", name + ".o"))
    raw = b"Alpha beta, alpha GAMMA gamma gamma delta's"
    out = subprocess.run([os.path.join(tree, "build", "wordstat")], input=raw, capture_output=True).stdout.decode()
    assert out == expected_output(raw)
    assert run("make -q", tree, check=False).returncode == 0


def set_times(tree, stamp_src, stamp_out):
    for d, stamp in (("src", stamp_src), ("include", stamp_src), ("build", stamp_out)):
        for name in os.listdir(os.path.join(tree, d)):
            os.utime(os.path.join(tree, d, name), (stamp, stamp))
    os.utime(os.path.join(tree, "Makefile"), (stamp_src, stamp_src))


@pytest.mark.parametrize("header,rebuilt", [
    ("stats.h", {"main", "stats"}),
    ("tokenize.h", {"main", "tokenize"}),
    ("config.h", {"main", "stats", "tokenize"}),
])
def test_header_dependencies(tree, header, rebuilt):
    run("make", tree)
    T_SRC, T_OUT, T_NEW = 978307200, 1009843200, 1041379200  # 2001, 2002, 2003
    set_times(tree, T_SRC, T_OUT)
    assert run("make -q", tree, check=False).returncode == 0, "tree should be up to date"
    os.utime(os.path.join(tree, "include", header), (T_NEW, T_NEW))
    assert run("make -q", tree, check=False).returncode != 0, f"touching {header} must make the build stale"
    run("make", tree)
    changed = {n for n in ("main", "tokenize", "stats")
               if os.stat(os.path.join(tree, "build", n + ".o")).st_mtime > T_NEW}
    assert changed == rebuilt
    assert os.stat(os.path.join(tree, "build", "wordstat")).st_mtime > T_NEW
    assert run("make -q", tree, check=False).returncode == 0


def test_install(tree, tmp_path):
    prefix = tmp_path / "inst"
    run(f"make install PREFIX={prefix}", tree)
    exe = prefix / "bin" / "wordstat"
    assert exe.is_file()
    assert (exe.stat().st_mode & 0o777) == 0o755
    assert os.listdir(prefix) == ["bin"]
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    assert out == "wordstat 1.4.0\n"


def test_clean_removes_build_only(tree):
    run("make", tree)
    before = sorted(p for p in os.listdir(tree) if p != "build")
    run("make clean", tree)
    assert not os.path.exists(os.path.join(tree, "build")) or os.listdir(os.path.join(tree, "build")) == []
    assert sorted(p for p in os.listdir(tree) if p != "build") == before
    assert sorted(os.listdir(os.path.join(tree, "src"))) == ["main.c", "stats.c", "tokenize.c"]


def test_sources_unchanged():
    digest = hashlib.sha256()
    for d in ("src", "include"):
        for name in sorted(os.listdir(os.path.join(SRC, d))):
            digest.update(name.encode())
            digest.update(open(os.path.join(SRC, d, name), "rb").read())
    assert digest.hexdigest() == "1b63092db4a825730de3fe4e134bc2eff2a63ef62039fb50ab3b8aba399de5cd"
