"""Builds /app/pricing deterministically: fixed identities and dates give stable commit hashes."""
import json
import os
import subprocess
from pathlib import Path

REPO = Path("/app/pricing")
REPO.mkdir(parents=True)
os.chdir(REPO)
T = [1714550400]  # 2024-05-01T08:00:00Z
PEOPLE = {
    "ana": ("Ana Kovac", "ana@example.com"),
    "ben": ("Ben Osei", "ben@example.com"),
    "lin": ("Lin Zhao", "lin@example.com"),
}


def git(*args):
    subprocess.run(["git", *args], check=True, stdout=subprocess.DEVNULL)


def write(path, text):
    p = REPO / path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def edit(path, old, new, count=1):
    p = REPO / path
    s = p.read_text()
    assert s.count(old) >= 1, (path, old)
    p.write_text(s.replace(old, new, count))


def commit(who, msg, tag=None, add=True):
    T[0] += 3 * 3600 + 17 * 60
    name, email = PEOPLE[who]
    env = dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name,
               GIT_COMMITTER_EMAIL=email, GIT_AUTHOR_DATE=f"@{T[0]} +0000", GIT_COMMITTER_DATE=f"@{T[0]} +0000")
    if add:
        git("add", "-A")
    subprocess.run(["git", "commit", "-q", "-m", msg], check=True, env=env)
    if tag:
        subprocess.run(["git", "tag", "-a", tag, "-m", f"Release {tag}"], check=True, env=env)


def sample(n, lines, tax="20", coupon=None):
    inv = {"id": f"INV-{n:04d}", "tax_rate": tax, "lines": lines}
    if coupon:
        inv["coupon"] = coupon
    write(f"samples/invoice-{n:02d}.json", json.dumps(inv, indent=2) + "\n")


def L(sku, price, qty, disc=None):
    d = {"sku": sku, "unit_price": price, "qty": qty}
    if disc is not None:
        d["discount_pct"] = disc
    return d


subprocess.run(["git", "init", "-q", "-b", "main"], check=True)

# 1
write("README.md", "# pricing\n\nInvoice total calculator.\n")
write("pricing/__init__.py", '__version__ = "1.0.0"\n')
write("pricing/invoice.py", '''"""Invoice arithmetic. All money values are Decimal, rounded to cents."""
from decimal import Decimal, ROUND_HALF_UP

CENT = Decimal("0.01")


def _money(value):
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(line):
    gross = Decimal(line["unit_price"]) * line["qty"]
    return _money(gross)


def compute_total(invoice):
    subtotal = sum((line_total(l) for l in invoice["lines"]), Decimal("0"))
    tax = _money(subtotal * Decimal(invoice["tax_rate"]) / 100)
    return _money(subtotal + tax)
''')
write("bin/invoice_total.py", '''#!/usr/bin/env python3
"""Print the total of an invoice JSON file."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pricing.invoice import compute_total  # noqa: E402


def main(argv):
    with open(argv[1]) as fh:
        invoice = json.load(fh)
    print(compute_total(invoice))


if __name__ == "__main__":
    main(sys.argv)
''')
write("tests/test_invoice.py", '''import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pricing.invoice import compute_total, line_total  # noqa: E402


def test_line_total():
    assert line_total({"unit_price": "2.50", "qty": 4}) == Decimal("10.00")


def test_total_with_tax():
    inv = {"tax_rate": "20", "lines": [{"unit_price": "10.00", "qty": 3}]}
    assert compute_total(inv) == Decimal("36.00")
''')
sample(1, [L("A-1", "10.00", 3), L("B-2", "4.99", 2)])
sample(2, [L("C-3", "120.00", 1)], tax="7")
sample(3, [L("D-4", "0.99", 13), L("E-5", "15.49", 2)], tax="19")
commit("ana", "Initial invoice calculator")

# 2
sample(4, [L("F-6", "33.33", 3)])
sample(5, [L("G-7", "7.77", 7)], tax="0")
sample(6, [L("H-8", "19.90", 5), L("I-9", "2.05", 11)], tax="10")
commit("ana", "Add more sample invoices")

# 3
edit("bin/invoice_total.py", '''    print(compute_total(invoice))''', '''    if "--verbose" in argv:
        from pricing.invoice import line_total
        for line in invoice["lines"]:
            print(f"{line['sku']}: {line_total(line)}", file=sys.stderr)
    print(compute_total(invoice))''')
commit("ben", "CLI: add --verbose to show line totals")

# 4
edit("README.md", "Invoice total calculator.\n", "Invoice total calculator.\n\nUsage: `python3 bin/invoice_total.py samples/invoice-01.json`\n")
commit("ben", "Document CLI usage")

# 5
edit("pricing/invoice.py", '''    gross = Decimal(line["unit_price"]) * line["qty"]
    return _money(gross)''', '''    gross = Decimal(line["unit_price"]) * line["qty"]
    discount = gross * Decimal(line.get("discount_pct", "0")) / 100
    return _money(gross - discount)''')
commit("lin", "Support per-line percentage discounts")

