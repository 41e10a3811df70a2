#!/bin/bash
set -euo pipefail
cd /app
head -5 data/orders.csv
mkdir -p report
python3 - <<'PY'
import json
import pandas as pd

df = pd.read_csv("/app/data/orders.csv", dtype=str, keep_default_na=False)
n = len(df)
df = df.drop_duplicates()
dups = n - len(df)
missing_qty = int((df["quantity"].str.strip() == "").sum())
df = df[df["quantity"].str.strip() != ""]
df = df[df["status"].str.strip().str.lower() == "completed"].copy()
df["region"] = df["region"].str.strip().str.capitalize()

def month(s):
    s = s.strip()
    if "/" in s:
        d, m, y = s.split("/")
        return f"{int(y):04d}-{int(m):02d}"
    return s[:7]

df["month"] = df["order_date"].map(month)
df["price"] = df["unit_price"].str.replace("$", "", regex=False).str.replace(",", "", regex=False).astype(float)
df["revenue"] = df["quantity"].astype(int) * df["price"]
out = (df.groupby(["month", "region"]).agg(orders=("order_id", "size"), revenue=("revenue", "sum"))
         .reset_index().sort_values(["month", "region"]))
out["revenue"] = out["revenue"].map(lambda v: f"{v:.2f}")
out.to_csv("/app/report/monthly_revenue.csv", index=False)
summary = {"total_revenue": round(float(df["revenue"].sum()), 2), "counted_orders": int(len(df)),
           "duplicate_rows_removed": int(dups), "rows_missing_quantity": missing_qty}
json.dump(summary, open("/app/report/summary.json", "w"), indent=2)
print(out.head(12).to_string(), summary)
PY
