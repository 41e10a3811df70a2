#!/bin/bash
# Builds /app/webapp deterministically, then "loses" a branch and two stashes (reflogs expired, no gc).
set -euo pipefail
R=/app/webapp
mkdir -p "$R" && cd "$R"
git init -q -b main
git config gc.auto 0
T=1719820800   # 2024-07-01T08:00:00Z
who() { export GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$2" GIT_COMMITTER_NAME="$1" GIT_COMMITTER_EMAIL="$2"; }
tick() { T=$((T + 4000)); export GIT_AUTHOR_DATE="@$T +0000" GIT_COMMITTER_DATE="@$T +0000"; }
c() { tick; git add -A; git commit -q -m "$1"; }
w() { mkdir -p "$(dirname "$1")"; cat > "$1"; }

who "Sofia Lind" "sofia@example.com"
w README.md <<'X'
# webapp reports

Generates sales reports from the orders database.
X
w app/__init__.py <<'X'
X
w app/report.py <<'X'
"""Report generation."""


def build_rows(orders):
    """Aggregate orders into (region, count, revenue) rows sorted by region."""
    agg = {}
    for o in orders:
        count, revenue = agg.get(o["region"], (0, 0.0))
        agg[o["region"]] = (count + 1, revenue + o["amount"])
    return [(r, c, round(v, 2)) for r, (c, v) in sorted(agg.items())]
X
w app/cli.py <<'X'
"""Command line entry point: python3 -m app.cli orders.json"""
import json
import sys

from .report import build_rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as fh:
        rows = build_rows(json.load(fh))
    for region, count, revenue in rows:
        print(f"{region:<10} {count:>5} {revenue:>12.2f}")


if __name__ == "__main__":
    main()
X
w docs/guide.md <<'X'
# User guide

## Installation

Copy the repository and run `python3 -m app.cli orders.json`.

## Input format

A JSON list of orders, each with `region` and `amount`.

## Output

One line per region: name, order count, revenue.
X
c "Initial report generator"

w app/report.py <<'X'
"""Report generation."""


def build_rows(orders, min_amount=0.0):
    """Aggregate orders into (region, count, revenue) rows sorted by region.

    Orders below `min_amount` are ignored.
    """
    agg = {}
    for o in orders:
        if o["amount"] < min_amount:
            continue
        count, revenue = agg.get(o["region"], (0, 0.0))
        agg[o["region"]] = (count + 1, revenue + o["amount"])
    return [(r, c, round(v, 2)) for r, (c, v) in sorted(agg.items())]
X
c "Allow filtering out small orders"

who "Tom Becker" "tom@example.com"
w tests/test_report.py <<'X'
from app.report import build_rows


def test_build_rows():
    orders = [{"region": "b", "amount": 2.5}, {"region": "a", "amount": 1}, {"region": "b", "amount": 1}]
    assert build_rows(orders) == [("a", 1, 1.0), ("b", 2, 3.5)]
X
c "Add report tests"

w .gitignore <<'X'
__pycache__/
*.pyc
/out/
X
c "Ignore Python caches and output dir"
BASE_FEATURE=$(git rev-parse HEAD)

# ---- feature/csv-export (will be lost) ----
who "Sofia Lind" "sofia@example.com"
git checkout -q -b feature/csv-export
w app/export.py <<'X'
"""Export report rows to CSV."""
import csv
import io


class CsvExporter:
    header = ("region", "orders", "revenue")

    def render(self, rows):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(rows)
        return buf.getvalue()
X
c "csv-export: add CsvExporter class"

w app/cli.py <<'X'
"""Command line entry point: python3 -m app.cli orders.json [--format text|csv]"""
import argparse
import json

from .export import CsvExporter
from .report import build_rows


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("orders")
    p.add_argument("--format", choices=["text", "csv"], default="text")
    args = p.parse_args(argv)
    with open(args.orders) as fh:
        rows = build_rows(json.load(fh))
    if args.format == "csv":
        print(CsvExporter().render(rows), end="")
        return
    for region, count, revenue in rows:
        print(f"{region:<10} {count:>5} {revenue:>12.2f}")


if __name__ == "__main__":
    main()
X
c "csv-export: wire --format csv into the CLI"

w app/export.py <<'X'
"""Export report rows to CSV."""
import csv
import io


class CsvExporter:
    header = ("region", "orders", "revenue")

    def __init__(self, delimiter=","):
        self.delimiter = delimiter

    def render(self, rows):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(rows)
        return buf.getvalue()
X
sed -i 's/    p.add_argument("--format", choices=\["text", "csv"\], default="text")/&\n    p.add_argument("--delimiter", default=",")/' app/cli.py
sed -i 's/CsvExporter().render(rows)/CsvExporter(args.delimiter).render(rows)/' app/cli.py
c "csv-export: add --delimiter flag (WIP)"

# amend: the WIP version forgot to pass the delimiter to csv.writer
sed -i 's/writer = csv.writer(buf, lineterminator="\\n")/writer = csv.writer(buf, delimiter=self.delimiter, lineterminator="\\n")/' app/export.py
w tests/test_export.py <<'X'
from app.export import CsvExporter


def test_semicolon():
    out = CsvExporter(";").render([("north", 2, 10.5)])
    assert out == "region;orders;revenue\nnorth;2;10.5\n"
X
tick; git add -A; git commit -q --amend -m "csv-export: add --delimiter flag"

# ---- an abandoned experiment (also lost) ----
git checkout -q -b experiment/orjson "$BASE_FEATURE"
who "Tom Becker" "tom@example.com"
sed -i 's/^import json$/import orjson as json  # experiment/' app/cli.py
c "experiment: try orjson for faster parsing"

# ---- main moves on ----
git checkout -q main
who "Tom Becker" "tom@example.com"
w docs/guide.md <<'X'
# User guide

## Installation

Copy the repository and run `python3 -m app.cli orders.json`.

## Input format

A JSON list of orders, each with `region` and `amount`.

## Output

One line per region: name, order count, revenue.
X
w app/report.py <<'X'
"""Report generation."""


def build_rows(orders, min_amount=0.0):
    """Aggregate orders into (region, count, revenue) rows sorted by region.

    Orders below `min_amount` are ignored; regions are case-insensitive.
    """
    agg = {}
    for o in orders:
        if o["amount"] < min_amount:
            continue
        region = o["region"].lower()
        count, revenue = agg.get(region, (0, 0.0))
        agg[region] = (count + 1, revenue + o["amount"])
    return [(r, c, round(v, 2)) for r, (c, v) in sorted(agg.items())]
X
c "Treat region names case-insensitively"

# stash #1 (decoy): logging experiment, later dropped
who "Tom Becker" "tom@example.com"
sed -i 's/^import sys$/import logging\nimport sys/' app/cli.py
sed -i 's/^    with open(argv\[0\]) as fh:$/    logging.basicConfig(level=logging.DEBUG)\n    with open(argv[0]) as fh:/' app/cli.py
tick; git stash push -q -m "logging experiments"

# stash #2: documentation work, later dropped by mistake
who "Sofia Lind" "sofia@example.com"
w docs/guide.md <<'X'
# User guide

## Installation

Copy the repository and run `python3 -m app.cli orders.json`.
Python 3.9 or newer is required; there are no third-party dependencies.

## Input format

A JSON list of orders, each with `region` and `amount`.
Region names are case-insensitive: `North` and `north` are the same region.

## Output

One line per region: name, order count, revenue.
X
w docs/faq.md <<'X'
# FAQ

**Why is my region listed in lower case?**
Regions are compared case-insensitively and printed in lower case.

**Can I skip tiny orders?**
Yes: `build_rows(orders, min_amount=5)` ignores orders below 5.
X
git add docs/faq.md
tick; git stash push -q -m "guide: requirements and region notes"

# main gets one more commit touching the same guide (different section)
who "Tom Becker" "tom@example.com"
w docs/guide.md <<'X'
# User guide

## Installation

Copy the repository and run `python3 -m app.cli orders.json`.

## Input format

A JSON list of orders, each with `region` and `amount`.

## Output

One line per region: name, order count, revenue.

## Troubleshooting

If the command prints nothing, check that the input file is a JSON *list*.
X
c "docs: add troubleshooting section"
w README.md <<'X'
# webapp reports

Generates sales reports from the orders database. See `docs/guide.md`.
X
c "README: link to the guide"

# ---- the accident ----
git stash drop -q stash@{0}
git stash drop -q stash@{0}
git branch -q -D feature/csv-export experiment/orjson
git reflog expire --expire=now --expire-unreachable=now --all
unset GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_AUTHOR_DATE GIT_COMMITTER_DATE
