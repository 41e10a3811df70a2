import csv
import hashlib
import math
import os

import numpy as np

SIG = "/app/signals"
INPUT_HASHES = {
    "README.txt": "a54135c886a62baba8146fb4267f3c443265492f69193e4cf62d4418325b65cf",
    "fan_c.dat": "410ee3477be958a971879481da64d016078097d8f62ca6b2aae97251a3a650a6",
    "motor_d.dat": "af35e04ec7b2722d8ab915ad46a25fa7d63e3177727d9aab10491ac6b02cef67",
    "pump_a.dat": "7d79a4529dd57894fde68b72268a0ed16488d78972bb37f6560ded4f71679ee3",
    "pump_b.dat": "2d72cebc450479f0794d40475c143a1bae76755288ec5cb2a9b423d17b0a36c8",
}
# tones the captures were synthesised with: (sample rate, [(freq, nominal amplitude), ...] by amplitude)
TRUTH = {
    "fan_c": (800.0, [(12.5, 0.9), (187.5, 0.5), (25.0, 0.3)]),
    "motor_d": (500.0, [(59.5, 1.2), (178.5, 0.5), (29.75, 0.25)]),
    "pump_a": (2500.0, [(50.0, 1.0), (120.5, 0.6), (333.0, 0.35)]),
    "pump_b": (1000.0, [(49.75, 0.8), (99.5, 0.45), (247.25, 0.3)]),
}


def samples(name):
    vals = []
    with open(os.path.join(SIG, name + ".dat")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            vals.append(line.split(",")[-1])
    x = np.array([float("nan") if v.lower() == "nan" else float(v) for v in vals])
    good = np.flatnonzero(~np.isnan(x))
    for i in np.flatnonzero(np.isnan(x)):
        lo = good[good < i].max()
        hi = good[good > i].min()
        x[i] = x[lo] + (x[hi] - x[lo]) * (i - lo) / (hi - lo)
    return x


def dft_amplitude(x, k):
    # single-bin DFT, independent of numpy.fft
    n = len(x)
    y = x - x.mean()
    ang = -2.0 * math.pi * k * np.arange(n) / n
    re = float(np.dot(y, np.cos(ang)))
    im = float(np.dot(y, np.sin(ang)))
    return 2.0 * math.hypot(re, im) / n


def read_rows():
    with open("/app/results/peaks.csv", newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
    assert rows[0] == ["signal", "rank", "freq_hz", "amplitude"], rows[0]
    return rows[1:]


def test_inputs_unchanged():
    assert sorted(os.listdir(SIG)) == sorted(INPUT_HASHES)
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join(SIG, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_rows_and_order():
    rows = read_rows()
    assert [(r[0], r[1]) for r in rows] == [(s, str(k)) for s in sorted(TRUTH) for k in (1, 2, 3)]


def test_frequencies():
    rows = read_rows()
    got = {(r[0], int(r[1])): r[2] for r in rows}
    for sig, (_, tones) in TRUTH.items():
        for rank, (freq, _) in enumerate(tones, 1):
            assert got[(sig, rank)] == f"{freq:.2f}", (sig, rank, got[(sig, rank)])


def test_amplitude_format_and_plausibility():
    rows = read_rows()
    for r in rows:
        assert len(r[3].split(".")[1]) == 4, r
    got = {(r[0], int(r[1])): float(r[3]) for r in rows}
    for sig, (_, tones) in TRUTH.items():
        for rank, (_, amp) in enumerate(tones, 1):
            assert abs(got[(sig, rank)] - amp) < 0.02, (sig, rank)


def test_amplitudes_exact():
    rows = read_rows()
    got = {(r[0], int(r[1])): float(r[3]) for r in rows}
    for sig, (fs, tones) in TRUTH.items():
        x = samples(sig)
        n = len(x)
        for rank, (freq, _) in enumerate(tones, 1):
            k = round(freq * n / fs)
            ref = dft_amplitude(x, k)
            assert abs(got[(sig, rank)] - ref) <= 0.00011, (sig, rank, got[(sig, rank)], ref)