# 6
for n, lines, tax in [
    (7, [L("J-1", "49.95", 2, "10")], "20"),
    (8, [L("K-2", "12.34", 5, "15")], "21"),
    (9, [L("L-3", "8.10", 9)], "20"),
    (10, [L("M-4", "99.99", 1, "33")], "20"),
    (11, [L("N-5", "3.15", 6), L("O-6", "1.01", 50)], "5"),
    (12, [L("P-7", "250.00", 2, "12.5")], "20"),
    (13, [L("Q-8", "14.70", 3)], "8"),
    (14, [L("R-9", "6.66", 6, "5")], "20"),
    (15, [L("S-1", "18.00", 4)], "25"),
    (16, [L("T-2", "2.22", 22, "2")], "20"),
    (17, [L("U-3", "10.25", 1, "10"), L("V-4", "40.10", 2)], "20"),
]:
    sample(n, lines, tax)
edit("tests/test_invoice.py", '''def test_total_with_tax():''', '''def test_line_discount():
    assert line_total({"unit_price": "20.00", "qty": 2, "discount_pct": "25"}) == Decimal("30.00")


def test_total_with_tax():''')
commit("lin", "Add discount samples and tests", tag="v1.2.0")

# 7
write(".ci.yml", "test:\n  script:\n    - python3 -m pytest -q tests\n")
commit("ben", "Add CI pipeline definition")

# 8
edit("pricing/invoice.py", '''    subtotal = sum((line_total(l) for l in invoice["lines"]), Decimal("0"))
''', '''    subtotal = sum((line_total(l) for l in invoice["lines"]), Decimal("0"))
    subtotal = apply_coupon(subtotal, invoice.get("coupon"))
''')
edit("pricing/invoice.py", '''def compute_total(invoice):''', '''def apply_coupon(subtotal, coupon):
    if not coupon:
        return subtotal
    if coupon["type"] == "fixed":
        return max(subtotal - Decimal(coupon["value"]), Decimal("0"))
    raise ValueError(f"unknown coupon type {coupon['type']!r}")


def compute_total(invoice):''')
commit("ana", "Support fixed-amount coupons")

# 9
edit("pricing/invoice.py", '''    raise ValueError(f"unknown coupon type''', '''    if coupon["type"] == "percent":
        return _money(subtotal * (100 - Decimal(coupon["value"])) / 100)
    raise ValueError(f"unknown coupon type''')
commit("ana", "Support percentage coupons")

# 10
edit("tests/test_invoice.py", '''def test_total_with_tax():''', '''def test_fixed_coupon():
    inv = {"tax_rate": "0", "lines": [{"unit_price": "10.00", "qty": 1}], "coupon": {"type": "fixed", "value": "15"}}
    assert compute_total(inv) == Decimal("0.00")


def test_percent_coupon():
    inv = {"tax_rate": "0", "lines": [{"unit_price": "80.00", "qty": 1}], "coupon": {"type": "percent", "value": "10"}}
    assert compute_total(inv) == Decimal("72.00")


def test_total_with_tax():''')
sample(18, [L("W-5", "59.00", 2)], "20", {"type": "fixed", "value": "10.00"})
sample(19, [L("X-6", "15.55", 3)], "20", {"type": "percent", "value": "15"})
commit("ana", "Coupon tests and samples")

# 11
edit("README.md", "Usage:", "Rounding: every line total, the tax amount and the final total are rounded to cents,\nhalves rounded up (0.005 -> 0.01).\n\nUsage:")
commit("lin", "Clarify rounding rules in README")

# 12 (broken: new module not added)
write("pricing/cli.py", '''"""Command line parsing for bin/invoice_total.py."""
import argparse


def parse_args(argv):
    p = argparse.ArgumentParser(description="Print the total of an invoice JSON file.")
    p.add_argument("invoice")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)
''')
write("bin/invoice_total.py", '''#!/usr/bin/env python3
"""Print the total of an invoice JSON file."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pricing.cli import parse_args  # noqa: E402
from pricing.invoice import compute_total, line_total  # noqa: E402


def main(argv):
    args = parse_args(argv[1:])
    with open(args.invoice) as fh:
        invoice = json.load(fh)
    if args.verbose:
        for line in invoice["lines"]:
            print(f"{line['sku']}: {line_total(line)}", file=sys.stderr)
    print(compute_total(invoice))


if __name__ == "__main__":
    main(sys.argv)
''')
git("add", "bin/invoice_total.py")
commit("ben", "Move CLI parsing to argparse", add=False)

# 13
commit("ben", "Add forgotten pricing/cli.py")

# 14
edit("pricing/cli.py", '''    p.add_argument("--verbose", action="store_true")''', '''    p.add_argument("--verbose", action="store_true")
    p.add_argument("--currency", default=None, help="append a currency code to the output")''')
edit("bin/invoice_total.py", '''    print(compute_total(invoice))''', '''    total = compute_total(invoice)
    print(f"{total} {args.currency}" if args.currency else total)''')
commit("ben", "CLI: optional --currency suffix")

# 15
edit("pricing/invoice.py", '''    discount = gross * Decimal(line.get("discount_pct", "0")) / 100''', '''    pct = Decimal(line.get("discount_pct", "0"))
    if line["qty"] >= BULK_QTY:
        pct += BULK_EXTRA_PCT
    discount = gross * pct / 100''')
