#!/bin/bash
# Nightly project backups.
# Settings (environment): SRC_DIR, DEST_DIR, KEEP (archives kept per project), BACKUP_DATE (YYYY-MM-DD)
SRC_DIR=${SRC_DIR:-/app/data/projects}
DEST_DIR=${DEST_DIR:-/app/backups}
KEEP=${KEEP:-3}
DATE=${BACKUP_DATE:-$(date +%F)}

mkdir -p $DEST_DIR
cd $SRC_DIR

for project in $(ls); do
    archive=$DEST_DIR/${project}_$DATE.tar.gz
    echo "backing up $project -> $archive"
    tar -czf $archive $SRC_DIR/$project --exclude='*.tmp' --exclude=node_modules

    # rotation: keep the newest $KEEP archives of this project
    ls -t $DEST_DIR/${project}_* | tail -n +$KEEP | xargs rm -f
done

# checksum manifest
cd $DEST_DIR
md5sum *.tar.gz > SHA256SUMS
echo "backup finished"
