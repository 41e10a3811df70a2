#!/bin/bash
set -euo pipefail
cd /app
ls -la experiments/ && cat experiments/*/status.txt | sort | uniq -c
python3 - <<'PY'
import json, math, os, yaml
root = "/app/experiments"
rows = []
for name in sorted(os.listdir(root)):
    d = os.path.join(root, name)
    if name.startswith(".") or not os.path.isdir(d):
        continue
    if open(os.path.join(d, "status.txt")).read().strip() != "completed":
        continue
    cfg = yaml.safe_load(open(os.path.join(d, "config.yaml")))
    lr_raw = None
    for line in open(os.path.join(d, "config.yaml")):
        if line.strip().startswith("lr:"):
            lr_raw = line.split(":", 1)[1].strip()
    epochs = {}
    for line in open(os.path.join(d, "metrics.jsonl")):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "epoch" in rec:
            epochs[rec["epoch"]] = rec
    if any(math.isnan(r["val_loss"]) for r in epochs.values()):
        continue
    order = sorted(epochs)
    best = max(order, key=lambda e: (epochs[e]["val_acc"], -e))
    rows.append((name, cfg["model"], lr_raw, best, epochs[best]["val_acc"], epochs[order[-1]]["val_loss"]))
rows.sort(key=lambda r: (-round(r[4], 4), r[0]))
with open("/app/leaderboard.csv", "w") as f:
    f.write("run,model,lr,best_epoch,best_val_acc,final_val_loss\n")
    for r in rows:
        f.write(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]:.4f},{r[5]:.4f}\n")
with open("/app/best_run.txt", "w") as f:
    f.write(rows[0][0] + "\n")
PY
cat /app/leaderboard.csv
