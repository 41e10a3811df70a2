import csv
import hashlib
import os

TDIR = "/app/tournament"
INPUT_HASHES = {
    "blitz_side_event.pgn": "c05c353eaa87938c44090b6319e368ce967eaf8c9d28fb281597a3cdb8bf4441",
    "late_entries.pgn": "f7d4f45240300e82493a42486924c3a7cd981f52e39efc059d26c195a0b03c26",
    "round1.pgn": "b0116434eaf9211c3ba2f34fb7eb0f83d2d2d02b609e991a39275b2716560f35",
    "round2.pgn": "fef599ed5ad041307e5055507b02a43393bfad2eb10083644f914e86d55d3a3d",
    "round3.pgn": "d3149d258d8dbd887e95f525ae4f2ca58858def42d936c73d98cd9b20040c7bd",
    "round4.pgn": "2e65cfd54d9c78f4843d6b3272fa980c7b47b6d0e4c1043e3b1a02ca33fa5dac",
    "round5.pgn": "3ce1711f660ef25022718404471ba92f29e2eca66532f095de47d7606e407223",
    "round6.pgn": "19861717827df4ae5417cbec8ef7b4c93a30ee1b688b1ed545d46a754e4c4f3c",
    "round7.pgn": "a3b2c9470706f69fb4e06f1e7c6ebbab16be3bdedc9814e2ba244620b7fc6d80",
}

# rank, player, points, wins, draws, losses, buchholz
EXPECTED = [
    ("1", "Novak, Greta", "6.5", "6", "1", "0", "20.5"),
    ("2", "Moreau, Celine", "5.5", "4", "3", "0", "21.5"),
    ("3", "Okafor, Ada", "5.5", "5", "1", "1", "21.5"),
    ("4", "Lindqvist, Bo", "3.5", "3", "1", "3", "23.5"),
    ("5", "Tanaka, Daichi", "2.0", "2", "0", "5", "25.0"),
    ("6", "Petrov, Elena", "2.0", "1", "2", "3", "24.5"),
    ("7", "Haddad, Farid", "1.5", "1", "1", "5", "25.5"),
    ("8", "Quispe, Hugo", "0.5", "0", "1", "5", "24.5"),
]


def read_standings():
    with open("/app/standings.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return rows


def test_inputs_unchanged():
    assert sorted(os.listdir(TDIR)) == sorted(INPUT_HASHES)
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join(TDIR, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_header_and_players():
    rows = read_standings()
    assert rows[0] == ["rank", "player", "points", "wins", "draws", "losses", "buchholz"]
    players = sorted(r[1] for r in rows[1:])
    assert players == sorted(e[1] for e in EXPECTED), players


def test_game_counts_and_points():
    rows = read_standings()[1:]
    got = {r[1]: (float(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}
    for _, p, pts, w, d, l, _ in EXPECTED:
        assert got[p] == (float(pts), int(w), int(d), int(l)), (p, got[p])
    # 27 counted games in total: one game was never finished
    assert sum(v[0] for v in got.values()) == 27.0
    assert sum(v[1] + v[2] + v[3] for v in got.values()) == 54


def test_buchholz_values():
    rows = read_standings()[1:]
    got = {r[1]: float(r[6]) for r in rows}
    for e in EXPECTED:
        assert got[e[1]] == float(e[6]), (e[1], got[e[1]])


def test_order_ranks_and_formatting():
    rows = read_standings()[1:]
    assert [tuple(r) for r in rows] == EXPECTED


def test_longest_game():
    with open("/app/longest_game.txt") as f:
        lines = [l.rstrip() for l in f.read().strip().splitlines()]
    assert lines == [
        "White: Haddad, Farid",
        "Black: Tanaka, Daichi",
        "Round: 4.2",
        "Plies: 131",
    ], lines
