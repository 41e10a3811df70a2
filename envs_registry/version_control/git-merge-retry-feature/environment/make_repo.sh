#!/bin/bash
# Builds /app/repo deterministically (fixed identities and dates => stable commit hashes).
set -euo pipefail
R=/app/repo
mkdir -p "$R" && cd "$R"
git init -q -b main
T=1717232400   # 2024-06-01T09:00:00Z
as() { # as NAME EMAIL MESSAGE
  T=$((T + 5400))
  GIT_AUTHOR_NAME="$1" GIT_AUTHOR_EMAIL="$2" GIT_COMMITTER_NAME="$1" GIT_COMMITTER_EMAIL="$2" \
  GIT_AUTHOR_DATE="@$T +0000" GIT_COMMITTER_DATE="@$T +0000" git commit -q -m "$3"
}
w() { mkdir -p "$(dirname "$1")"; cat > "$1"; }

w README.md <<'X'
# httpclient-lite

Tiny HTTP helper used by our internal tools.
X
w CHANGELOG.md <<'X'
# Changelog

## Unreleased

## 1.1.0
- Add timeout support
X
w config/settings.ini <<'X'
[http]
base_url = http://127.0.0.1:8000
timeout = 10

[logging]
level = INFO
X
w src/client.py <<'X'
"""Minimal HTTP client helpers."""
import urllib.request


def fetch(url, timeout=10, opener=urllib.request.urlopen):
    """Return the body of `url` as text."""
    with opener(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8")
X
w tests/conftest.py <<'X'
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
X
w tests/test_client.py <<'X'
import io

import client


class FakeResp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_returns_text():
    calls = []

    def opener(url, timeout):
        calls.append((url, timeout))
        return FakeResp(b"hello")

    assert client.fetch("http://x/", timeout=3, opener=opener) == "hello"
    assert calls == [("http://x/", 3)]
X
git add -A && as "Dana Whitfield" "dana@example.com" "Initial import of httpclient-lite"

w src/__init__.py <<'X'
X
git add -A && as "Dana Whitfield" "dana@example.com" "Add package marker"

# ---- feature/retry branches off here ----
git branch feature/retry

# ---- main: rename fetch -> fetch_json, new user agent, timeout 15 ----
w src/client.py <<'X'
"""Minimal HTTP client helpers."""
import json
import urllib.request


def fetch_json(url, timeout=10, opener=urllib.request.urlopen):
    """Return the JSON document at `url`, decoded."""
    with opener(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))
X
w tests/test_client.py <<'X'
import io

import client


class FakeResp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_json_decodes():
    calls = []

    def opener(url, timeout):
        calls.append((url, timeout))
        return FakeResp(b'{"ok": true}')

    assert client.fetch_json("http://x/", timeout=3, opener=opener) == {"ok": True}
    assert calls == [("http://x/", 3)]
X
w CHANGELOG.md <<'X'
# Changelog

## Unreleased
- Rename fetch() to fetch_json() and decode JSON responses (#39)

## 1.1.0
- Add timeout support
X
git add -A && as "Priya Raman" "priya@example.com" "Rename fetch() to fetch_json() (#39)"

w config/settings.ini <<'X'
[http]
base_url = http://127.0.0.1:8000
timeout = 15
user_agent = httpclient-lite/1.2

[logging]
level = INFO
X
git add -A && as "Priya Raman" "priya@example.com" "Send a User-Agent header and raise default timeout"

w README.md <<'X'
# httpclient-lite

Tiny HTTP helper used by our internal tools.

Usage: `from client import fetch_json`.
X
git add -A && as "Dana Whitfield" "dana@example.com" "Document fetch_json usage"

# ---- feature/retry ----
git checkout -q feature/retry
w src/client.py <<'X'
"""Minimal HTTP client helpers."""
import urllib.request


def fetch(url, timeout=10, retries=3, opener=urllib.request.urlopen):
    """Return the body of `url` as text.

    Transient network errors (OSError) are retried; at most `retries` attempts are made in total.
    """
    for attempt in range(1, retries + 1):
        try:
            with opener(url, timeout=timeout) as resp:
                return resp.read().decode("utf-8")
        except OSError:
            if attempt == retries:
                raise
X
git add -A && as "Marco Bellini" "marco@example.com" "Retry transient errors in fetch() (#41)"

w tests/test_client.py <<'X'
import io

import pytest

import client


class FakeResp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_returns_text():
    calls = []

    def opener(url, timeout):
        calls.append((url, timeout))
        return FakeResp(b"hello")

    assert client.fetch("http://x/", timeout=3, opener=opener) == "hello"
    assert calls == [("http://x/", 3)]


def flaky(failures, body):
    state = {"calls": 0}

    def opener(url, timeout):
        state["calls"] += 1
        if state["calls"] <= failures:
            raise ConnectionResetError("reset by peer")
        return FakeResp(body)

    return opener, state


def test_fetch_retries_then_succeeds():
    opener, state = flaky(2, b"hello")
    assert client.fetch("http://x/", retries=3, opener=opener) == "hello"
    assert state["calls"] == 3


def test_fetch_gives_up():
    opener, state = flaky(5, b"hello")
    with pytest.raises(OSError):
        client.fetch("http://x/", retries=2, opener=opener)
    assert state["calls"] == 2
X
git add -A && as "Marco Bellini" "marco@example.com" "Test retry behaviour"

w config/settings.ini <<'X'
[http]
base_url = http://127.0.0.1:8000
timeout = 30
retries = 3

[logging]
level = INFO
X
w CHANGELOG.md <<'X'
# Changelog

## Unreleased
- Retry transient network errors, configurable via `retries` (#41)

## 1.1.0
- Add timeout support
X
git add -A && as "Marco Bellini" "marco@example.com" "Configure retries; longer timeout for slow upstreams"

git checkout -q main
git gc -q --prune=now 2>/dev/null || true
