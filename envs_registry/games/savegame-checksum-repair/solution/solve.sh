#!/bin/bash
set -euo pipefail
cd /app
python3 - <<'PY'
import os, shutil, struct, sys, zlib
sys.path.insert(0, "/app/game")
import savefmt

SAVES = "/app/saves"
H = savefmt.HEADER

def integrity(version, head12, payload):
    if version == 1:
        return zlib.adler32(payload) & 0xFFFFFFFF
    return (zlib.crc32(head12 + payload) ^ 0x0BADC0DE) & 0xFFFFFFFF

report = []
for name in sorted(os.listdir(SAVES)):
    path = os.path.join(SAVES, name)
    if not name.endswith(".sav") or not os.path.isfile(path):
        continue
    data = open(path, "rb").read()
    try:
        savefmt.load_bytes(data)
        report.append((name, "intact"))
        continue
    except savefmt.SaveError:
        pass
    magic, version, flags, slot, length, word = H.unpack_from(data)
    body = data[H.size:]
    fixed = None
    if flags & savefmt.FLAG_ZLIB:
        d = zlib.decompressobj()
        try:
            d.decompress(body)
            if d.eof and d.unused_data.strip(b"\0") == b"":
                fixed = body[: len(body) - len(d.unused_data)]
        except zlib.error:
            fixed = None
    else:
        fixed = body.rstrip(b"\0")
    if fixed is not None:
        head12 = H.pack(magic, version, flags, slot, len(fixed), 0)[:12]
        candidate = head12 + struct.pack("<I", integrity(version, head12, fixed)) + fixed
        try:
            savefmt.load_bytes(candidate)
        except savefmt.SaveError:
            candidate = None
    else:
        candidate = None
    if candidate is None:
        os.makedirs(os.path.join(SAVES, "unrecoverable"), exist_ok=True)
        shutil.move(path, os.path.join(SAVES, "unrecoverable", name))
        report.append((name, "unrecoverable"))
    else:
        with open(path, "wb") as f:
            f.write(candidate)
        report.append((name, "repaired"))

with open("/app/repair_report.txt", "w") as f:
    for name, status in sorted(report):
        f.write(f"{name} {status}\n")
PY
cat /app/repair_report.txt
python3 /app/game/check_saves.py /app/saves
