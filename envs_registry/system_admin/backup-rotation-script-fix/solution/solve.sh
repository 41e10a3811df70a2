#!/bin/bash
# Reference solution: rewrite backup.sh robustly, then run it for 2024-06-01.
set -euo pipefail
cat > /app/backup/backup.sh <<'SCRIPT'
#!/bin/bash
# Nightly project backups.
# Settings (environment): SRC_DIR, DEST_DIR, KEEP (archives kept per project), BACKUP_DATE (YYYY-MM-DD)
set -euo pipefail
SRC_DIR=${SRC_DIR:-/app/data/projects}
DEST_DIR=${DEST_DIR:-/app/backups}
KEEP=${KEEP:-3}
DATE=${BACKUP_DATE:-$(date +%F)}

if [ ! -d "$SRC_DIR" ]; then
    echo "backup.sh: source directory '$SRC_DIR' does not exist" >&2
    exit 1
fi
mkdir -p -- "$DEST_DIR"

rc=0
for path in "$SRC_DIR"/*; do
    [ -d "$path" ] && [ ! -L "$path" ] || continue
    project=$(basename -- "$path")
    archive="$DEST_DIR/${project}_${DATE}.tar.gz"
    echo "backing up $project -> $archive"
    tmp="$DEST_DIR/.${project}_${DATE}.tar.gz.part"
    if tar --exclude='*.tmp' --exclude='node_modules' --exclude='.cache' \
           -C "$SRC_DIR" -czf "$tmp" -- "$project"; then
        mv -f -- "$tmp" "$archive"
    else
        rm -f -- "$tmp"; echo "backup.sh: tar failed for $project" >&2; rc=1; continue
    fi

    # rotation: keep the $KEEP archives with the newest dates in their names
    mapfile -d '' -t archives < <(
        find "$DEST_DIR" -maxdepth 1 -type f -name "*.tar.gz" -print0 |
        while IFS= read -r -d '' f; do
            n=$(basename -- "$f")
            rest=${n#"${project}_"}
            [ "$rest" != "$n" ] && [[ $rest =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\.tar\.gz$ ]] && printf '%s\0' "$n"
        done | LC_ALL=C sort -z -r)
    for ((i = KEEP; i < ${#archives[@]}; i++)); do
        rm -f -- "$DEST_DIR/${archives[i]}"
    done
done

# checksum manifest of everything kept
(
    cd "$DEST_DIR"
    shopt -s nullglob
    files=(*.tar.gz)
    if [ ${#files[@]} -gt 0 ]; then
        printf '%s\0' "${files[@]}" | LC_ALL=C sort -z | xargs -0 sha256sum -- > SHA256SUMS.new
    else
        : > SHA256SUMS.new
    fi
    mv -f SHA256SUMS.new SHA256SUMS
)
echo "backup finished"
exit $rc
SCRIPT
chmod +x /app/backup/backup.sh
cd /
BACKUP_DATE=2024-06-01 /app/backup/backup.sh
ls -la /app/backups
(cd /app/backups && sha256sum -c SHA256SUMS)
