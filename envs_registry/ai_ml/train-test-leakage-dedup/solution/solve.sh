#!/bin/bash
set -euo pipefail
cd /app/data
ls -la . train; cat README.md
python3 - <<'PY'
import glob, gzip, json, unicodedata

def norm(text):
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(c for c in t if c.isalnum() or c.isspace())
    return " ".join(t.split())

train = set()
for path in sorted(glob.glob("/app/data/train/*")):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                train.add(norm(json.loads(line)["text"]))

total = leaked = dups = 0
leaked_ids, kept_lines, seen = [], [], set()
with open("/app/data/test.jsonl", encoding="utf-8") as fh:
    for line in fh:
        if not line.strip():
            continue
        total += 1
        rec = json.loads(line)
        key = norm(rec["text"])
        if key in train:
            leaked += 1
            leaked_ids.append(rec["id"])
        elif key in seen:
            dups += 1
        else:
            seen.add(key)
            kept_lines.append(line.rstrip("\n"))
with open("/app/data/test_clean.jsonl", "w", encoding="utf-8") as out:
    out.write("".join(l + "\n" for l in kept_lines))
report = {"test_records": total, "leaked": leaked, "duplicates": dups, "kept": len(kept_lines),
          "leaked_ids": sorted(leaked_ids)}
with open("/app/leakage_report.json", "w") as out:
    json.dump(report, out, indent=2)
print({k: v for k, v in report.items() if k != "leaked_ids"})
PY
