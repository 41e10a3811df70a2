#!/bin/bash
# A fresh capture for every sandbox; the verifier keeps its own root-only copy.
set -e
mkdir -p /var/lib/sensor /var/lib/ltenv-verify
python3 - <<'PY'
import json, random
rng = random.Random()
channels = {}
for ch, level in (("A", 0.8), ("B", 2.5), ("C", 1.1)):
    rows = []
    for i in range(400):
        v = round(rng.gauss(level, 0.4), 5)
        flag = rng.choices(["OK", "SAT", "DROP"], [0.85, 0.1, 0.05])[0]
        if flag == "SAT":
            v = 9.99999
        rows.append([round(i * 0.005, 3), v, flag])
    channels[ch] = rows
data = {"rig": "VR-%04d" % rng.randrange(10000), "channels": channels}
for path in ("/var/lib/sensor/capture.json", "/var/lib/ltenv-verify/capture.json"):
    with open(path, "w") as f:
        json.dump(data, f)
PY
chmod 600 /var/lib/ltenv-verify/capture.json
chmod 700 /var/lib/ltenv-verify
