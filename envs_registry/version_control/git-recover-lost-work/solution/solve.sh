#!/bin/bash
# Reference solution: find unreachable commits with fsck, recreate the branch at the amended tip,
# re-apply the right dropped stash on main and commit it.
set -euo pipefail
cd /app/webapp
git checkout -q main

dangling=$(git fsck --no-reflogs --unreachable 2>/dev/null | awk '$2 == "commit" {print $3}')
tip=""; stash=""
for c in $dangling; do
  subj=$(git log -1 --format=%s "$c")
  [ "$subj" = "csv-export: add --delimiter flag" ] && tip=$c
  if [ "$(git rev-list --parents -n 1 "$c" | wc -w)" -ge 3 ] && \
     git diff --name-only "$c^1" "$c" | grep -qx 'docs/guide.md'; then stash=$c; fi
done
echo "feature tip: $tip"; echo "docs stash: $stash"
git log --oneline -4 "$tip"
git branch feature/csv-export "$tip"

git stash apply "$stash"
git add docs/guide.md docs/faq.md
git commit -q -m "docs: restore dropped guide edits"
git log --oneline -3
git status --short
