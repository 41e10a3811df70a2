import hashlib
import os
from collections import deque

MAZE_DIR = "/app/mazes"
EXPECTED_STEPS = {
    "alpha": 72,
    "bravo": 58,
    "castle": -1,
    "delta": 40,
    "echo": 1,
    "foxtrot": 198,
}
INPUT_HASHES = {
    ".draft.txt": "bf5787a933f79a8ad9693841a146c96648d71fff3a0c7a6490ccb9ae8872d547",
    "alpha.txt": "79024ad8d140ba581cb5a481f7c038fe716eeeddd1997a4a0a5b943303470fc5",
    "bravo.txt": "358108f8c6a9b151dec298dee8252d35abb4ea2861f62244ce17f8df896880d2",
    "castle.txt": "707614ca3f4cff09cecefc2b08e2d39eee20748e759574df66c92d868b02e7f7",
    "delta.txt": "9bdaaaae1276335e71bd45ed9d6c91addde7b9124db0ff8a54a7833ad7f645d0",
    "echo.txt": "0eabd386cf3efde54e03441c59cc840f1b6f01209873b51352a62d8c0e981d87",
    "foxtrot.txt": "b6c038468f829e3aa2dcaca87d601b27f018586678c04cb5a22b21f68a6f4193",
    "NOTES.md": "982e71f117f93087714e9f2387e4cbdc0fbe9335d7edd1f63e82f42df0836322",
}


def clean_rows(name):
    with open(os.path.join(MAZE_DIR, name + ".txt"), "rb") as f:
        text = f.read().decode()
    rows = [r.rstrip(" \t\r") for r in text.split("\n")]
    while rows and rows[-1] == "":
        rows.pop()
    return rows


def find(rows, ch):
    for r, row in enumerate(rows):
        c = row.find(ch)
        if c >= 0:
            return r, c
    raise AssertionError(f"{ch} not found")


def bfs(rows, passable):
    start, end = find(rows, "S"), find(rows, "E")
    dist = {start: 0}
    q = deque([start])
    while q:
        r, c = q.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if (nr, nc) not in dist and passable(nr, nc):
                dist[(nr, nc)] = dist[(r, c)] + 1
                q.append((nr, nc))
    return dist.get(end, -1)


def test_inputs_unchanged():
    names = sorted(os.listdir(MAZE_DIR))
    assert names == sorted(INPUT_HASHES), names
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join(MAZE_DIR, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_expected_values_match_independent_bfs():
    # sanity: the hard-coded answers agree with a fresh BFS over the inputs
    for name, steps in EXPECTED_STEPS.items():
        rows = clean_rows(name)

        def ok(r, c, rows=rows):
            return 0 <= r < len(rows) and 0 <= c < len(rows[r]) and rows[r][c] != "#"

        assert bfs(rows, ok) == steps, name


def test_results_csv_exact():
    with open("/app/results.csv") as f:
        content = f.read()
    lines = content.strip("\n").split("\n")
    assert lines[0].strip() == "maze,steps"
    body = [l.strip() for l in lines[1:]]
    expected = [f"{k},{v}" for k, v in sorted(EXPECTED_STEPS.items())]
    assert body == expected, body


def test_no_path_files_for_unreachable_or_hidden():
    assert os.path.isdir("/app/paths")
    files = sorted(os.listdir("/app/paths"))
    expected = sorted(f"{k}.txt" for k, v in EXPECTED_STEPS.items() if v >= 0)
    assert files == expected, files


def check_overlay(name):
    rows = clean_rows(name)
    steps = EXPECTED_STEPS[name]
    with open(f"/app/paths/{name}.txt", "rb") as f:
        data = f.read().decode()
    assert "\r" not in data
    out = data.split("\n")
    if out and out[-1] == "":
        out.pop()
    assert len(out) == len(rows), (len(out), len(rows))
    stars = set()
    for r, (orig, new) in enumerate(zip(rows, out)):
        assert len(orig) == len(new), f"row {r} length differs"
        for c, (a, b) in enumerate(zip(orig, new)):
            if a != b:
                assert a == "." and b == "*", f"illegal change at {r},{c}: {a!r}->{b!r}"
                stars.add((r, c))
    assert len(stars) == steps - 1, (len(stars), steps)
    start, end = find(rows, "S"), find(rows, "E")
    allowed = stars | {start, end}
    assert bfs(rows, lambda r, c: (r, c) in allowed) == steps


def test_overlay_alpha_bravo_echo():
    for name in ("alpha", "bravo", "echo"):
        check_overlay(name)


def test_overlay_delta():
    check_overlay("delta")


def test_overlay_foxtrot():
    check_overlay("foxtrot")
