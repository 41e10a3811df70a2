#!/bin/bash
# Creates the sample projects and the existing backup history.
set -euo pipefail
P=/app/data/projects
mk() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1"; }
mk "$P/web/index.html" '<h1>shop</h1>'
mk "$P/web/src/app.js" 'console.log("app")'
mk "$P/web/src/util/format.js" 'export const f = 1'
mk "$P/web/.env.example" 'API_URL=http://127.0.0.1:8000'
mk "$P/web/node_modules/left-pad/index.js" 'module.exports = 1'
mk "$P/web/.cache/babel/abc123.json" '{}'
mk "$P/web/build.tmp" 'partial build'
mk "$P/web_admin/admin.html" '<h1>admin</h1>'
mk "$P/web_admin/node_modules/react/index.js" 'x'
mk "$P/web_admin/config/settings.json" '{"debug": false}'
mk "$P/api/main.py" 'print("api")'
mk "$P/api/requirements.txt" 'flask==2.3.3'
mk "$P/api/tmp/session.tmp" 'tmp'
mk "$P/api/tmp/keep-me.txt" 'not a tmp file'
mk "$P/api/data/seed.tmp.json" '[]'
mk "$P/api/plugins/payments/node_modules/stripe/index.js" 'x'
mk "$P/api/plugins/payments/handler.py" 'def handle(): pass'
mk "$P/api/.cache/pip/wheel.whl" 'bin'
mk "$P/Client Portal/docs/Read Me.txt" 'portal docs'
mk "$P/Client Portal/app/main.ts" 'export {}'
mk "$P/Client Portal/app/cache.tmp" 'x'
mk "$P/notes.txt" 'not a project'
ln -s web "$P/web-current"

B=/app/backups
mkdir -p "$B"
T=$(mktemp -d)
old() { # name date mtime
  mkdir -p "$T/$1"; echo "backup of $1 from $2" > "$T/$1/BACKUP_INFO"
  tar -C "$T" -czf "$B/$1_$2.tar.gz" "$1"
  touch -d "$3" "$B/$1_$2.tar.gz"
}
# restored from the offsite copy: modification times do not follow the dates in the names
old web 2024-05-28 '2024-06-01 01:00:00'
old web 2024-05-29 '2024-05-31 01:00:00'
old web 2024-05-30 '2024-05-30 01:00:00'
old web 2024-05-31 '2024-05-29 01:00:00'
old web_admin 2024-05-30 '2024-05-30 02:00:00'
old web_admin 2024-05-31 '2024-05-31 02:00:00'
old api 2024-05-31 '2024-05-31 03:00:00'
old "Client Portal" 2024-05-31 '2024-05-31 04:00:00'
cp "$B/web_2024-05-28.tar.gz" "$B/web_2024-05-15.tar.gz.partial"
printf 'Backups of /app/data/projects, written by /app/backup/backup.sh.\nVerify with: cd /app/backups && sha256sum -c SHA256SUMS\n' > "$B/README.txt"
(cd "$B" && sha256sum -- *.tar.gz > SHA256SUMS)
rm -rf "$T"
