import hashlib
import os
import shutil
import subprocess

import pytest

SRC = "/app/calcvm"
OBJS = ("ops_table", "main", "vm", "asm")


def run(cmd, cwd, check=True):
    res = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture()
def tree(tmp_path):
    dst = tmp_path / "calcvm"
    shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns("build", "gen", "calcvm"))
    return str(dst)


def check_binary(path):
    out = subprocess.run([path, "examples/countdown.asm"], cwd=os.path.dirname(path), capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0 and out.stdout == "5\n4\n3\n2\n1\n"
    out = subprocess.run([path, "examples/arith.asm"], cwd=os.path.dirname(path), capture_output=True,
                         text=True, timeout=10)
    assert out.stdout == "44\n-4\n"


def test_built_binary_in_place():
    check_binary(os.path.join(SRC, "calcvm"))


@pytest.mark.parametrize("target", ["build/vm.o", "build/asm.o", "build/main.o", "build/ops_table.o"])
def test_single_object_from_clean(tree, target):
    run(f"make {target}", tree)
    assert os.path.isfile(os.path.join(tree, target))


def test_parallel_builds_from_clean(tree):
    for _ in range(3):
        run("make clean", tree)
        assert not os.path.exists(os.path.join(tree, "gen"))
        assert not os.path.exists(os.path.join(tree, "build"))
        assert not os.path.exists(os.path.join(tree, "calcvm"))
        run("make -j8", tree)
        check_binary(os.path.join(tree, "calcvm"))
        assert run("make -q", tree, check=False).returncode == 0


def test_generator_runs_once(tree):
    for cmd in ("make -n", "make -n -j8", "make -n build/vm.o build/ops_table.o"):
        out = run(cmd, tree).stdout
        assert out.count("genops.sh") == 1, (cmd, out)


def test_ops_def_change_rebuilds_dependents_only(tree):
    run("make -j8", tree)
    t_src, t_gen, t_out, t_new = 978307200, 990000000, 1009843200, 1041379200
    for root, _, files in os.walk(tree):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, tree)
            stamp = t_src
            if rel.startswith("gen/"):
                stamp = t_gen
            elif rel.startswith("build/") or rel == "calcvm":
                stamp = t_out
            os.utime(path, (stamp, stamp))
    assert run("make -q", tree, check=False).returncode == 0
    os.utime(os.path.join(tree, "ops.def"), (t_new, t_new))
    assert run("make -q", tree, check=False).returncode != 0
    out = run("make", tree).stdout
    assert out.count("genops.sh") == 1
    for name in ("ops.h", "ops_table.c"):
        assert os.stat(os.path.join(tree, "gen", name)).st_mtime > t_new
    rebuilt = {o for o in OBJS if os.stat(os.path.join(tree, "build", o + ".o")).st_mtime > t_new}
    assert rebuilt == {"ops_table", "vm", "asm"}
    assert os.stat(os.path.join(tree, "calcvm")).st_mtime > t_new
    check_binary(os.path.join(tree, "calcvm"))


def test_inputs_unchanged():
    digest = hashlib.sha256()
    for rel in ("ops.def", "tools/genops.sh", "include/asm.h", "include/program.h", "include/vm.h",
                "src/asm.c", "src/main.c", "src/vm.c", "examples/countdown.asm", "examples/arith.asm"):
        digest.update(rel.encode())
        digest.update(open(os.path.join(SRC, rel), "rb").read())
    assert digest.hexdigest() == "114a7838b82add3341191a346432835600e04c660553a719d9a9be3a7c5164e1"
