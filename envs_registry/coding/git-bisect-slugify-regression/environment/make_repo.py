"""Builds the textkit git repository with a fixed, reproducible history."""
import os
import subprocess
import textwrap

REPO = "/app/textkit"
os.makedirs(REPO, exist_ok=True)
os.chdir(REPO)
BASE = 1704103200  # 2024-01-01 10:00 UTC
step = [0]
AUTHORS = [("Dana Whitfield", "dana@example.com"), ("Ravi Okafor", "ravi@example.com"),
           ("Mei Lindqvist", "mei@example.com")]


def git(*args, env=None):
    subprocess.run(["git", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(text).lstrip("\n"))


def edit(path, old, new):
    src = open(path).read()
    assert old in src, (path, old)
    with open(path, "w") as fh:
        fh.write(src.replace(old, new, 1))


def commit(msg):
    step[0] += 1
    name, mail = AUTHORS[step[0] % 3]
    stamp = f"{BASE + step[0] * 86400 * 2 + (step[0] * 3137) % 20000} +0000"
    env = dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=mail, GIT_COMMITTER_NAME=name,
               GIT_COMMITTER_EMAIL=mail, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    git("add", "-A")
    git("commit", "-q", "-m", msg, env=env)


git("init", "-q", "-b", "main")
git("config", "user.name", "textkit-dev")
git("config", "user.email", "dev@example.com")

# 1
write(".gitignore", """
__pycache__/
*.pyc
.pytest_cache/
""")
write("textkit/__init__.py", """
\"\"\"textkit - small text utilities.\"\"\"
from .slug import slugify

__version__ = "0.1.0"
__all__ = ["slugify"]
""")
write("textkit/slug.py", """
import re
import unicodedata


def slugify(text):
    \"\"\"Turn arbitrary text into a lowercase ASCII slug: 'Hello, World!' -> 'hello-world'.\"\"\"
    text = unicodedata.normalize("NFKD", text)
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9]", "-", text).lower()
    return text.strip("-")
""")
write("tests/test_slug.py", """
from textkit import slugify


def test_basic():
    assert slugify("Hello World") == "hello-world"


def test_punctuation():
    assert slugify("Hello, World!") == "hello-world"
""")
write("README.md", """
# textkit

Small text utilities used by our publishing pipeline.
""")
commit("Initial commit: slugify")

# 2
write("textkit/wrap.py", """
def wrap(text, width=72):
    \"\"\"Greedy word wrap; returns a list of lines.\"\"\"
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines
""")
edit("textkit/__init__.py", "from .slug import slugify\n", "from .slug import slugify\nfrom .wrap import wrap\n")
edit("textkit/__init__.py", '__all__ = ["slugify"]', '__all__ = ["slugify", "wrap"]')
write("tests/test_wrap.py", """
from textkit import wrap


def test_wrap_simple():
    assert wrap("a b c d", width=3) == ["a b", "c d"]
""")
commit("Add wrap module")

# 3
write("textkit/case.py", """
import re


def snake_case(text):
    text = re.sub(r"([a-z0-9])([A-Z])", r"\\1_\\2", text)
    return re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_").lower()


def camel_case(text):
    parts = [p for p in re.split(r"[^a-zA-Z0-9]+", text) if p]
    return parts[0].lower() + "".join(p.capitalize() for p in parts[1:]) if parts else ""
""")
edit("textkit/__init__.py", "from .wrap import wrap\n", "from .wrap import wrap\nfrom .case import camel_case, snake_case\n")
edit("textkit/__init__.py", '"wrap"]', '"wrap", "snake_case", "camel_case"]')
write("tests/test_case.py", """
from textkit import camel_case, snake_case


def test_snake():
    assert snake_case("HelloWorld") == "hello_world"
    assert snake_case("hello world") == "hello_world"


def test_camel():
    assert camel_case("hello world") == "helloWorld"
""")
commit("Add case conversion helpers")

# 4
edit("README.md", "pipeline.\n", "pipeline.\n\n```python\nfrom textkit import slugify\nslugify(\"Hello, World!\")  # 'hello-world'\n```\n")
commit("README: usage example")

# 5
edit("textkit/slug.py", 'text = re.sub(r"[^a-zA-Z0-9]", "-", text).lower()', 'text = re.sub(r"[^a-zA-Z0-9]+", "-", text).lower()')
write("tests/test_slug.py", """
from textkit import slugify


def test_basic():
    assert slugify("Hello World") == "hello-world"


def test_punctuation():
    assert slugify("Hello, World!") == "hello-world"


def test_collapse():
    assert slugify("a  --  b") == "a-b"
""")
commit("slug: collapse repeated separators")

# 6
edit("textkit/wrap.py", "    for word in text.split():\n", "    for word in text.split():\n        while len(word) > width:\n            if current:\n                lines.append(current)\n                current = \"\"\n            lines.append(word[:width])\n            word = word[width:]\n")
edit("tests/test_wrap.py", '== ["a b", "c d"]\n', '== ["a b", "c d"]\n\n\ndef test_wrap_long_word():\n    assert wrap("abcdefgh xy", width=3) == ["abc", "def", "gh", "xy"]\n')
commit("wrap: split words longer than the width")

# 7
write(".ci.yml", """
test:
  image: python:3.11
  script:
    - python -m pytest -q
""")
commit("Add CI config")

# 8
edit("textkit/case.py", 'text = re.sub(r"([a-z0-9])([A-Z])", r"\\1_\\2", text)', 'text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\\1_\\2", text)\n    text = re.sub(r"([a-z0-9])([A-Z])", r"\\1_\\2", text)')
edit("tests/test_case.py", 'assert snake_case("hello world") == "hello_world"\n', 'assert snake_case("hello world") == "hello_world"\n    assert snake_case("HTTPServerError") == "http_server_error"\n')
commit("case: handle acronyms in snake_case")

# 9
edit("textkit/__init__.py", '__version__ = "0.1.0"', '__version__ = "0.2.0"')
write("CHANGELOG.md", """
# Changelog

## 0.2.0
- wrap(), snake_case(), camel_case()
- slugify collapses repeated separators
""")
commit("Release 0.2.0")

# 10
write("textkit/slug.py", """
import re
import unicodedata


def slugify(text, separator="-"):
    \"\"\"Turn arbitrary text into a lowercase ASCII slug: 'Hello, World!' -> 'hello-world'.\"\"\"
    text = unicodedata.normalize("NFKD", text)
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9]+", separator, text).lower()
    return text.strip(separator)
""")
edit("tests/test_slug.py", 'def test_collapse():', 'def test_separator():\n    assert slugify("Hello World", separator="_") == "hello_world"\n\n\ndef test_collapse():')
commit("slug: configurable separator")

# 11
edit("CHANGELOG.md", "# Changelog\n", "# Changelog\n\n## unreleased\n- slugify(separator=...)\n")
commit("Update changelog")

# 12  ---- the regression: NFKD replaced by NFC while moving code around
write("textkit/_unicode.py", """
\"\"\"Unicode helpers shared by the text utilities.\"\"\"
import unicodedata


def to_ascii(text):
    \"\"\"Best-effort transliteration to ASCII (drops what cannot be represented).\"\"\"
    text = unicodedata.normalize("NFC", text)
    return text.encode("ascii", "ignore").decode("ascii")


def is_blank(text):
    return not text or text.isspace()
""")
write("textkit/slug.py", """
import re

from ._unicode import to_ascii


def slugify(text, separator="-"):
    \"\"\"Turn arbitrary text into a lowercase ASCII slug: 'Hello, World!' -> 'hello-world'.\"\"\"
    text = to_ascii(text)
    text = re.sub(r"[^a-zA-Z0-9]+", separator, text).lower()
    return text.strip(separator)
""")
commit("Refactor: move unicode helpers to textkit._unicode")

# 13
edit("textkit/wrap.py", 'def wrap(text, width=72):', 'def wrap(text, width=72, indent=""):')
edit("textkit/wrap.py", "    return lines\n", "    return [indent + line for line in lines]\n")
edit("tests/test_wrap.py", "def test_wrap_long_word():", "def test_wrap_indent():\n    assert wrap(\"a b\", width=1, indent=\"> \") == [\"> a\", \"> b\"]\n\n\ndef test_wrap_long_word():")
commit("wrap: optional indent prefix")

# 14
edit("tests/test_case.py", "def test_camel():\n    assert camel_case(\"hello world\") == \"helloWorld\"\n",
     "def test_camel():\n    assert camel_case(\"hello world\") == \"helloWorld\"\n    assert camel_case(\"\") == \"\"\n    assert camel_case(\"--x--y\") == \"xY\"\n")
commit("tests: more camel_case cases")

# 15
edit("textkit/case.py", "import re\n", "import re\n\nfrom .slug import slugify\n")
edit("textkit/case.py", "def camel_case(text):", "def kebab_case(text):\n    return slugify(text, separator=\"-\")\n\n\ndef camel_case(text):")
edit("textkit/__init__.py", "from .case import camel_case, snake_case\n", "from .case import camel_case, kebab_case, snake_case\n")
edit("textkit/__init__.py", '"camel_case"]', '"camel_case", "kebab_case"]')
edit("tests/test_case.py", "from textkit import camel_case, snake_case", "from textkit import camel_case, kebab_case, snake_case")
edit("tests/test_case.py", "def test_camel():", "def test_kebab():\n    assert kebab_case(\"Hello World\") == \"hello-world\"\n\n\ndef test_camel():")
commit("case: add kebab_case")

# 16  ---- decoy: mentions unicode but is harmless
edit("textkit/_unicode.py", '    """Best-effort transliteration to ASCII (drops what cannot be represented)."""',
     '    """Best-effort transliteration to ASCII.\n\n    Characters that have no ASCII representation are dropped.\n    """')
commit("unicode: clarify to_ascii docstring (fix unicode docs)")

# 17
edit("textkit/__init__.py", '__version__ = "0.2.0"', '__version__ = "0.3.0"')
edit("CHANGELOG.md", "## unreleased\n", "## 0.3.0\n- kebab_case(), wrap(indent=...)\n")
commit("Release 0.3.0")

# 18 ---- breaks the import (unrelated): untestable until 20
write("textkit/wrap.py", """
import textwrap


def wrap(text, width=72, indent=""):
    \"\"\"Word wrap built on textwrap; returns a list of lines.\"\"\"
    lines = textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False
    return [indent + line for line in lines]
""")
commit("wrap: reimplement on top of textwrap")

# 19
write("textkit/slug.py", """
import re

from ._unicode import to_ascii


def slugify(text, separator="-", max_length=None):
    \"\"\"Turn arbitrary text into a lowercase ASCII slug: 'Hello, World!' -> 'hello-world'.

    If max_length is given the slug is cut at a separator so that it is at most max_length long.
    \"\"\"
    text = to_ascii(text)
    slug = re.sub(r"[^a-zA-Z0-9]+", separator, text).lower().strip(separator)
    if max_length is not None and len(slug) > max_length:
        cut = slug[:max_length + 1]
        pos = cut.rfind(separator)
        slug = cut[:pos] if pos > 0 else slug[:max_length]
    return slug
""")
edit("tests/test_slug.py", "def test_collapse():", "def test_max_length():\n    assert slugify(\"The quick brown fox\", max_length=12) == \"the-quick\"\n    assert slugify(\"abcdefghij\", max_length=4) == \"abcd\"\n\n\ndef test_collapse():")
commit("slug: max_length option")

# 20
edit("textkit/wrap.py", "break_on_hyphens=False\n", "break_on_hyphens=False)\n")
commit("wrap: fix missing parenthesis")

# 21
write("textkit/__main__.py", """
\"\"\"Command line: python3 -m textkit slug|snake|camel|kebab TEXT...\"\"\"
import sys

from . import camel_case, kebab_case, slugify, snake_case

COMMANDS = {"slug": slugify, "snake": snake_case, "camel": camel_case, "kebab": kebab_case}


def main(argv):
    if len(argv) < 2 or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(COMMANDS[argv[0]](" ".join(argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
""")
commit("Add command line interface")

# 22
edit("textkit/slug.py", "    text = to_ascii(text)\n", "    text = to_ascii(text).replace(\"'\", \"\").replace(\"\\u2019\", \"\")\n")
edit("tests/test_slug.py", "def test_collapse():", "def test_apostrophes():\n    assert slugify(\"Don't stop\") == \"dont-stop\"\n    assert slugify(\"It\\u2019s here\") == \"its-here\"\n\n\ndef test_collapse():")
commit("slug: drop apostrophes instead of splitting words")

# 23
edit("textkit/_unicode.py", "def is_blank(text):", "def collapse_ws(text):\n    return \" \".join(text.split())\n\n\ndef is_blank(text):")
commit("unicode: add collapse_ws helper")

# 24
edit("textkit/__init__.py", '__version__ = "0.3.0"', '__version__ = "0.4.0"')
edit("CHANGELOG.md", "# Changelog\n", "# Changelog\n\n## 0.4.0\n- slugify(max_length=...), apostrophes are dropped\n- command line interface\n")
commit("Release 0.4.0")

# 25
write("docs/ISSUE-142.md", """
# Issue 142: slugs of accented titles are mangled

Reported by the publishing team after upgrading to 0.4.0:

    >>> slugify("Crème Brûlée à la française")
    'crme-brle-la-franaise'

Expected `'creme-brulee-a-la-francaise'`, which is what the 0.2.0 release produced.
Article URLs for every title with accents changed, which broke inbound links.
""")
commit("docs: record issue 142")
