#!/bin/bash
# Reference solution: merge, resolve the three conflicts by hand, adapt the auto-merged tests, commit.
set -euo pipefail
cd /app/repo
git checkout -q main
git merge feature/retry || true   # stops with conflicts

cat > src/client.py <<'PY'
"""Minimal HTTP client helpers."""
import json
import urllib.request


def fetch_json(url, timeout=10, retries=3, opener=urllib.request.urlopen):
    """Return the JSON document at `url`, decoded.

    Transient network errors (OSError) are retried; at most `retries` attempts are made in total.
    """
    for attempt in range(1, retries + 1):
        try:
            with opener(url, timeout=timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except OSError:
            if attempt == retries:
                raise
PY

cat > config/settings.ini <<'INI'
[http]
base_url = http://127.0.0.1:8000
timeout = 30
user_agent = httpclient-lite/1.2
retries = 3

[logging]
level = INFO
INI

cat > CHANGELOG.md <<'MD'
# Changelog

## Unreleased
- Rename fetch() to fetch_json() and decode JSON responses (#39)
- Retry transient network errors, configurable via `retries` (#41)

## 1.1.0
- Add timeout support
MD

# the test file merged cleanly but still calls the old API with a non-JSON body
sed -i 's/client\.fetch(/client.fetch_json(/; s/flaky(\([0-9]\), b"hello")/flaky(\1, b"\\"hello\\"")/' tests/test_client.py
python3 -m pytest -q -p no:cacheprovider tests
find . -name __pycache__ -prune -exec rm -rf {} +
git add src/client.py config/settings.ini CHANGELOG.md tests/test_client.py
git commit -q --no-edit
git log --oneline --graph -6
