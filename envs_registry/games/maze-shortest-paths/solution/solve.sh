#!/bin/bash
set -euo pipefail
cd /app
python3 - <<'PY'
import os, glob
from collections import deque

os.makedirs('/app/paths', exist_ok=True)
rows_out = []
for path in sorted(glob.glob('/app/mazes/*.txt')):
    name = os.path.basename(path)[:-4]
    with open(path, newline='') as f:
        lines = [l.rstrip() for l in f.read().splitlines()]
    while lines and lines[-1] == '':
        lines.pop()
    def cell(r, c):
        if 0 <= r < len(lines) and 0 <= c < len(lines[r]):
            return lines[r][c]
        return '#'
    start = end = None
    for r, l in enumerate(lines):
        for c, ch in enumerate(l):
            if ch == 'S': start = (r, c)
            if ch == 'E': end = (r, c)
    prev = {start: None}
    q = deque([start])
    while q:
        cur = q.popleft()
        if cur == end:
            break
        r, c = cur
        for nr, nc in ((r-1, c), (r+1, c), (r, c-1), (r, c+1)):
            if (nr, nc) not in prev and cell(nr, nc) != '#':
                prev[(nr, nc)] = cur
                q.append((nr, nc))
    if end not in prev:
        rows_out.append((name, -1))
        continue
    grid = [list(l) for l in lines]
    steps = 0
    node = prev[end]
    while node is not None:
        steps += 1
        if node != start:
            grid[node[0]][node[1]] = '*'
        node = prev[node]
    rows_out.append((name, steps))
    with open(f'/app/paths/{name}.txt', 'w') as f:
        f.write('\n'.join(''.join(g) for g in grid) + '\n')

with open('/app/results.csv', 'w') as f:
    f.write('maze,steps\n')
    for name, steps in rows_out:
        f.write(f'{name},{steps}\n')
PY
cat /app/results.csv
