"""Verifier for git-recover-lost-work."""
import subprocess

REPO = "/app/webapp"
MAIN_BEFORE = "9cad5d89bf5426b6ac33db78d78174d086bbcd74"
FEATURE_TIP = "f43ad1ba7d3ccd140c613e5e1911b81da7228c47"        # amended "csv-export: add --delimiter flag"
FEATURE_WIP = "695bd24560cba58cebb15af168d23fff6afa5ab3"        # pre-amend "(WIP)" version
FEATURE_BASE = "ec38ffdce83fc78301ad24da2979ca40c2650ca7"
DOCS_STASH = "1db224b0c820a3c824f0d9876251ff1be86577d0"
EXPECTED_TREE = "1ab53fcb72fa2a3d4dac0f187c5da21f26d2c425"


def git(*args):
    return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=True).stdout


def test_feature_branch_restored():
    assert git("rev-parse", "refs/heads/feature/csv-export").strip() == FEATURE_TIP
    subjects = git("log", "--format=%s", f"{FEATURE_BASE}..feature/csv-export").splitlines()
    assert subjects == ["csv-export: add --delimiter flag", "csv-export: wire --format csv into the CLI",
                        "csv-export: add CsvExporter class"]


def test_only_expected_branches():
    branches = sorted(git("for-each-ref", "--format=%(refname)", "refs/heads/").split())
    assert branches == ["refs/heads/feature/csv-export", "refs/heads/main"]


def test_main_has_single_new_commit():
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git("rev-list", "--parents", "-n", "1", "main").split()[1:] == [MAIN_BEFORE]
    assert git("log", "-1", "--format=%s", "main").strip() == "docs: restore dropped guide edits"
    assert git("status", "--porcelain", "--untracked-files=no").strip() == ""


def test_commit_touches_only_docs():
    changed = sorted(git("diff", "--name-status", MAIN_BEFORE, "main").splitlines())
    assert changed == ["A\tdocs/faq.md", "M\tdocs/guide.md"]


def test_docs_content_merged():
    guide = git("show", "main:docs/guide.md")
    assert "Python 3.9 or newer is required" in guide           # from the stash
    assert "Region names are case-insensitive" in guide         # from the stash
    assert "## Troubleshooting" in guide                         # main's newer section kept
    assert git("show", "main:docs/faq.md") == git("show", f"{DOCS_STASH}:docs/faq.md")
    cli = git("show", "main:app/cli.py")
    assert "logging" not in cli, "the logging stash must not be applied"


def test_exact_tree():
    assert git("rev-parse", "main^{tree}").strip() == EXPECTED_TREE
