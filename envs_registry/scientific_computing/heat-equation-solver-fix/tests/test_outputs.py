import hashlib
import math
import os
import shutil
import subprocess

import numpy as np

HEAT = "/app/heat"
BUILD_COPY = "/tmp/heat_verify"
ROD_HASH = "af2b2fb5ad6cd8cf643f9e2c82bcefb7598ec3a08b47db885d142352be4f537c"

ROD = dict(length=1.0, nx=51, alpha=0.5, dt=0.0001, t_end=0.3, left=20.0, right=80.0, amp=15.0)
HIDDEN = [
    # t_end/dt is just below an integer in floating point for the first two
    dict(length=2.0, nx=41, alpha=0.8, dt=0.0002, t_end=0.6, left=10.0, right=-5.0, amp=3.0),
    dict(length=1.0, nx=11, alpha=1.0, dt=0.001, t_end=0.7, left=0.0, right=100.0, amp=0.0),
    dict(length=0.5, nx=101, alpha=0.001, dt=0.01, t_end=1.1, left=-3.5, right=7.25, amp=-12.0),
]


def reference(p):
    nx = p["nx"]
    dx = p["length"] / (nx - 1)
    x = np.arange(nx) * dx
    u = p["left"] + (p["right"] - p["left"]) * x / p["length"] + p["amp"] * np.sin(math.pi * x / p["length"])
    u[0], u[-1] = p["left"], p["right"]
    r = p["alpha"] * p["dt"] / dx ** 2
    steps = int(round(p["t_end"] / p["dt"]))
    for _ in range(steps):
        u[1:-1] = u[1:-1] + r * (u[:-2] - 2.0 * u[1:-1] + u[2:])
    return steps, x, u


def read_csv(path):
    with open(path) as f:
        lines = [l.strip() for l in f.read().strip().splitlines()]
    assert lines[0] == "x,u", lines[0]
    rows = [tuple(float(v) for v in l.split(",")) for l in lines[1:]]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def write_ini(path, p):
    with open(path, "w") as f:
        f.write("[rod]\n")
        for k, v in p.items():
            f.write(f"{k} = {v}\n")


def build():
    shutil.rmtree(BUILD_COPY, ignore_errors=True)
    shutil.copytree(HEAT, BUILD_COPY, ignore=shutil.ignore_patterns("out"))
    res = subprocess.run("make clean && make", shell=True, cwd=BUILD_COPY, capture_output=True, text=True,
                         timeout=120)
    return res


def test_rod_params_unchanged():
    with open(os.path.join(HEAT, "params/rod.ini"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == ROD_HASH


def test_clean_build():
    res = build()
    assert res.returncode == 0, res.stdout + res.stderr
    assert os.access(os.path.join(BUILD_COPY, "build/heat"), os.X_OK)


def test_rod_profile_matches_reference():
    x, u = read_csv(os.path.join(HEAT, "out/rod_profile.csv"))
    _, xr, ur = reference(ROD)
    assert len(u) == ROD["nx"]
    assert np.max(np.abs(x - xr)) < 1e-6
    assert u[0] == ROD["left"] and u[-1] == ROD["right"]
    assert np.max(np.abs(u - ur)) < 1e-8, np.max(np.abs(u - ur))


def test_hidden_parameter_sets(tmp_path):
    if not os.path.exists(os.path.join(BUILD_COPY, "build/heat")):
        assert build().returncode == 0
    for n, p in enumerate(HIDDEN):
        ini = tmp_path / f"case{n}.ini"
        out = tmp_path / f"case{n}.csv"
        write_ini(ini, p)
        res = subprocess.run([os.path.join(BUILD_COPY, "build/heat"), str(ini), str(out)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        steps, xr, ur = reference(p)
        first = res.stdout.strip().splitlines()[0]
        assert first.startswith(f"steps={steps} "), (p, first)
        x, u = read_csv(out)
        assert len(u) == p["nx"]
        assert np.max(np.abs(x - xr)) < 1e-6
        assert np.max(np.abs(u - ur)) < 1e-8, (n, np.max(np.abs(u - ur)))
