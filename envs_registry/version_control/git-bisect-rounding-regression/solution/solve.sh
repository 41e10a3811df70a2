#!/bin/bash
# Reference solution: automated bisect that skips broken commits, then a one-line fix commit.
set -euo pipefail
cd /app/pricing
cat > /tmp/bisect-check.sh <<'SH'
#!/bin/bash
# exit 0 = good, 1 = bad, 125 = cannot test (crash)
out=$(python3 bin/invoice_total.py samples/invoice-17.json 2>/dev/null) || exit 125
[ "$out" = "107.32" ]
SH
chmod +x /tmp/bisect-check.sh
git bisect start main v1.2.0 >/dev/null
git bisect run /tmp/bisect-check.sh | tee /tmp/bisect.log
bad=$(git rev-parse refs/bisect/bad)
git bisect reset >/dev/null 2>&1
echo "$bad" > /app/first_bad_commit.txt
git show --stat "$bad" | head -20

git checkout -q main
sed -i 's/ROUND_HALF_EVEN/ROUND_HALF_UP/g' pricing/money.py
python3 bin/invoice_total.py samples/invoice-17.json
python3 -m pytest -q -p no:cacheprovider tests
find . -name __pycache__ -prune -exec rm -rf {} +
git commit -q -am "Restore round-half-up in to_money (regression from ${bad:0:7})"
git log --oneline -3
