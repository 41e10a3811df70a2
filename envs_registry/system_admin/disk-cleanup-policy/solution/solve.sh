#!/bin/bash
# Reference solution: select files with find (no symlink following), delete them, then report.
set -euo pipefail
SRV=/app/srv
LIST=$(mktemp)
{
  find "$SRV/cache" -type f ! -name .keep -print0
  # numbered rotations with mtime strictly before the cutoff (epoch seconds, UTC)
  CUTOFF=$(date -u -d '2024-04-01 00:00:00' +%s)
  find "$SRV/logs" -type f -regextype posix-extended -regex '.*/[^/]*\.log\.[0-9]+(\.gz)?' -printf '%T@\t%p\0' |
    while IFS=$'\t' read -r -d '' mt path; do
      if awk -v a="$mt" -v b="$CUTOFF" 'BEGIN{exit !(a < b)}'; then printf '%s\0' "$path"; fi
    done
  find "$SRV" -type f -regextype posix-extended -regex '.*/core(\.[0-9]+)?' -print0
} | sort -zu > "$LIST"

: > /app/deleted_files.txt
freed=0
while IFS= read -r -d '' f; do
  size=$(stat -c %s "$f")
  freed=$(( freed + size ))
  printf '%s\n' "$f" >> /app/deleted_files.txt
  rm -f -- "$f"
done < "$LIST"
LC_ALL=C sort -o /app/deleted_files.txt /app/deleted_files.txt
echo "$freed" > /app/freed_bytes.txt

find "$SRV" -mindepth 1 -maxdepth 1 -type d -print0 | while IFS= read -r -d '' d; do
  printf '%s\t%s\n' "$(du -sb "$d" | cut -f1)" "$(basename "$d")"
done | LC_ALL=C sort -t$'\t' -k1,1nr -k2,2 > /app/du_after.txt
rm -f "$LIST"
cat /app/du_after.txt /app/freed_bytes.txt
wc -l /app/deleted_files.txt
