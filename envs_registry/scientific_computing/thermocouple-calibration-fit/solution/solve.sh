#!/bin/bash
set -euo pipefail
cd /app
mkdir -p /app/results
python3 - <<'PY'
import glob, json, os
import numpy as np

pts = []
for path in sorted(glob.glob("/app/data/runs/*.csv")):
    with open(path, newline="") as f:
        lines = [l.strip() for l in f.read().splitlines()]
    sensor = None
    body = []
    for l in lines:
        if not l:
            continue
        if l.startswith("#"):
            if l[1:].strip().lower().startswith("sensor:"):
                sensor = l.split(":", 1)[1].strip()
            continue
        body.append(l)
    if sensor != "TC-07":
        continue
    sep = ";" if ";" in body[0] else ","
    cols = [c.strip() for c in body[0].split(sep)]
    for l in body[1:]:
        vals = dict(zip(cols, [v.strip() for v in l.split(sep)]))
        if vals.get("status", "").lower() != "ok":
            continue
        def num(key):
            v = vals.get(key, "")
            if v in ("", "NA"):
                return None
            return float(v.replace(",", ".") if sep == ";" else v)
        t = num("temp_C") if "temp_C" in cols else (None if num("temp_K") is None else num("temp_K") - 273.15)
        v = num("voltage_mV") if "voltage_mV" in cols else (None if num("voltage_V") is None else num("voltage_V") * 1000)
        if t is None or v is None:
            continue
        pts.append((os.path.basename(path), t, v))

pts.sort(key=lambda p: (round(p[1], 9), p[0]))
with open("/app/results/points.csv", "w") as f:
    f.write("source,temp_C,voltage_mV\n")
    for s, t, v in pts:
        f.write(f"{s},{t:.4f},{v:.4f}\n")
T = np.array([p[1] for p in pts]); V = np.array([p[2] for p in pts])
slope, intercept = np.polyfit(T, V, 1)
res = V - (slope * T + intercept)
r2 = 1 - (res ** 2).sum() / ((V - V.mean()) ** 2).sum()
out = {"sensor": "TC-07", "n_points": len(pts), "slope_mV_per_C": round(float(slope), 6),
       "intercept_mV": round(float(intercept), 6), "r_squared": round(float(r2), 6),
       "max_abs_residual_mV": round(float(np.abs(res).max()), 6)}
json.dump(out, open("/app/results/calibration.json", "w"), indent=2)
print(out)
PY
