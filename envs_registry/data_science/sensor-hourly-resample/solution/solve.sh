#!/bin/bash
set -euo pipefail
cd /app
cat data/sensors.json; head -4 data/sensors/*.csv
mkdir -p output
python3 - <<'PY'
import io, json
import numpy as np
import pandas as pd

meta = json.load(open("/app/data/sensors.json"))
w0 = pd.Timestamp(meta["window_start"])
w1 = pd.Timestamp(meta["window_end"])
hours = pd.date_range(w0, w1, freq="H", inclusive="left")
frames = []
for s in sorted((s for s in meta["sensors"] if s["enabled"]), key=lambda s: s["id"]):
    text = "".join(l for l in open(f"/app/data/sensors/{s['file']}") if l.strip() and not l.startswith("#"))
    df = pd.read_csv(io.StringIO(text))
    df["t"] = pd.to_datetime(df["timestamp"], utc=True)
    df = df.drop_duplicates("t", keep="last")
    lo, hi = s["valid_range"]
    df = df[(df["value"] >= lo) & (df["value"] <= hi)]
    df = df[(df["t"] >= w0) & (df["t"] < w1)]
    df["v"] = df["value"] + s["offset"]
    g = df.groupby(df["t"].dt.floor("H"))["v"].agg(["mean", "count"]).reindex(hours)
    g["count"] = g["count"].fillna(0).astype(int)
    g["flag"] = np.where(g["count"] > 0, "ok", "missing")
    interp = g["mean"].interpolate(method="linear", limit_area="inside")
    # size of each run of empty hours
    empty = g["count"] == 0
    run_id = (empty != empty.shift()).cumsum()
    run_len = empty.groupby(run_id).transform("sum")
    ok_fill = empty & (run_len <= 2) & interp.notna()
    g.loc[ok_fill, "mean"] = interp[ok_fill]
    g.loc[ok_fill, "flag"] = "interpolated"
    out = pd.DataFrame({"sensor": s["id"], "hour": hours.strftime("%Y-%m-%dT%H:00Z"),
                        "mean": g["mean"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}").values,
                        "n": g["count"].values, "flag": g["flag"].values})
    frames.append(out)
res = pd.concat(frames)
res.to_csv("/app/output/hourly.csv", index=False)
print(res["flag"].value_counts())
print(res[res.flag != "ok"].to_string())
PY
