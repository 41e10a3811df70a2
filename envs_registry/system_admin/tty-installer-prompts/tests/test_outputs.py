import hashlib
import json
import os

CONFIG = "/srv/labctl/etc/labctl.json"


def load():
    with open(CONFIG) as f:
        return json.load(f)


def test_installed_with_the_requested_answers():
    cfg = load()
    assert cfg["port"] == 9443
    assert cfg["channel"] == "beta"
    assert cfg["admin"] == "ada"
    assert cfg["telemetry"] is False


def test_password_hash_is_salted_and_matches():
    salt, digest = load()["admin_password_sha256"].split("$")
    assert len(salt) == 16
    assert digest == hashlib.sha256((salt + "Lovelace-1815").encode()).hexdigest()
    with open(CONFIG) as f:
        assert "Lovelace-1815" not in f.read()


def test_installer_ran_on_a_terminal():
    with open("/var/log/labctl-install.log") as f:
        lines = f.read().splitlines()
    assert any("installed prefix=/srv/labctl on-terminal=" in line for line in lines), lines


def test_nothing_installed_at_the_default_prefix():
    assert not os.path.exists("/opt/labctl")
