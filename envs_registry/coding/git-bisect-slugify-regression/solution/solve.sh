#!/bin/bash
set -euo pipefail
cd /app/textkit
cat docs/ISSUE-142.md
git log --oneline | cat
good=$(git log --format=%H --grep='^Release 0.2.0$')
cat > /tmp/check_slug.sh <<'SH'
#!/bin/bash
# exit 125 (skip) when the package cannot even be imported
python3 -c 'import textkit' 2>/dev/null || exit 125
out=$(python3 -c 'from textkit import slugify; print(slugify("Crème Brûlée à la française"))')
[ "$out" = "creme-brulee-a-la-francaise" ]
SH
chmod +x /tmp/check_slug.sh
git bisect start HEAD "$good"
git bisect run /tmp/check_slug.sh | tee /tmp/bisect.log
bad=$(git rev-parse refs/bisect/bad)
git bisect reset
echo "$bad" > /app/bisect_result.txt
git show --stat "$bad" | cat

sed -i 's/unicodedata.normalize("NFC", text)/unicodedata.normalize("NFKD", text)/' textkit/_unicode.py
cat >> tests/test_slug.py <<'PY'


def test_accents_are_transliterated():
    # issue 142
    assert slugify("Crème Brûlée à la française") == "creme-brulee-a-la-francaise"
    assert slugify("ﬁnal Ærø") == "final-r"
PY
python3 -m pytest -q -p no:cacheprovider
git add -A
git commit -q -m "Fix issue 142: transliterate with NFKD again in to_ascii"
git status --porcelain
git log --oneline -3 | cat
