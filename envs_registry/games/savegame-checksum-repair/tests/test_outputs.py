import hashlib
import os
import struct
import subprocess
import zlib

SAVES = "/app/saves"
HDR = struct.Struct("<4sBBHII")

GAME_HASHES = {
    "README.md": "5ec7fff736f5c27afc92aca037bef15ab184c4338d90e5d781794241e290974d",
    "check_saves.py": "1dc4d0eacf143b048468b25ca23c237bbbddca185008a2cded13a146a9b865fb",
    "savefmt.py": "7fc51677ae015a92e0180acc375cf7063cf7714db8dc3bf31a7fb27766318e3f",
}
BACKUP_HASHES = {
    "slot4.sav.bak": "4c27b7ae4a02c060362517095712cb3ebd4fa58f4d9a9f5ba1935acb20b44cbb",
    "slot5.sav.bak": "461dd25bb612e2f0c3008b83aa6fc8338799d9fc6f96321fda31df2db08329d1",
}
# full-file digests of the expected final saves
FINAL_HASHES = {
    "slot1.sav": "8b8b791f532fae11fe404b911dfd0897c86a23587341c3012d4c43841c58a81d",
    "slot2.sav": "6ada5ebe1d9a0a7abfbf05afde00185e128adecea24a5d7d4b428e1d88b97753",
    "slot3.sav": "12083ba5de4919f15a77ed0f2231b23a94f03d2fc0e7b4573ae8d48a9d6fd8f4",
    "slot4.sav": "b77cd41425bbb424daf6a806915b44d2c4c4353fdce367c4bb644979b31c8611",
    "slot5.sav": "34ae73a8c2d0666a954c2dbae97122dab03d00d23a06bd339828335edffbb779",
    "slot6.sav": "9e14a2b4adbcad3a58cd54ac000d3681a3b3fb6aa7883de558919c464fd0a9a0",
    "slot7.sav": "754c77af2c03c845bb7f621d2904271df25df579c28cb54a07d77d9a3277f4ea",
    "slot9.sav": "4553841c767e0989b3b19cb55536f65bb85e15a02a54d1bb56c94ab7307f4a06",
    "slot10.sav": "dbd6bd15b8a01c42a3f21e709fbbe109d6225190a21f50388b35e53ae523d6ef",
}
UNRECOVERABLE_HASH = "c189917c780fe9b81b4f8526b706b7902b7950fde85fd9e3650b6e65b7891659"
# (version, flags, slot) and the values players must keep
EXPECTED = {
    "slot1.sav": ((2, 0, 1), {"player": "Brannoc", "gold": "340", "hp": "88", "level": "12"}),
    "slot2.sav": ((2, 1, 2), {"player": "Ysolde", "gold": "5120", "hp": "140", "level": "27"}),
    "slot3.sav": ((1, 0, 3), {"player": "Tamsin", "gold": "75", "hp": "40", "level": "5"}),
    "slot4.sav": ((2, 0, 4), {"player": "Corvin", "gold": "999", "hp": "96", "playtime_s": "40100"}),
    "slot5.sav": ((1, 0, 5), {"player": "Edda", "hp": "9999", "gold": "410", "playtime_s": "8800"}),
    "slot6.sav": ((2, 1, 6), {"player": "Fenwick", "gold": "20999", "playtime_s": "120500"}),
    "slot7.sav": ((2, 0, 7), {"player": "Gisla", "gold": "500000", "playtime_s": "51000"}),
    "slot9.sav": ((1, 1, 9), {"player": "Ilse", "gold": "900", "playtime_s": "22000"}),
    "slot10.sav": ((2, 0, 10), {"player": "Joss", "level": "30", "playtime_s": "900"}),
}


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def decode(data):
    """Independent reader: returns (version, flags, slot, values) or raises AssertionError."""
    magic, version, flags, slot, length, word = HDR.unpack_from(data)
    assert magic == b"QSAV"
    assert len(data) == 16 + length, "length field does not match file size"
    payload = data[16:]
    if version == 1:
        assert zlib.adler32(payload) == word, "bad v1 adler32"
    else:
        assert version == 2
        assert (zlib.crc32(data[:12] + payload) ^ 0x0BADC0DE) == word, "bad v2 crc"
    if flags & 1:
        d = zlib.decompressobj()
        payload = d.decompress(payload)
        assert d.eof and d.unused_data == b"", "garbage after zlib stream"
    values = dict(l.split("=", 1) for l in payload.decode().splitlines() if l.strip())
    return version, flags, slot, values


def test_tools_and_backups_untouched():
    for name, digest in GAME_HASHES.items():
        assert sha(os.path.join("/app/game", name)) == digest, name
    assert sorted(os.listdir(os.path.join(SAVES, ".backup"))) == sorted(BACKUP_HASHES)
    for name, digest in BACKUP_HASHES.items():
        assert sha(os.path.join(SAVES, ".backup", name)) == digest, name


def test_check_saves_passes():
    res = subprocess.run(["python3", "/app/game/check_saves.py", SAVES], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("OK ") == 9, res.stdout


def test_save_set_and_unrecoverable():
    sav = sorted(n for n in os.listdir(SAVES) if n.endswith(".sav"))
    assert sav == sorted(FINAL_HASHES), sav
    udir = os.path.join(SAVES, "unrecoverable")
    assert sorted(os.listdir(udir)) == ["slot8.sav"]
    assert sha(os.path.join(udir, "slot8.sav")) == UNRECOVERABLE_HASH


def test_player_edits_kept_and_headers_preserved():
    for name, (hdr, vals) in EXPECTED.items():
        with open(os.path.join(SAVES, name), "rb") as f:
            version, flags, slot, values = decode(f.read())
        assert (version, flags, slot) == hdr, name
        for k, v in vals.items():
            assert values.get(k) == v, (name, k, values.get(k))


def test_files_exactly_canonical():
    # intact files byte-identical, repaired files = header + payload with no padding
    for name, digest in FINAL_HASHES.items():
        assert sha(os.path.join(SAVES, name)) == digest, name


def test_report():
    with open("/app/repair_report.txt") as f:
        lines = [l.strip() for l in f.read().strip().splitlines()]
    assert lines == [
        "slot1.sav intact",
        "slot10.sav repaired",
        "slot2.sav intact",
        "slot3.sav intact",
        "slot4.sav repaired",
        "slot5.sav repaired",
        "slot6.sav repaired",
        "slot7.sav repaired",
        "slot8.sav unrecoverable",
        "slot9.sav repaired",
    ], lines
