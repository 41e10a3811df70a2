#!/bin/bash
set -euo pipefail
cd /app
python3 - <<'PY'
import csv, ipaddress, shlex

def parse_rules(path):
    chains, policies, table = {}, {}, None
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
            continue
        if table != "filter" or line == "COMMIT":
            continue
        if line.startswith(":"):
            name, pol = line[1:].split()[:2]
            chains[name] = []
            policies[name] = pol
            continue
        toks = shlex.split(line)
        assert toks[0] == "-A"
        chains[toks[1]].append(parse_rule(toks[2:]))
    return chains, policies

def parse_rule(toks):
    rule = {"conds": [], "target": None}
    i, neg = 0, False
    while i < len(toks):
        t = toks[i]
        if t == "!":
            neg = True; i += 1; continue
        if t in ("-j", "--jump"):
            rule["target"] = toks[i + 1]; i += 2
            while i < len(toks) and toks[i].startswith("--"):  # target options
                i += 2
            continue
        if t == "-m":
            i += 2; continue
        if t in ("-s", "-d", "-p", "-i", "-o", "--sport", "--dport", "--sports", "--dports", "--ctstate"):
            rule["conds"].append((t, toks[i + 1], neg)); i += 2; neg = False; continue
        if t in ("--limit", "--comment", "--limit-burst"):
            i += 2; continue
        raise SystemExit(f"unknown token {t} in {toks}")
    return rule

def port_in(spec, port):
    if port is None:
        return False
    for part in spec.split(","):
        if ":" in part:
            lo, hi = part.split(":")
            if int(lo or 0) <= port <= int(hi or 65535):
                return True
        elif int(part) == port:
            return True
    return False

def iface_match(spec, iface):
    if spec.endswith("+"):
        return iface.startswith(spec[:-1])
    return iface == spec

def cond_match(c, pkt):
    opt, val, neg = c
    if opt == "-s":
        r = ipaddress.ip_address(pkt["src"]) in ipaddress.ip_network(val, strict=False)
    elif opt == "-d":
        r = ipaddress.ip_address(pkt["dst"]) in ipaddress.ip_network(val, strict=False)
    elif opt == "-p":
        r = val == "all" or pkt["proto"] == val
    elif opt == "-i":
        r = iface_match(val, pkt["in_iface"])
    elif opt == "-o":
        r = iface_match(val, pkt["out_iface"])
    elif opt in ("--sport", "--sports"):
        r = port_in(val, pkt["sport"])
    elif opt in ("--dport", "--dports"):
        r = port_in(val, pkt["dport"])
    elif opt == "--ctstate":
        r = pkt["state"] in val.split(",")
    return r != neg

def run_chain(chains, name, pkt):
    for idx, rule in enumerate(chains[name], 1):
        if not all(cond_match(c, pkt) for c in rule["conds"]):
            continue
        t = rule["target"]
        if t in ("ACCEPT", "DROP", "REJECT"):
            return t, f"{name}#{idx}"
        if t == "RETURN":
            return None
        if t == "LOG" or t is None:
            continue
        res = run_chain(chains, t, pkt)
        if res is not None:
            return res
    return None

chains, policies = parse_rules("/app/fw/edge-fw-2.rules")
out = []
with open("/app/fw/packets.csv") as f:
    for row in csv.DictReader(f):
        row["sport"] = int(row["sport"]) if row["sport"] else None
        row["dport"] = int(row["dport"]) if row["dport"] else None
        res = run_chain(chains, row["chain"], row)
        if res is None:
            res = (policies[row["chain"]], f"{row['chain']}#policy")
        out.append((row["id"],) + res)
with open("/app/fw/verdicts.csv", "w") as f:
    f.write("id,verdict,rule\n")
    for r in out:
        f.write(",".join(r) + "\n")
PY
cat /app/fw/verdicts.csv
