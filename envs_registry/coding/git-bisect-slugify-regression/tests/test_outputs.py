import os
import re
import shutil
import subprocess
import sys
import unicodedata

import pytest

REPO = "/app/textkit"
BAD_SUBJECT = "Refactor: move unicode helpers to textkit._unicode"
ORIG_HEAD_SUBJECT = "docs: record issue 142"
ORIG_COMMITS = 25


def git(*args):
    res = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def commit_by_subject(subject):
    hashes = [h for h in git("log", "--format=%H %s", "main").splitlines() if h.split(" ", 1)[1] == subject]
    assert len(hashes) == 1, subject
    return hashes[0].split()[0]


def export(commit, dest):
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


def slug_at(tree, text):
    code = f"import sys; sys.path.insert(0, {tree!r}); from textkit import slugify; print(slugify({text!r}))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    return res.stdout.strip() if res.returncode == 0 else None


def test_bisect_result():
    content = open("/app/bisect_result.txt").read()
    assert re.fullmatch(r"[0-9a-f]{40}\n", content), repr(content)
    sha = content.strip()
    assert git("cat-file", "-t", sha) == "commit"
    assert sha == commit_by_subject(BAD_SUBJECT)


def test_bisect_result_behaviour(tmp_path):
    # independent check: the reported commit is bad and its parent is good
    sha = open("/app/bisect_result.txt").read().strip()
    parent = git("rev-parse", sha + "^")
    export(sha, str(tmp_path / "bad"))
    export(parent, str(tmp_path / "good"))
    example = "Crème Brûlée à la française"
    assert slug_at(str(tmp_path / "good"), example) == "creme-brulee-a-la-francaise"
    assert slug_at(str(tmp_path / "bad"), example) != "creme-brulee-a-la-francaise"


def reference(text, separator="-", max_length=None):
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.replace("'", "")
    slug = re.sub(r"[^a-zA-Z0-9]+", separator, text).lower().strip(separator)
    if max_length is not None and len(slug) > max_length:
        cut = slug[:max_length + 1]
        pos = cut.rfind(separator)
        slug = cut[:pos] if pos > 0 else slug[:max_length]
    return slug


CASES = [
    ("Crème Brûlée à la française", {}), ("Crème ﬁnal", {}), ("Ærøskøbing Straße", {}),
    ("Ｆｕｌｌｗｉｄｔｈ №５", {}), ("Don't stop", {}), ("It\u2019s déjà vu", {}),
    ("Señor Müller", {"separator": "_"}), ("Élan vital über alles", {"max_length": 12}),
    ("naïve café", {"max_length": 5}), ("Hello, World!", {}), ("a  --  b", {}),
]


@pytest.mark.parametrize("text,kwargs", CASES)
def test_slugify_fixed_at_head(text, kwargs):
    sys.path.insert(0, REPO)
    from textkit import slugify
    assert slugify(text, **kwargs) == reference(text, **kwargs)


def test_kebab_and_cli():
    res = subprocess.run([sys.executable, "-m", "textkit", "kebab", "Crème", "Brûlée"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert res.stdout == "creme-brulee\n"
    res = subprocess.run([sys.executable, "-m", "textkit", "slug", "Don't", "panic", "à", "Zürich"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert res.stdout == "dont-panic-a-zurich\n"


def test_history_preserved_and_clean():
    orig = commit_by_subject(ORIG_HEAD_SUBJECT)
    head = git("rev-parse", "HEAD")
    assert head != orig
    assert subprocess.run(["git", "-C", REPO, "merge-base", "--is-ancestor", orig, head]).returncode == 0
    assert git("rev-list", "--count", orig) == str(ORIG_COMMITS)
    assert git("symbolic-ref", "HEAD") == "refs/heads/main"
    assert git("status", "--porcelain") == ""
    assert not os.path.exists(os.path.join(REPO, ".git", "BISECT_LOG"))
    assert not os.path.exists(os.path.join(REPO, ".git", "BISECT_START"))


def test_regression_test_catches_bug(tmp_path):
    # the repo's test suite at HEAD passes
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
    head_tests = open(os.path.join(REPO, "tests", "test_slug.py")).read()
    # the new tests/test_slug.py must fail against the buggy original code
    buggy = tmp_path / "buggy"
    export(commit_by_subject(ORIG_HEAD_SUBJECT), str(buggy))
    (buggy / "tests" / "test_slug.py").write_text(head_tests)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_slug.py"],
                         cwd=str(buggy), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stdout
    assert "failed" in res.stdout
