#!/bin/bash
set -euo pipefail
cat /app/scripts/README.md
cat > /app/scripts/prune_backups.sh <<'SH'
#!/bin/bash
# prune_backups.sh - keep only the newest backups of every job.
#
# usage: prune_backups.sh [--dry-run] DIR KEEP
#
# Backups are named "<job>_<YYYYMMDD>-<HHMM>.tar.gz". For each job the KEEP newest
# backups (by the timestamp in the name) are kept and older ones are deleted.
set -u
export LC_ALL=C

usage() {
    echo "usage: prune_backups.sh [--dry-run] DIR KEEP" >&2
    exit 2
}

dry=0
if [ "${1-}" = "--dry-run" ]; then
    dry=1
    shift
fi
[ $# -eq 2 ] || usage
dir=$1
keep=$2
[[ $keep =~ ^[0-9]+$ ]] && [ "$((10#$keep))" -ge 1 ] || usage
keep=$((10#$keep))
[ -d "$dir" ] || usage

re='^(.+)_([0-9]{8}-[0-9]{4})\.tar\.gz$'
declare -A count=()
# list "job<TAB>timestamp<TAB>name", newest first within a job
list=$(
    for path in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
        [ -f "$path" ] && [ ! -L "$path" ] || continue
        name=${path##*/}
        if [[ $name =~ $re ]]; then
            printf '%s\t%s\t%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$name"
        fi
    done | sort -t $'\t' -k1,1 -k2,2r
)
victims=()
while IFS=$'\t' read -r job stamp name; do
    [ -n "$name" ] || continue
    n=$(( ${count[$job]:-0} + 1 ))
    count[$job]=$n
    if [ "$n" -gt "$keep" ]; then
        victims+=("$name")
    fi
done <<< "$list"

[ ${#victims[@]} -gt 0 ] || exit 0
printf '%s\n' "${victims[@]}" | sort | while IFS= read -r name; do
    if [ "$dry" = 1 ]; then
        echo "would delete $name"
    else
        rm -f -- "$dir/$name"
        echo "deleted $name"
    fi
done
SH
chmod +x /app/scripts/prune_backups.sh
/app/scripts/prune_backups.sh --dry-run /app/backups-sample 2
