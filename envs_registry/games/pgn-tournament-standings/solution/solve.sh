#!/bin/bash
set -euo pipefail
cd /app
python3 - <<'PY'
import glob, re

EVENT = "Riverside Open 2024"

def norm(name):
    last, first = [p.strip() for p in name.split(",", 1)]
    return f"{last}, {' '.join(first.split())}"

def parse_file(path):
    text = open(path, encoding="utf-8-sig").read().replace("\r\n", "\n")
    games, tags, body = [], {}, []
    for line in text.split("\n") + ["[Event \"__END__\"]"]:
        m = re.match(r'^\[(\w+)\s+"(.*)"\]\s*$', line)
        if m:
            if body and tags:
                games.append((tags, "\n".join(body)))
                tags, body = {}, []
            tags[m.group(1)] = m.group(2)
        elif line.strip() or body:
            body.append(line)
    return games

def count_plies(mt):
    mt = re.sub(r";[^\n]*", " ", mt)
    mt = re.sub(r"\{[^}]*\}", " ", mt)
    out, depth = [], 0
    for ch in mt:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    n = 0
    for tok in "".join(out).split():
        tok = re.sub(r"^\d+\.+", "", tok)
        if not tok or tok.startswith("$") or tok in ("1-0", "0-1", "1/2-1/2", "*"):
            continue
        n += 1
    return n

games = {}
for path in sorted(glob.glob("/app/tournament/*.pgn")):
    for tags, mt in parse_file(path):
        if tags.get("Event") != EVENT:
            continue
        key = (tags["Round"], norm(tags["White"]), norm(tags["Black"]))
        if tags["Result"] == "*":
            games.setdefault(key, None)
            continue
        games[key] = (tags["Result"], count_plies(mt))

finished = {k: v for k, v in games.items() if v is not None}
stats = {}
for (rnd, w, b), (res, _) in finished.items():
    for p in (w, b):
        stats.setdefault(p, {"pts": 0.0, "w": 0, "d": 0, "l": 0, "opp": []})
    stats[w]["opp"].append(b); stats[b]["opp"].append(w)
    if res == "1-0":
        stats[w]["pts"] += 1; stats[w]["w"] += 1; stats[b]["l"] += 1
    elif res == "0-1":
        stats[b]["pts"] += 1; stats[b]["w"] += 1; stats[w]["l"] += 1
    else:
        for p in (w, b):
            stats[p]["pts"] += 0.5; stats[p]["d"] += 1
for p, s in stats.items():
    s["bh"] = sum(stats[o]["pts"] for o in s["opp"])
order = sorted(stats, key=lambda p: (-stats[p]["pts"], -stats[p]["bh"], p))
with open("/app/standings.csv", "w") as f:
    f.write("rank,player,points,wins,draws,losses,buchholz\n")
    for i, p in enumerate(order, 1):
        s = stats[p]
        f.write(f'{i},"{p}",{s["pts"]:.1f},{s["w"]},{s["d"]},{s["l"]},{s["bh"]:.1f}\n')
(rnd, w, b), (res, plies) = max(finished.items(), key=lambda kv: kv[1][1])
with open("/app/longest_game.txt", "w") as f:
    f.write(f"White: {w}\nBlack: {b}\nRound: {rnd}\nPlies: {plies}\n")
PY
cat /app/standings.csv /app/longest_game.txt
