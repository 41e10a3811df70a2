#!/bin/bash
set -euo pipefail
cd /app
python3 - <<'PY'
import configparser, ipaddress, json, os

cfg = configparser.ConfigParser()
cfg.read("/app/ipam/ipam.conf")
sup = ipaddress.ip_network(cfg["campus"]["supernet"].strip())

valid, invalid = [], []
with open("/app/ipam/allocations.csv") as f:
    lines = f.read().splitlines()
header_seen = False
for line in lines:
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    fields = [x.strip() for x in line.split(",")]
    if not header_seen and fields[0] == "cidr":
        header_seen = True
        continue
    raw = fields[0]
    owner = fields[1] if len(fields) > 1 else ""
    try:
        if "/" not in raw:
            raise ValueError("no prefix")
        net = ipaddress.ip_network(raw, strict=True)
        if net.version != 4 or not net.subnet_of(sup):
            raise ValueError("outside")
    except ValueError:
        invalid.append(raw)
        continue
    valid.append((net, owner))

overlaps = []
for i in range(len(valid)):
    for j in range(i + 1, len(valid)):
        if valid[i][0].overlaps(valid[j][0]):
            overlaps.append(f"{valid[i][0]} {valid[i][1]} {valid[j][0]} {valid[j][1]}")

free = [sup]
for net in ipaddress.collapse_addresses([n for n, _ in valid]):
    nxt = []
    for blk in free:
        if net.subnet_of(blk):
            nxt.extend(blk.address_exclude(net))
        elif blk.subnet_of(net):
            continue
        else:
            nxt.append(blk)
    free = nxt
free = sorted(ipaddress.collapse_addresses(free))

os.makedirs("/app/report", exist_ok=True)
with open("/app/report/invalid.txt", "w") as f:
    f.write("".join(x + "\n" for x in invalid))
with open("/app/report/overlaps.txt", "w") as f:
    f.write("".join(x + "\n" for x in overlaps))
with open("/app/report/free.txt", "w") as f:
    f.write("".join(f"{n}\n" for n in free))
with open("/app/report/summary.json", "w") as f:
    json.dump({"valid": len(valid), "invalid": len(invalid), "overlapping_pairs": len(overlaps),
               "free_addresses": sum(n.num_addresses for n in free)}, f, indent=2)
PY
head -50 /app/report/*
