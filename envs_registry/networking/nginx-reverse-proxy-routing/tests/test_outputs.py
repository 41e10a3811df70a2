"""Requests through the agent's nginx must reach the real backend services (their answers are signed)."""

import hashlib
import hmac
import http.client
import json
import subprocess

import pytest

SECRETS = {"api": b"4c1d9e0f-api-7b2a", "assets": b"9e77aa01-assets-c3f1"}


def get(path, host="edge.example"):
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    res = conn.getresponse()
    out = res.status, res.read()
    conn.close()
    return out


def backend(path, host="edge.example"):
    status, body = get(path, host)
    assert status == 200, body[:300]
    seen = json.loads(body)
    sig = seen.pop("sig")
    want = hmac.new(SECRETS[seen["service"]], json.dumps(seen, sort_keys=True).encode(), hashlib.sha256)
    assert hmac.compare_digest(sig, want.hexdigest()), "the answer was not made by the backend service"
    return seen


def test_nginx_config_is_valid():
    assert subprocess.run(["nginx", "-t"], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("path", "service", "seen_path"),
    [
        ("/api/v1/items?x=1", "api", "/v1/items?x=1"),
        ("/api/", "api", "/"),
        ("/assets/css/site.css", "assets", "/assets/css/site.css"),
        ("/assets/img/a%20b.png", "assets", "/assets/img/a%20b.png"),
    ],
)
def test_routes_reach_the_right_backend(path, service, seen_path):
    seen = backend(path, host="shop.internal")
    assert seen["service"] == service
    assert seen["path"] == seen_path
    assert seen["host"] == "shop.internal"
    assert seen["x_edge"] == "1"
    assert seen["x_forwarded_for"] == "127.0.0.1"


def test_healthz_is_answered_by_nginx():
    assert get("/healthz") == (200, b"ok")


@pytest.mark.parametrize("path", ["/", "/apix", "/other/api/x", "/asset/x"])
def test_other_paths_are_404(path):
    assert get(path)[0] == 404
