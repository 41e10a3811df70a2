import hashlib
import os
import random
import shutil
import subprocess

import pytest

SRC = "/app/ringbuf"
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="halt_on_error=1")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = tmp_path_factory.mktemp("drv")
    exe = str(d / "driver")
    res = subprocess.run(["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-g", "-O1",
                          "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-Wall", "-Werror",
                          "-I", SRC, "-o", exe, os.path.join(HERE, "driver.c"), os.path.join(SRC, "ringbuf.c")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


class Model:
    def __init__(self, cap):
        self.cap, self.q = cap, bytearray()

    def run(self, op, arg):
        if op == "W":
            n = min(len(arg), self.cap - len(self.q))
            self.q += arg[:n]
            return f"W {n}"
        if op == "O":
            before = len(self.q) + len(arg)
            self.q += arg
            dropped = max(0, before - self.cap)
            del self.q[:dropped]
            return f"O {dropped}"
        if op in "RP":
            chunk = bytes(self.q[:arg])
            if op == "R":
                del self.q[:arg]
            return f"{op} {len(chunk)} {chunk.hex() or '-'}"
        if op == "S":
            n = min(arg, len(self.q))
            del self.q[:n]
            return f"S {n}"
        if op == "F":
            return f"F {self.q.find(bytes([arg]))}"
        return f"L {len(self.q)} {self.cap - len(self.q)}"


def script(seed, cap, steps):
    rng = random.Random(seed)
    ops = []
    for _ in range(steps):
        op = rng.choice("WWOORRPSFL")
        if op in "WO":
            n = rng.choice([0, 1, 2, rng.randint(0, cap), rng.randint(0, 2 * cap + 2)])
            ops.append((op, bytes(rng.randrange(256) for _ in range(n))))
        elif op in "RPS":
            ops.append((op, rng.choice([0, 1, rng.randint(0, cap + 3)])))
        elif op == "F":
            ops.append((op, rng.choice([rng.randrange(256), rng.randrange(4)])))
        else:
            ops.append((op, None))
    return ops


def run_case(driver, seed, cap, steps=1500):
    ops = script(seed, cap, steps)
    lines = []
    for op, arg in ops:
        if op in "WO":
            lines.append(f"{op} {arg.hex() or '-'}")
        elif op == "L":
            lines.append("L")
        else:
            lines.append(f"{op} {arg}")
    res = subprocess.run([driver, str(cap)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         timeout=60, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    model = Model(cap)
    expected = [model.run(op, arg) for op, arg in ops]
    got = res.stdout.splitlines()
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"step {i}: {lines[i][:80]!r}: got {g[:80]!r}, expected {e[:80]!r}"
    assert len(got) == len(expected)


@pytest.mark.parametrize("cap", [1, 2, 3, 7, 16, 61])
def test_randomized_against_model(driver, cap):
    for seed in range(4):
        run_case(driver, 1000 * cap + seed, cap)


def test_wraparound_write_and_find(driver):
    # deterministic scenario from the issue: write, consume, write across the end of the storage
    ops = "W 0102030405\nR 4\nW 060708090a0b\nL\nF 10\nF 5\nF 99\nP 7\nR 7\nL\n"
    res = subprocess.run([driver, "8"], input=ops, capture_output=True, text=True, timeout=30, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == ["W 5", "R 4 01020304", "W 6", "L 7 1", "F 5", "F 0", "F -1",
                                       "P 7 05060708090a0b", "R 7 05060708090a0b", "L 0 8"]


def test_overwrite_keeps_newest(driver):
    ops = "W 616263\nO 3132333435363738393a\nR 10\nW 7a\nO 41424344\nR 10\n"
    res = subprocess.run([driver, "4"], input=ops, capture_output=True, text=True, timeout=30, env=ENV)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == ["W 3", "O 9", "R 4 3738393a", "W 1", "O 1", "R 4 41424344"]


def test_make_check_still_passes(tmp_path):
    work = tmp_path / "rb"
    shutil.copytree(SRC, work)
    subprocess.run(["make", "clean"], cwd=work, capture_output=True)
    res = subprocess.run(["make", "check"], cwd=work, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "test_basic: OK" in res.stdout


def test_header_unchanged():
    digest = hashlib.sha256(open(os.path.join(SRC, "ringbuf.h"), "rb").read()).hexdigest()
    assert digest == "8bb4df86620339ef7bdc329a730677ea8206f543955644b8e1702176ad370d6c"
