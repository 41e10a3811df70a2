import csv
import hashlib
import json
from decimal import Decimal

ORDERS = "/app/data/orders.csv"


def clean_rows():
    with open(ORDERS, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        raw = [tuple(r) for r in reader]
    seen, rows = set(), []
    for r in raw:
        if r not in seen:
            seen.add(r)
            rows.append(dict(zip(header, r)))
    return raw, rows


def expected():
    raw, rows = clean_rows()
    missing = sum(1 for r in rows if not r["quantity"].strip())
    table = {}
    for r in rows:
        if not r["quantity"].strip() or r["status"].strip().lower() != "completed":
            continue
        d = r["order_date"].strip()
        if "/" in d:
            day, mon, year = d.split("/")
            month = "%s-%s" % (year, mon.zfill(2))
        else:
            month = d[:7]
        region = r["region"].strip().lower().title()
        price = Decimal(r["unit_price"].strip().lstrip("$").replace(",", ""))
        key = (month, region)
        cnt, rev = table.get(key, (0, Decimal(0)))
        table[key] = (cnt + 1, rev + int(r["quantity"]) * price)
    lines = [["month", "region", "orders", "revenue"]]
    for (m, reg) in sorted(table):
        cnt, rev = table[(m, reg)]
        lines.append([m, reg, str(cnt), str(rev.quantize(Decimal("0.01")))])
    total = sum(v[1] for v in table.values())
    counted = sum(v[0] for v in table.values())
    return lines, {"total_revenue": total, "counted_orders": counted,
                   "duplicate_rows_removed": len(raw) - len(rows), "rows_missing_quantity": missing}


def read_report():
    with open("/app/report/monthly_revenue.csv", newline="") as fh:
        return [r for r in csv.reader(fh)]


def test_header_and_shape():
    got = read_report()
    assert got[0] == ["month", "region", "orders", "revenue"]
    assert len(got) == len(expected()[0])
    assert {r[1] for r in got[1:]} == {"North", "South", "East", "West"}


def test_rows_exact():
    assert read_report() == expected()[0]


def test_day_first_dates():
    by_key = {(r[0], r[1]): r for r in read_report()[1:]}
    # 03/04/2024 is 3 April and 12/01/2024 is 12 January
    exp = {(r[0], r[1]): r for r in expected()[0][1:]}
    assert by_key[("2024-04", "North")] == exp[("2024-04", "North")]
    assert by_key[("2024-01", "South")] == exp[("2024-01", "South")]
    assert ("2024-12", "South") not in by_key
    assert min(k[0] for k in by_key) == "2024-01" and max(k[0] for k in by_key) == "2024-06"


def test_summary():
    got = json.load(open("/app/report/summary.json"))
    _, exp = expected()
    assert got["counted_orders"] == exp["counted_orders"]
    assert got["duplicate_rows_removed"] == exp["duplicate_rows_removed"] == 40
    assert got["rows_missing_quantity"] == exp["rows_missing_quantity"]
    assert abs(Decimal(str(got["total_revenue"])) - exp["total_revenue"]) < Decimal("0.006")


def test_input_unchanged():
    assert hashlib.sha256(open(ORDERS, "rb").read()).hexdigest() == "7076cbdcb1ad444125957f9f5bf6eb3ca20489eaa92e62509a834b80ee187da0"
