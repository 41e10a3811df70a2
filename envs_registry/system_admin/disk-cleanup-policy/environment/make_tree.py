"""Builds /app/srv: a deterministic 'full disk' tree with fixed sizes and modification times."""
import os
import random
from datetime import datetime, timezone

R = random.Random(1337)
ROOT = "/app/srv"


def ts(s):
    return datetime.strptime(s, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def mk(rel, size, mtime="2024-05-20 10:00:00", text=None):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        if text is not None:
            f.write(text.encode())
        else:
            f.write(R.randbytes(size))
    os.utime(path, (ts(mtime), ts(mtime)))


# --- app ---
mk("app/config/app.yaml", 0, text="listen: 127.0.0.1:8080\nworkers: 4\nlog_dir: /app/srv/logs\n")
for ver, day in (("v1.4.2", "2024-02-10"), ("v1.5.0", "2024-05-02")):
    mk(f"app/releases/{ver}/bin/server", 812_000 + R.randint(0, 5000), f"{day} 09:00:00")
    mk(f"app/releases/{ver}/lib/libhelper.so", 96_000 + R.randint(0, 999), f"{day} 09:00:00")
    mk(f"app/releases/{ver}/VERSION", 0, f"{day} 09:00:00", text=ver + "\n")
mk("app/releases/v1.5.0/core.31337", 1_450_112, "2024-05-18 03:12:44")
mk("app/core", 733_184, "2024-04-29 22:01:09")
mk("app/core-utils.sh", 0, "2024-01-05 12:00:00", text="#!/bin/sh\necho helpers\n")
os.symlink("releases/v1.5.0", os.path.join(ROOT, "app/current"))

# --- cache ---
for d in ("thumbnails", "sessions", "tmp", "render"):
    mk(f"cache/{d}/.keep", 0, "2023-11-01 00:00:00", text="")
for i in range(40):
    mk(f"cache/thumbnails/{i // 10:02d}/thumb_{i:04d}.jpg", R.randint(4_000, 30_000), "2024-05-1%d 08:00:00" % (i % 10))
for i in range(25):
    mk(f"cache/sessions/sess_{R.getrandbits(48):012x}", R.randint(100, 900), "2024-05-19 12:00:00")
mk("cache/tmp/upload-91.tmp", 250_000, "2024-03-02 11:00:00")
mk("cache/tmp/.partial-export.tmp", 180_500, "2024-05-19 23:00:00")
mk("cache/render/page cache 01.bin", 64_000, "2024-05-01 00:00:00")
mk("cache/render/.keep.bak", 10, "2024-05-01 00:00:00")

# --- logs ---
# (name, size, mtime)
rot = [
    ("app.log", 310_000, "2024-05-20 10:00:00"),
    ("app.log.1", 290_000, "2024-05-13 00:00:00"),
    ("app.log.2.gz", 41_000, "2024-05-06 00:00:00"),
    ("app.log.3.gz", 39_500, "2024-04-01 00:00:00"),     # exactly at cutoff -> keep
    ("app.log.4.gz", 40_200, "2024-03-31 23:59:59"),     # one second before -> delete
    ("app.log.5.gz", 38_000, "2024-03-25 00:00:00"),
    ("app.log.6.gz", 37_700, "2024-03-18 00:00:00"),
    ("app.log.old", 120_000, "2023-12-01 00:00:00"),     # not a numbered rotation -> keep
    ("core.log", 5_500, "2024-01-02 00:00:00"),          # not a core dump, not rotated -> keep
    ("worker.log", 88_000, "2024-05-20 09:59:00"),
    ("worker.log.1", 86_000, "2024-02-14 00:00:00"),
    ("worker.log.10.gz", 12_000, "2023-10-01 00:00:00"),
    ("nginx/access.log", 520_000, "2024-05-20 10:00:00"),
    ("nginx/access.log.1", 505_000, "2024-05-19 00:00:00"),
    ("nginx/access.log.2.gz", 61_000, "2024-03-10 00:00:00"),
    ("nginx/error.log.1", 7_300, "2024-01-20 00:00:00"),
    ("nginx/access.log.bak", 200_000, "2023-09-09 00:00:00"),  # keep (not numbered)
    ("legacy app/legacy app.log.3", 150_000, "2023-08-08 08:08:08"),
    ("legacy app/legacy app.log", 1_000, "2023-08-09 08:08:08"),
    ("archive/db.log.2024-01-01.gz", 22_000, "2024-01-01 00:00:00"),  # date suffix, not numbered -> keep
]
for name, size, mt in rot:
    mk(f"logs/{name}", size, mt)
os.symlink("app.log", os.path.join(ROOT, "logs/current.log"))

# --- uploads ---
for i in range(30):
    ext = R.choice(["pdf", "png", "csv", "docx"])
    mk(f"uploads/2024/{(i % 5) + 1:02d}/file_{i:03d}.{ext}", R.randint(20_000, 160_000), "2024-0%d-15 10:00:00" % ((i % 5) + 1))
mk("uploads/core.json", 0, "2024-05-01 00:00:00", text='{"core": true}\n')
mk("uploads/tmp/core", 2_048_000, "2024-05-10 01:02:03")
mk("uploads/tmp/core.2024", 310_000, "2024-05-10 01:02:04")     # core.<digits> -> delete
mk("uploads/tmp/core.dump", 4_000, "2024-05-10 01:02:05")       # not digits -> keep

# --- backups ---
mk("backups/db-2024-05-01.sql.gz", 2_400_000, "2024-05-01 02:00:00")
mk("backups/db-2024-05-20.sql.gz", 2_530_000, "2024-05-20 02:00:00")
os.link(os.path.join(ROOT, "backups/db-2024-05-20.sql.gz"), os.path.join(ROOT, "backups/latest.sql.gz"))
os.symlink("../backups/db-2024-05-01.sql.gz", os.path.join(ROOT, "cache/big-backup.sql.gz"))

# --- hidden trash ---
mk(".trash/old-release.tar", 1_750_000, "2023-12-24 00:00:00")
mk(".trash/core.99", 64_000, "2023-12-24 00:00:00")
