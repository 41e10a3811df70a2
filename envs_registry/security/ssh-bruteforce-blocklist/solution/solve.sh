#!/bin/bash
# Reference solution: parse all auth logs, count failed password attempts per IP,
# apply the allowlist with Python's ipaddress module, and write both reports.
set -euo pipefail
cd /app
python3 - <<'PY'
import gzip, ipaddress, re, glob, os
from collections import Counter

fails, accepted = Counter(), set()
rx_fail = re.compile(r"sshd\[\d+\]: Failed password for (?:invalid user )?\S+ from (\S+) port \d+")
rx_rep = re.compile(r"sshd\[\d+\]: message repeated (\d+) times: \[ Failed password for (?:invalid user )?\S+ from (\S+) port \d+")
rx_acc = re.compile(r"sshd\[\d+\]: Accepted (?:password|publickey) for \S+ from (\S+) port \d+")
for path in sorted(glob.glob("/app/logs/*")):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        for line in fh:
            m = rx_rep.search(line)
            if m:
                fails[m.group(2)] += int(m.group(1)); continue
            m = rx_fail.search(line)
            if m:
                fails[m.group(1)] += 1; continue
            m = rx_acc.search(line)
            if m:
                accepted.add(m.group(1))

nets = []
for raw in open("/app/allowlist.txt"):
    entry = raw.split("#", 1)[0].strip()
    if entry:
        nets.append(ipaddress.ip_network(entry, strict=False))

def allowed(ip):
    a = ipaddress.ip_address(ip)
    return any(a.version == n.version and a in n for n in nets)

blocked = [(ip, c) for ip, c in fails.items() if c >= 10 and not allowed(ip)]
blocked.sort(key=lambda x: (-x[1], x[0]))
with open("/app/blocklist.txt", "w") as f:
    f.writelines(f"{ip} {c}\n" for ip, c in blocked)
with open("/app/compromised.txt", "w") as f:
    f.writelines(f"{ip}\n" for ip in sorted(ip for ip, _ in blocked if ip in accepted))
PY
cat /app/blocklist.txt /app/compromised.txt
