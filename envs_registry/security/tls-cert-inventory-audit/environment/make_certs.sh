#!/bin/bash
# Builds the certificate inventory under /app/certs with fixed validity dates.
# Keys are random per build; every property reported by the audit is fixed by construction.
set -euo pipefail
W=$(mktemp -d); cd "$W"
OUT=/app/certs
mkdir -p "$OUT/ca" "$OUT/sites"

cat > ca.cnf <<'CNF'
[ ca ]
default_ca = myca
[ myca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[ anything ]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_leaf ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
mkdir newcerts; : > index.txt; echo 1000 > serial

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsakey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
csr() { openssl req -new -config ca.cnf -key "$1" -subj "/O=Example Corp/CN=$2" -out "$3"; }
# sign CSR KEY CERT SUBJECT START END EXT OUT
sign() {
  openssl ca -batch -config ca.cnf -notext -in "$1" -keyfile "$2" -cert "$3" \
    -startdate "$4" -enddate "$5" -extensions "$6" -out "$7" 2>/dev/null
}
selfsign() { # KEY CN START END EXT OUT
  csr "$1" "$2" tmp.csr
  openssl ca -batch -config ca.cnf -notext -selfsign -in tmp.csr -keyfile "$1" \
    -startdate "$3" -enddate "$4" -extensions "$5" -out "$6" 2>/dev/null
}

# --- internal PKI ---
eckey root.key;  selfsign root.key "Example Internal Root CA" 20200101000000Z 20350101000000Z v3_ca root.crt
eckey i23.key; csr i23.key "Example Issuing CA 2023" i23.csr; sign i23.csr root.key root.crt 20230101000000Z 20260101000000Z v3_ca i23.crt
eckey i24.key; csr i24.key "Example Issuing CA 2024" i24.csr; sign i24.csr root.key root.crt 20240101000000Z 20290101000000Z v3_ca i24.crt
# a rogue look-alike of the 2024 issuing CA (same name, its own key, self-signed)
eckey rogue.key; selfsign rogue.key "Example Issuing CA 2024" 20240101000000Z 20290101000000Z v3_ca rogue.crt
cp root.crt "$OUT/ca/root.crt"
cp i23.crt "$OUT/ca/intermediate-2023.crt"
cp i24.crt "$OUT/ca/intermediate-2024.crt"

# leaf NAME CN ISSUER(i23|i24|rogue) START END KEYTYPE
leaf() {
  local name=$1 cn=$2 iss=$3 start=$4 end=$5 kt=$6
  mkdir -p "$(dirname "$OUT/sites/$name")"
  $kt "leaf.key"; csr leaf.key "$cn" leaf.csr
  sign leaf.csr "$iss.key" "$iss.crt" "$start" "$end" v3_leaf leaf.crt
  cp leaf.crt "$OUT/sites/$name.crt"; cp leaf.key "$OUT/sites/$name.key"
}

leaf prod/api-gateway      api.example.internal        i24 20250101000000Z 20260214120000Z eckey
cat i24.crt >> "$OUT/sites/prod/api-gateway.crt"
leaf prod/billing          billing.example.internal    i23 20240315000000Z 20250315000000Z rsakey
leaf prod/auth             auth.example.internal       i24 20240620000000Z 20250620093000Z eckey
leaf prod/metrics          metrics.example.internal    i24 20240601000000Z 20250531235959Z eckey
openssl pkcs8 -topk8 -nocrypt -in "$OUT/sites/prod/metrics.key" -out pk8.key && mv pk8.key "$OUT/sites/prod/metrics.key"
leaf prod/vault            vault.example.internal      i23 20240701000000Z 20250701000001Z rsakey
cat i23.crt >> "$OUT/sites/prod/vault.crt"
leaf prod/.archive/mail-2023 mail.example.internal     i23 20230101000000Z 20240101000000Z eckey
leaf staging/search        search.staging.internal     rogue 20250101000000Z 20251201000000Z eckey
cat rogue.crt >> "$OUT/sites/staging/search.crt"
leaf staging/legacy-portal portal.staging.internal     i23 20230701000000Z 20250701000000Z rsakey
openssl x509 -in "$OUT/sites/staging/legacy-portal.crt" -outform DER -out "$OUT/sites/staging/legacy-portal.crt"
rm "$OUT/sites/staging/legacy-portal.key"
leaf staging/wiki          wiki.staging.internal       i24 20250201000000Z 20260201000000Z eckey
# the wiki key got overwritten with the auth key during a botched copy
cp "$OUT/sites/prod/auth.key" "$OUT/sites/staging/wiki.key"
# auth key was regenerated but the cert was never re-issued
eckey "$OUT/sites/prod/auth.key"
# self-signed dashboard
mkdir -p "$OUT/sites/staging"
eckey "$OUT/sites/staging/grafana.key"
selfsign "$OUT/sites/staging/grafana.key" grafana.staging.internal 20250101000000Z 20270101000000Z v3_leaf "$OUT/sites/staging/grafana.crt"
sed -i -n '/-----BEGIN CERTIFICATE-----/,$p' "$OUT/sites/staging/grafana.crt"

# noise that is not part of the inventory
cp leaf.csr "$OUT/sites/prod/api-gateway.csr"
cp i24.crt "$OUT/sites/prod/chain-2024.pem"
printf 'Certificates are renewed by the platform team.\nReference date for the Q2 audit: 2025-06-01 00:00:00 UTC.\n' > "$OUT/README.txt"
cd / && rm -rf "$W"
