import gzip
import json
import os
import subprocess
import unicodedata

DATA = "/app/data"


def normalize(text):
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = []
    for ch in text:
        if ch.isalnum():
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
    return " ".join("".join(kept).split())


def train_keys():
    keys = set()
    for name in os.listdir(os.path.join(DATA, "train")):
        path = os.path.join(DATA, "train", name)
        if name.endswith(".gz"):
            raw = gzip.decompress(open(path, "rb").read()).decode("utf-8")
        else:
            raw = open(path, encoding="utf-8").read()
        for line in raw.splitlines():
            if line.strip():
                keys.add(normalize(json.loads(line)["text"]))
    return keys


def expected():
    keys = train_keys()
    leaked, dups, kept, seen = [], 0, [], set()
    for line in open(os.path.join(DATA, "test.jsonl"), encoding="utf-8").read().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        k = normalize(rec["text"])
        if k in keys:
            leaked.append(rec["id"])
        elif k in seen:
            dups += 1
        else:
            seen.add(k)
            kept.append(line)
    return leaked, dups, kept


def load_report():
    with open("/app/leakage_report.json") as fh:
        return json.load(fh)


def test_report_counts():
    leaked, dups, kept = expected()
    rep = load_report()
    assert rep["test_records"] == 620
    assert rep["leaked"] == len(leaked) == 72
    assert rep["duplicates"] == dups == 25
    assert rep["kept"] == len(kept) == 523


def test_leaked_ids():
    leaked, _, _ = expected()
    rep = load_report()
    assert rep["leaked_ids"] == sorted(leaked)


def test_clean_file_exact():
    _, _, kept = expected()
    with open(os.path.join(DATA, "test_clean.jsonl"), encoding="utf-8") as fh:
        content = fh.read()
    assert content == "".join(line + "\n" for line in kept)


def test_unicode_edge_cases():
    ids = {}
    for line in open(os.path.join(DATA, "test_clean.jsonl"), encoding="utf-8"):
        rec = json.loads(line)
        ids[rec["text"]] = rec["id"]
    # case-folding (sharp s) and NFKC (ligature) matches must be removed, near misses kept
    assert "DIE STRASSE WAR LAUT [order 12]" not in ids
    assert "The filter was easy to replace (order 5)" not in ids
    assert "Die Strasse war laut (order 13)" in ids
    assert "The filter wasn't easy to replace (order 5)" in ids
    assert "The \ufb01lter was hard to replace (order 5)" in ids


def test_inputs_unchanged():
    out = subprocess.run("cd /app && find data -type f ! -name test_clean.jsonl | sort | xargs sha256sum | sha256sum",
                         shell=True, capture_output=True, text=True).stdout.split()[0]
    assert out == "a2063b00b3490f2deb24ac1b1e9a6457eaeb14e7ea888045317de50aa45b91fa"
