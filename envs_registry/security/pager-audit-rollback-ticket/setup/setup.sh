#!/bin/bash
# A fresh audit trail for every sandbox: the seed is root-only.
set -e
mkdir -p /etc/ledger-audit
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /etc/ledger-audit/seed
chmod 600 /etc/ledger-audit/seed
