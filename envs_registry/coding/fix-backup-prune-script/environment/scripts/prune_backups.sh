#!/bin/bash
# prune_backups.sh - keep only the newest backups of every job.
#
# usage: prune_backups.sh [--dry-run] DIR KEEP
#
# Backups are named "<job>_<YYYYMMDD>-<HHMM>.tar.gz". For each job the KEEP newest
# backups are kept and older ones are deleted.

DRY=0
if [ "$1" = "--dry-run" ]; then
    DRY=1
    shift
fi
DIR=$1
KEEP=$2

cd $DIR
for job in $(ls *.tar.gz | cut -d_ -f1 | sort -u); do
    for f in $(ls -t ${job}_*.tar.gz | tail -n +$KEEP); do
        if [ $DRY = 1 ]; then
            echo "would delete $f"
        else
            rm -f $f
            echo "deleted $f"
        fi
    done
done
