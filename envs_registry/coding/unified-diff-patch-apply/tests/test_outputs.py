import os
import random
import shutil
import subprocess
import sys

import pytest

APP = "/app/patchy"
ENV = {"PATH": "/nonexistent", "PYTHONPATH": APP, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def patchy(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "patchy", *args], cwd=cwd or APP, env=ENV,
                          capture_output=True, text=True, timeout=60)


def write_tree(root, files):
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="") as fh:
            fh.write(content)


def read_tree(root):
    out = {}
    for base, _, names in os.walk(root):
        for n in names:
            p = os.path.join(base, n)
            out[os.path.relpath(p, root)] = open(p, newline="").read()
    return out


def text(lines, eol=True):
    return "\n".join(lines) + ("\n" if eol and lines else "")


def gen_pair(seed):
    rng = random.Random(seed)
    word = lambda: "%s %d %s" % (rng.choice(["alpha", "beta", "gamma", "delta", "omega"]), rng.randrange(10**9),
                                 rng.choice(["x", "y", "z"]))
    old, new, edited = {}, {}, []
    for k in range(7):
        rel = ("src/" if k % 3 == 0 else "") + f"file{k}.txt"
        lines = [word() for _ in range(rng.randint(15, 70))]
        eol = rng.random() > 0.25
        old[rel] = text(lines, eol)
        action = rng.choice(["edit", "edit", "edit", "same", "delete"])
        if action == "delete":
            continue
        if action == "same":
            new[rel] = old[rel]
            continue
        nl = list(lines)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(nl) + 1)
            op = rng.choice(["ins", "del", "rep"])
            if op == "ins":
                nl[pos:pos] = [word() for _ in range(rng.randint(1, 3))]
            elif op == "del" and len(nl) > 5:
                del nl[pos:pos + rng.randint(1, 3)]
            elif pos < len(nl):
                nl[pos] = word()
        new_eol = eol if rng.random() > 0.3 else not eol
        new[rel] = text(nl, new_eol)
        if new[rel] != old[rel]:
            edited.append(rel)
    new["added/new_%d.txt" % seed] = text([word() for _ in range(rng.randint(1, 8))], rng.random() > 0.3)
    return old, new, edited


def make_diff(tmp, old, new, context=3):
    a, b = tmp / "a", tmp / "b"
    write_tree(a, old)
    write_tree(b, new)
    res = subprocess.run(["diff", "-ruN", f"-U{context}", "a", "b"], cwd=tmp, capture_output=True, text=True)
    assert res.returncode == 1
    (tmp / "change.diff").write_text(res.stdout)
    return tmp / "change.diff"


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("context", [3, 1, 0])
def test_roundtrip_diff_ruN(tmp_path, seed, context):
    old, new, _ = gen_pair(seed)
    patch = make_diff(tmp_path, old, new, context)
    work = tmp_path / "work"
    write_tree(work, old)
    res = patchy("-p1", "-d", str(work), str(patch))
    assert res.returncode == 0, res.stderr
    assert read_tree(work) == new


@pytest.mark.parametrize("seed", range(8))
def test_drifted_targets(tmp_path, seed):
    old, new, edited = gen_pair(seed)
    patch = make_diff(tmp_path, old, new, 3)
    drift_old, drift_new = dict(old), dict(new)
    rng = random.Random(seed + 99)
    for rel in edited:
        extra = "".join(f"# local change {rel} {i}\n" for i in range(rng.randint(1, 9)))
        drift_old[rel] = extra + old[rel]
        drift_new[rel] = extra + new[rel]
    work = tmp_path / "work"
    write_tree(work, drift_old)
    res = patchy("-p1", "-d", str(work), str(patch))
    assert res.returncode == 0, res.stderr
    assert read_tree(work) == drift_new


def test_conflict_is_atomic(tmp_path):
    old, new, edited = gen_pair(3)
    patch = make_diff(tmp_path, old, new, 3)
    victim = sorted(edited)[-1]
    # break every line of the last edited file so that none of its hunks can apply
    broken = dict(old)
    broken[victim] = "".join("changed " + l + "\n" for l in old[victim].split("\n") if l)
    work = tmp_path / "work"
    write_tree(work, broken)
    before = read_tree(work)
    res = patchy("-p1", "-d", str(work), str(patch))
    assert res.returncode == 1
    assert res.stdout == ""
    assert victim.split("/")[-1] in res.stderr
    assert read_tree(work) == before


def test_dry_run_and_messages(tmp_path):
    old, new, _ = gen_pair(5)
    patch = make_diff(tmp_path, old, new, 3)
    diff_targets = [l.split()[-1][2:] for l in patch.read_text().splitlines() if l.startswith("diff -ruN")]
    work = tmp_path / "work"
    write_tree(work, old)
    res = patchy("--dry-run", "-p1", "-d", str(work), str(patch))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["checking file " + t for t in diff_targets]
    assert read_tree(work) == old
    res = patchy("-p1", "-d", str(work), str(patch))
    assert res.stdout.splitlines() == ["patching file " + t for t in diff_targets]


GIT_PATCH = """diff --git a/app/config.ini b/app/config.ini
index 3b18e51..a0b1c2d 100644
--- a/app/config.ini
+++ b/app/config.ini
@@ -3 +3 @@ [server]
-port = 8080
+port = 9090
@@ -6,2 +6,3 @@ [db]
 name = prod
-pool = 5
\\ No newline at end of file
+pool = 20
+timeout = 30
\\ No newline at end of file
diff --git a/app/NOTES b/app/NOTES
deleted file mode 100644
index 5716ca5..0000000
--- a/app/NOTES
+++ /dev/null
@@ -1,2 +0,0 @@
-remember to rotate the keys
-(done)
diff --git a/app/VERSION b/app/VERSION
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/app/VERSION
@@ -0,0 +1 @@
+2.4.0
"""


def test_git_style_patch(tmp_path):
    work = tmp_path / "repo"
    write_tree(work, {"app/config.ini": "[server]\nhost = 0.0.0.0\nport = 8080\n\n[db]\nname = prod\npool = 5",
                      "app/NOTES": "remember to rotate the keys\n(done)\n", "keep.txt": "keep\n"})
    (tmp_path / "g.diff").write_text(GIT_PATCH)
    res = patchy("-p1", "-d", str(work), str(tmp_path / "g.diff"))
    assert res.returncode == 0, res.stderr
    assert read_tree(work) == {
        "app/config.ini": "[server]\nhost = 0.0.0.0\nport = 9090\n\n[db]\nname = prod\npool = 20\ntimeout = 30",
        "app/VERSION": "2.4.0\n", "keep.txt": "keep\n"}


def test_example_in_repo(tmp_path):
    work = tmp_path / "ex"
    shutil.copytree(os.path.join(APP, "examples", "old"), work)
    res = patchy("-p1", "-d", str(work), os.path.join(APP, "examples", "sample.diff"))
    assert res.returncode == 0, res.stderr
    assert read_tree(work) == read_tree(os.path.join(APP, "examples", "new"))
