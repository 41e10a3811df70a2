#!/bin/bash
set -euo pipefail
cd /app
mkdir -p /app/results
python3 - <<'PY'
import glob, os, re
import numpy as np

rows = []
for path in sorted(glob.glob("/app/signals/*.dat")):
    name = os.path.basename(path)[:-4]
    fs, times, vals = None, [], []
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*sample_rate:\s*([\d.]+)\s*(k?Hz)", line, re.I)
            if m:
                fs = float(m.group(1)) * (1000.0 if m.group(2).lower() == "khz" else 1.0)
            continue
        parts = line.split(",")
        if len(parts) == 2:
            times.append(float(parts[0])); parts = parts[1:]
        vals.append(float(parts[0]))  # float('nan') parses NaN in any case
    x = np.array(vals)
    if fs is None:
        fs = 1.0 / np.median(np.diff(times))
    bad = np.isnan(x)
    if bad.any():
        idx = np.arange(len(x))
        x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    n = len(x)
    amp = 2 * np.abs(np.fft.rfft(x - x.mean())) / n
    peaks = [k for k in range(1, n // 2) if amp[k] > amp[k - 1] and amp[k] > amp[k + 1]]
    peaks.sort(key=lambda k: -amp[k])
    for r, k in enumerate(peaks[:3], 1):
        rows.append(f"{name},{r},{k * fs / n:.2f},{amp[k]:.4f}")
with open("/app/results/peaks.csv", "w") as f:
    f.write("signal,rank,freq_hz,amplitude\n" + "\n".join(rows) + "\n")
PY
cat /app/results/peaks.csv
