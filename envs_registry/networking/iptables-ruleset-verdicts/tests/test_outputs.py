import csv
import hashlib
import os

INPUT_HASHES = {
    "edge-fw-2.rules": "7416153dd4f88532ac313449c0b0d3439687cf535d00649c4863f153ac527de5",
    "packets.csv": "d2755ddd3b75dd3badf04c286caa0d054c9967b216754bf149a4edf7d13d385e",
}

EXPECTED = {
    "p01": ("ACCEPT", "INPUT#1"),
    "p02": ("ACCEPT", "INPUT#2"),
    "p03": ("DROP", "SSH_GUARD#1"),
    "p04": ("ACCEPT", "SSH_GUARD#2"),
    "p05": ("ACCEPT", "SSH_GUARD#3"),
    "p06": ("DROP", "LOG_DROP#2"),
    "p07": ("ACCEPT", "SSH_GUARD#2"),
    "p08": ("DROP", "LOG_DROP#2"),
    "p09": ("REJECT", "MGMT#2"),
    "p10": ("ACCEPT", "MGMT#1"),
    "p11": ("ACCEPT", "INPUT#4"),
    "p12": ("REJECT", "WEB#2"),
    "p13": ("DROP", "WEB#1"),
    "p14": ("ACCEPT", "WEB#4"),
    "p15": ("DROP", "WEB#3"),
    "p16": ("DROP", "LOG_DROP#2"),
    "p17": ("DROP", "WEB#1"),
    "p18": ("ACCEPT", "INPUT#7"),
    "p19": ("REJECT", "INPUT#8"),
    "p20": ("DROP", "LOG_DROP#2"),
    "p21": ("DROP", "INPUT#3"),
    "p22": ("ACCEPT", "INPUT#2"),
    "p23": ("ACCEPT", "FORWARD#2"),
    "p24": ("ACCEPT", "FORWARD#3"),
    "p25": ("DROP", "FORWARD#policy"),
    "p26": ("ACCEPT", "FORWARD#4"),
    "p27": ("DROP", "FORWARD#policy"),
    "p28": ("ACCEPT", "FORWARD#1"),
    "p29": ("ACCEPT", "OUTPUT#1"),
    "p30": ("REJECT", "OUTPUT#2"),
    "p31": ("DROP", "OUTPUT#3"),
    "p32": ("ACCEPT", "OUTPUT#4"),
    "p33": ("DROP", "OUTPUT#5"),
    "p34": ("DROP", "OUTPUT#5"),
    "p35": ("ACCEPT", "OUTPUT#policy"),
    "p36": ("ACCEPT", "OUTPUT#policy"),
    "p37": ("ACCEPT", "SSH_GUARD#2"),
    "p38": ("DROP", "WEB#1"),
    "p39": ("ACCEPT", "FORWARD#2"),
    "p40": ("DROP", "LOG_DROP#2"),
}


def load():
    with open("/app/fw/verdicts.csv", newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
    assert rows[0] == ["id", "verdict", "rule"], rows[0]
    return rows[1:]


def check(ids):
    got = {r[0]: (r[1], r[2]) for r in load()}
    wrong = {i: (got.get(i), EXPECTED[i]) for i in ids if got.get(i) != EXPECTED[i]}
    assert not wrong, f"(got, expected): {wrong}"


def test_inputs_unchanged():
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join("/app/fw", name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_file_shape_and_order():
    rows = load()
    assert [r[0] for r in rows] == sorted(EXPECTED), "one row per packet, input order"
    assert all(len(r) == 3 for r in rows)


def test_input_chain_basic_rules():
    # loopback, conntrack states, ICMP rule with a quoted comment, DNS rules
    check(["p01", "p02", "p11", "p18", "p19", "p20", "p21", "p22"])


def test_user_chains_jump_and_return():
    # SSH_GUARD / MGMT / LOG_DROP, including RETURN back into INPUT
    check(["p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10", "p37", "p40"])


def test_web_chain_ports_and_negation():
    check(["p12", "p13", "p14", "p15", "p16", "p17", "p38"])


def test_forward_chain_ignores_other_tables():
    check(["p23", "p24", "p25", "p26", "p27", "p28", "p39"])


def test_output_chain():
    check(["p29", "p30", "p31", "p32", "p33", "p34", "p35", "p36"])