edit("pricing/invoice.py", '''CENT = Decimal("0.01")
''', '''CENT = Decimal("0.01")
BULK_QTY = 100          # lines with at least this many units ...
BULK_EXTRA_PCT = Decimal("5")  # ... get this many extra percent off
''')
commit("lin", "Bulk discount: extra 5% off lines with 100+ units")

# 16
edit("tests/test_invoice.py", '''def test_total_with_tax():''', '''def test_bulk_discount():
    assert line_total({"unit_price": "1.00", "qty": 100}) == Decimal("95.00")
    assert line_total({"unit_price": "1.00", "qty": 99}) == Decimal("99.00")


def test_total_with_tax():''')
sample(20, [L("Y-7", "0.45", 150, "10"), L("Z-8", "3.00", 10)], "20")
edit("pricing/invoice.py", "BULK_QTY = 100 ", "BULK_MIN_QTY = 100 ")
commit("lin", "Tests and sample for bulk discount; clearer constant name")

# 16b
edit("pricing/invoice.py", "if line[\"qty\"] >= BULK_QTY:", "if line[\"qty\"] >= BULK_MIN_QTY:")
commit("lin", "Fix NameError after renaming BULK_QTY")

# 17 REGRESSION: helper moved to money.py with a different default rounding mode
write("pricing/money.py", '''"""Money helpers shared by the pricing modules."""
from decimal import Decimal, ROUND_HALF_EVEN

CENT = Decimal("0.01")


def to_money(value, places=CENT, rounding=ROUND_HALF_EVEN):
    """Quantize `value` to `places` (cents by default)."""
    return Decimal(value).quantize(places, rounding=rounding)
''')
edit("pricing/invoice.py", '''from decimal import Decimal, ROUND_HALF_UP

CENT = Decimal("0.01")
''', '''from decimal import Decimal, ROUND_HALF_UP

from .money import CENT, to_money
''')
edit("pricing/invoice.py", '''def _money(value):
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


''', "")
p = REPO / "pricing/invoice.py"
p.write_text(p.read_text().replace("_money(", "to_money("))
commit("ben", "Refactor: move money helpers into pricing/money.py")

# 18
sample(21, [L("AA-1", "5.00", 8)], "20", {"type": "fixed", "value": "2.50"})
sample(22, [L("AB-2", "12.00", 120)], "10")
commit("ana", "More sample invoices")

# 19 (decoy: touches the rounding import)
edit("pricing/invoice.py", '''from decimal import Decimal, ROUND_HALF_UP
''', '''from decimal import Decimal
''')
commit("lin", "Tidy rounding-related imports")

# 20
edit("pricing/invoice.py", "def line_total(line):", "def line_total(line: dict) -> Decimal:")
edit("pricing/invoice.py", "def apply_coupon(subtotal, coupon):", "def apply_coupon(subtotal: Decimal, coupon) -> Decimal:")
edit("pricing/invoice.py", "def compute_total(invoice):", "def compute_total(invoice: dict) -> Decimal:")
commit("lin", "Add type hints")

# 21 (broken: syntax error)
edit("pricing/invoice.py", '''    tax = to_money(subtotal * Decimal(invoice["tax_rate"]) / 100)''', '''    rate = Decimal(str(invoice["tax_rate"]).rstrip("%")
    tax = to_money(subtotal * rate / 100)''')
commit("ana", "WIP: accept tax rates written as percent strings")

# 22
edit("pricing/invoice.py", '''    rate = Decimal(str(invoice["tax_rate"]).rstrip("%")''', '''    rate = Decimal(str(invoice["tax_rate"]).rstrip("%"))''')
commit("ana", "Fix syntax error in tax rate parsing")

# 23
edit("pricing/cli.py", '''    p.add_argument("--currency"''', '''    p.add_argument("--json", action="store_true", help="print a JSON object instead of a bare number")
    p.add_argument("--currency"''')
edit("bin/invoice_total.py", '''    total = compute_total(invoice)
''', '''    total = compute_total(invoice)
    if args.json:
        print(json.dumps({"id": invoice.get("id"), "total": str(total)}))
        return
''')
commit("ben", "CLI: --json output")

# 24
edit("README.md", "Usage: `python3 bin/invoice_total.py samples/invoice-01.json`\n",
     "Usage: `python3 bin/invoice_total.py samples/invoice-01.json [--verbose] [--currency EUR] [--json]`\n")
commit("ben", "README: document CLI flags")

# 25
edit("tests/test_invoice.py", '''def test_total_with_tax():''', '''def test_percent_tax_string():
    inv = {"tax_rate": "20%", "lines": [{"unit_price": "10.00", "qty": 1}]}
    assert compute_total(inv) == Decimal("12.00")


def test_total_with_tax():''')
commit("ana", "Test percent tax strings")

# 26
write("pricing/__init__.py", '__version__ = "1.3.0"\n')
commit("lin", "Bump version to 1.3.0")
subprocess.run(["git", "gc", "-q"], check=True)
