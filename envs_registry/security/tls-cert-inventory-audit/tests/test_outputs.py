"""Verifier for tls-cert-inventory-audit.

The certificate material is generated at image build time with fixed names, subjects,
validity dates, issuers and key assignments, so every audited property is known in advance
(only the random key bytes differ between builds).
"""
import csv
import subprocess
from pathlib import Path

REPORT = Path("/app/cert_audit.csv")
HEADER = ["path", "common_name", "not_after", "status", "key_match", "trusted"]
EXPECTED = [
    ["prod/.archive/mail-2023", "mail.example.internal", "2024-01-01T00:00:00Z", "EXPIRED", "yes", "yes"],
    ["prod/api-gateway", "api.example.internal", "2026-02-14T12:00:00Z", "OK", "yes", "yes"],
    ["prod/auth", "auth.example.internal", "2025-06-20T09:30:00Z", "EXPIRING", "no", "yes"],
    ["prod/billing", "billing.example.internal", "2025-03-15T00:00:00Z", "EXPIRED", "yes", "yes"],
    ["prod/metrics", "metrics.example.internal", "2025-05-31T23:59:59Z", "EXPIRED", "yes", "yes"],
    ["prod/vault", "vault.example.internal", "2025-07-01T00:00:01Z", "OK", "yes", "yes"],
    ["staging/grafana", "grafana.staging.internal", "2027-01-01T00:00:00Z", "OK", "yes", "no"],
    ["staging/legacy-portal", "portal.staging.internal", "2025-07-01T00:00:00Z", "EXPIRING", "missing", "yes"],
    ["staging/search", "search.staging.internal", "2025-12-01T00:00:00Z", "OK", "yes", "no"],
    ["staging/wiki", "wiki.staging.internal", "2026-02-01T00:00:00Z", "OK", "no", "yes"],
]
CERT_FILES = sorted([
    "README.txt", "ca/intermediate-2023.crt", "ca/intermediate-2024.crt", "ca/root.crt",
    "sites/prod/.archive/mail-2023.crt", "sites/prod/.archive/mail-2023.key",
    "sites/prod/api-gateway.crt", "sites/prod/api-gateway.csr", "sites/prod/api-gateway.key",
    "sites/prod/auth.crt", "sites/prod/auth.key", "sites/prod/billing.crt", "sites/prod/billing.key",
    "sites/prod/chain-2024.pem", "sites/prod/metrics.crt", "sites/prod/metrics.key",
    "sites/prod/vault.crt", "sites/prod/vault.key", "sites/staging/grafana.crt", "sites/staging/grafana.key",
    "sites/staging/legacy-portal.crt", "sites/staging/search.crt", "sites/staging/search.key",
    "sites/staging/wiki.crt", "sites/staging/wiki.key",
])


def _rows():
    assert REPORT.exists(), "cert_audit.csv is missing"
    text = REPORT.read_text()
    assert "\r" not in text, "use Unix newlines"
    rows = list(csv.reader(text.splitlines()))
    assert rows and rows[0] == HEADER, f"bad header: {rows[:1]}"
    return rows[1:]


def _column(rows, name):
    i = HEADER.index(name)
    return {r[0]: r[i] for r in rows}


def _expected_column(name):
    i = HEADER.index(name)
    return {r[0]: r[i] for r in EXPECTED}


def test_inventory_untouched():
    root = Path("/app/certs")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == CERT_FILES
    # DER file still DER, bundle still a bundle
    assert b"BEGIN CERTIFICATE" not in (root / "sites/staging/legacy-portal.crt").read_bytes()
    assert (root / "sites/staging/search.crt").read_text().count("BEGIN CERTIFICATE") == 2


def test_sanity_of_generated_material():
    # independent spot-check with openssl of two facts the expectations rely on
    sites = Path("/app/certs/sites")
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(sites / "staging/legacy-portal.crt"),
                          "-noout", "-enddate"], capture_output=True, text=True, check=True).stdout
    assert "Jul  1 00:00:00 2025 GMT" in out
    pub_cert = subprocess.run(["openssl", "x509", "-in", str(sites / "staging/wiki.crt"), "-noout", "-pubkey"],
                              capture_output=True, text=True, check=True).stdout
    pub_key = subprocess.run(["openssl", "pkey", "-in", str(sites / "staging/wiki.key"), "-pubout"],
                             capture_output=True, text=True, check=True).stdout
    assert pub_cert != pub_key


def test_rows_and_order():
    rows = _rows()
    assert [r[0] for r in rows] == [r[0] for r in EXPECTED], "wrong set of files or wrong order"
    assert all(len(r) == len(HEADER) for r in rows)


def test_common_name_and_not_after():
    rows = _rows()
    assert _column(rows, "common_name") == _expected_column("common_name")
    assert _column(rows, "not_after") == _expected_column("not_after")


def test_status():
    assert _column(_rows(), "status") == _expected_column("status")


def test_key_match():
    assert _column(_rows(), "key_match") == _expected_column("key_match")


def test_trusted():
    assert _column(_rows(), "trusted") == _expected_column("trusted")


def test_exact_file():
    assert _rows() == EXPECTED
