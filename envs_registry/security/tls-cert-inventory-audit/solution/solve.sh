#!/bin/bash
# Reference solution: inspect every *.crt under /app/certs/sites with openssl and write the audit CSV.
set -euo pipefail
SITES=/app/certs/sites
CA=/app/certs/ca
REF=$(date -u -d '2025-06-01T00:00:00Z' +%s)
SOON=$(( REF + 30*86400 ))
TMP=$(mktemp -d)
cat "$CA"/intermediate-*.crt > "$TMP/ca-intermediates.pem"

rows=()
while IFS= read -r -d '' f; do
  rel=${f#"$SITES"/}; rel=${rel%.crt}
  # normalise to PEM (some files are DER); split leaf and the rest of the bundle
  if grep -q -- '-----BEGIN CERTIFICATE-----' "$f"; then
    awk -v d="$TMP" '/-----BEGIN CERTIFICATE-----/{n++} {print > (d "/part" n ".pem")}' "$f"
  else
    openssl x509 -inform DER -in "$f" -out "$TMP/part1.pem"
  fi
  leaf="$TMP/part1.pem"
  cat "$TMP/ca-intermediates.pem" > "$TMP/untrusted.pem"
  for p in "$TMP"/part*.pem; do [ "$p" = "$leaf" ] || cat "$p" >> "$TMP/untrusted.pem"; done
  rm -f "$TMP"/part[2-9]*.pem

  cn=$(openssl x509 -in "$leaf" -noout -subject -nameopt multiline | awk -F' = ' '/commonName/{print $2}')
  end=$(openssl x509 -in "$leaf" -noout -enddate | cut -d= -f2)
  end_s=$(date -u -d "$end" +%s)
  not_after=$(date -u -d "@$end_s" +%Y-%m-%dT%H:%M:%SZ)
  if (( end_s < REF )); then status=EXPIRED; elif (( end_s <= SOON )); then status=EXPIRING; else status=OK; fi

  key="${f%.crt}.key"
  if [ ! -f "$key" ]; then km=missing
  elif [ "$(openssl pkey -in "$key" -pubout 2>/dev/null)" = "$(openssl x509 -in "$leaf" -noout -pubkey)" ]; then km=yes
  else km=no; fi

  if openssl verify -no_check_time -CAfile "$CA/root.crt" -untrusted "$TMP/untrusted.pem" "$leaf" >/dev/null 2>&1; then
    trusted=yes; else trusted=no; fi
  rows+=("$rel,$cn,$not_after,$status,$km,$trusted")
  rm -f "$TMP"/part*.pem
done < <(find "$SITES" -type f -name '*.crt' -print0)

{
  echo "path,common_name,not_after,status,key_match,trusted"
  printf '%s\n' "${rows[@]}" | LC_ALL=C sort
} > /app/cert_audit.csv
rm -rf "$TMP"
cat /app/cert_audit.csv
