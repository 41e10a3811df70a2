import hashlib
import os

CONF = "/etc/svc/worker.conf"
EXPECTED = """# Worker pool of the svc job runner. Edit with svcconf-edit only.
name = svc-worker
queue = high-priority
max_workers = 8
batch_size = 50
timeout_s = 300
# retries are per job
retries = 3
"""


def test_configuration_changed_and_nothing_else():
    with open(CONF) as f:
        assert f.read() == EXPECTED


def test_installed_by_svcconf_edit():
    with open("/var/log/svcconf.log") as f:
        lines = f.read().splitlines()
    digest = hashlib.sha256(EXPECTED.encode()).hexdigest()
    assert lines and lines[-1].endswith(f"installed {CONF} sha256={digest}"), lines


def test_lock_released():
    assert not os.path.exists("/run/svcconf.lock")
