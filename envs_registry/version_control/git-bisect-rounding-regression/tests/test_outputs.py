"""Verifier for git-bisect-rounding-regression."""
import json
import subprocess
import sys
from decimal import Decimal, ROUND_HALF_UP
from pathlib import Path

import pytest

REPO = "/app/pricing"
OLD_TIP = "6c8935229c5d98835b62e40a6cf0c984e7b95dcc"
TAG_OBJECT = "5d0091964622d492c2b0c3d8e225b8921fa48859"
FIRST_BAD = "59430092ae8dd3c97f7f26a0723ff9b9366facad"


def git(*args, cwd=REPO):
    return subprocess.run(["git", "-C", cwd, *args], capture_output=True, text=True, check=True).stdout


def export(rev, dest):
    dest.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=data, check=True)
    return dest


def cli(tree, invoice_path, *flags):
    return subprocess.run([sys.executable, str(tree / "bin/invoice_total.py"), str(invoice_path), *flags],
                          capture_output=True, text=True, timeout=30)


# independent reference implementation of the documented rules
def _m(x):
    return Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def reference_total(inv):
    subtotal = Decimal("0")
    for line in inv["lines"]:
        gross = Decimal(line["unit_price"]) * line["qty"]
        pct = Decimal(line.get("discount_pct", "0")) + (5 if line["qty"] >= 100 else 0)
        subtotal += _m(gross - gross * pct / 100)
    c = inv.get("coupon")
    if c and c["type"] == "fixed":
        subtotal = max(subtotal - Decimal(c["value"]), Decimal("0"))
    elif c and c["type"] == "percent":
        subtotal = _m(subtotal * (100 - Decimal(c["value"])) / 100)
    rate = Decimal(str(inv["tax_rate"]).rstrip("%"))
    return _m(subtotal + _m(subtotal * rate / 100))


@pytest.fixture(scope="module")
def head_tree(tmp_path_factory):
    return export("HEAD", tmp_path_factory.mktemp("head"))


def test_first_bad_commit_file():
    text = Path("/app/first_bad_commit.txt").read_text()
    assert text.strip() == FIRST_BAD
    assert text in (FIRST_BAD + "\n", FIRST_BAD)


def test_history_preserved_and_single_fix_commit():
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git("rev-parse", "HEAD^").strip() == OLD_TIP, "exactly one new commit on top of the old main expected"
    assert len(git("rev-list", "--parents", "-n", "1", "HEAD").split()) == 2, "fix must not be a merge"
    assert git("rev-parse", "refs/tags/v1.2.0").strip() == TAG_OBJECT
    assert git("status", "--porcelain", "--untracked-files=no").strip() == ""
    assert not Path(REPO, ".git/BISECT_LOG").exists() and not Path(REPO, ".git/BISECT_START").exists()


def test_reference_sanity(tmp_path):
    # v1.2.0 is known-good: the reference must agree with it on invoice-17
    tree = export("v1.2.0", tmp_path / "v120")
    inv = json.loads((tree / "samples/invoice-17.json").read_text())
    assert cli(tree, tree / "samples/invoice-17.json").stdout.strip() == str(reference_total(inv)) == "107.32"


def test_all_samples_correct(head_tree):
    samples = sorted((head_tree / "samples").glob("invoice-*.json"))
    assert len(samples) == 22
    for s in samples:
        r = cli(head_tree, s)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(reference_total(json.loads(s.read_text()))), s.name


def test_half_cent_edge_cases(head_tree, tmp_path):
    cases = [
        {"tax_rate": "10", "lines": [{"sku": "a", "unit_price": "10.25", "qty": 1}]},
        {"tax_rate": "0", "lines": [{"sku": "b", "unit_price": "0.125", "qty": 1}]},
        {"tax_rate": "20%", "lines": [{"sku": "c", "unit_price": "2.05", "qty": 5, "discount_pct": "50"}]},
        {"tax_rate": "0", "lines": [{"sku": "d", "unit_price": "0.05", "qty": 1}],
         "coupon": {"type": "percent", "value": "50"}},
        {"tax_rate": "15", "lines": [{"sku": "e", "unit_price": "0.33", "qty": 150}],
         "coupon": {"type": "fixed", "value": "1.00"}},
    ]
    for i, inv in enumerate(cases):
        p = tmp_path / f"case{i}.json"
        p.write_text(json.dumps(inv))
        assert cli(head_tree, p).stdout.strip() == str(reference_total(inv)), inv


def test_cli_features_kept(head_tree):
    s = head_tree / "samples/invoice-17.json"
    assert cli(head_tree, s, "--currency", "EUR").stdout.strip() == "107.32 EUR"
    assert json.loads(cli(head_tree, s, "--json").stdout) == {"id": "INV-0017", "total": "107.32"}


def test_repo_tests_pass(head_tree):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=head_tree, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
