"""Disk quotas (issue 15, item 3): a sandbox fills at most its ``storage_mb``, on both backends.

A runaway write stops with ENOSPC inside the sandbox wherever it lands (the root, ``/tmp``, the working
directory, the engine-managed ``/etc/hosts``), the sandbox's writable layer sits on a filesystem no larger than
the quota (so the host disk gets no more), tasks that say nothing get :data:`DEFAULT_STORAGE_MB`, the
mechanism is cheap at start and close, and what a killed driver leaves behind is collected.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ltenv.sandbox import create_sandbox, disk, image_task, spec_for
from ltenv.sandbox.base import DEFAULT_STORAGE_MB
from ltenv.tasks import load_task

QUOTA_MB = 64
GREETING = Path(__file__).parent.parent / "fixtures" / "tasks" / "write-greeting"


def _require_quotas() -> None:
    why = disk.unavailable()
    if why:
        if os.environ.get("LTENV_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"required in CI but unavailable: {why}")
        pytest.skip(why)


@pytest.fixture
def boxes():
    made = []
    yield made
    for sb in made:
        sb.close()


def _start(boxes, backend, store, fixture_task, **overrides):
    sb = create_sandbox(
        fixture_task("write-greeting"), backend=backend, store=store, memory_mb=512, **overrides
    )
    boxes.append(sb)
    sb.start()
    return sb


def _host_upper(sb) -> Path:
    """Host path of the sandbox's writable layer."""
    if hasattr(sb, "upper_dir"):
        return Path(sb.upper_dir)
    from ltenv.sandbox.docker import api_client

    return Path(api_client().inspect_container(sb.container_id)["GraphDriver"]["Data"]["UpperDir"])


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ")[4] for line in f.read().splitlines()]


def test_a_runaway_write_stops_with_enospc_everywhere(backend, store, fixture_task, boxes):
    _require_quotas()
    sb = _start(boxes, backend, store, fixture_task, storage_mb=QUOTA_MB)
    # The writable layer is on a loop device no larger than the quota: that bounds what reaches the host disk.
    dev = os.stat(_host_upper(sb)).st_dev
    assert os.major(dev) == 7, "the writable layer is not on its own filesystem"
    size = int(Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/size").read_text()) * 512
    assert size <= QUOTA_MB << 20
    # dd is bounded (twice the quota) so that a missing quota fails the test instead of filling the disk.
    for target in ("/big", "/tmp/big", f"{sb.spec.workdir}/big", "/etc/hosts"):
        res = sb.exec(
            [
                "sh",
                "-c",
                f'dd if=/dev/zero of="$1" bs=1M count={2 * QUOTA_MB}; echo "rc=$?"; stat -c %s "$1"; rm -f "$1"',
                "sh",
                target,
            ],
            timeout=60,
        )
        out = res.text
        assert "No space left on device" in out, f"{target}: {out[-400:]}"
        assert "rc=1" in out, f"{target}: {out[-400:]}"
        written = int(res.stdout.decode().split()[-1])
        assert written <= QUOTA_MB << 20, f"{target}: {written} bytes written"
    # The space is back once the file is gone: the sandbox stays usable.
    assert sb.exec(["sh", "-c", "echo ok > /after && cat /after"]).stdout == b"ok\n"


def test_tasks_without_storage_mb_get_the_default(backend, store, fixture_task, boxes):
    _require_quotas()
    sb = _start(boxes, backend, store, fixture_task)
    assert sb.spec.storage_mb == DEFAULT_STORAGE_MB
    res = sb.exec(["df", "-P", "-m", "/"])
    total_mb = int(res.stdout.decode().splitlines()[-1].split()[1])
    assert 0.9 * DEFAULT_STORAGE_MB <= total_mb <= DEFAULT_STORAGE_MB, res.text


def test_storage_mb_flows_from_the_task_to_the_spec(tmp_path):
    assert spec_for(load_task(GREETING)).storage_mb == DEFAULT_STORAGE_MB
    task_dir = tmp_path / "big-disk"
    shutil.copytree(GREETING, task_dir)
    toml = task_dir / "task.toml"
    toml.write_text(toml.read_text().replace("[environment]\n", '[environment]\nstorage = "3G"\n'))
    assert spec_for(load_task(task_dir)).storage_mb == 3072
    assert spec_for(load_task(task_dir), storage_mb=None).storage_mb is None


def test_start_and_close_cost_little(tmp_path):
    _require_quotas()
    disk.Scratch.create(tmp_path / "warm", DEFAULT_STORAGE_MB).release()  # the template is made once per size
    made, released = [], []
    for i in range(10):
        t0 = time.perf_counter()
        scratch = disk.Scratch.create(tmp_path / f"d{i}", DEFAULT_STORAGE_MB)
        t1 = time.perf_counter()
        (scratch.path / "upper").mkdir()
        scratch.release()
        released.append(time.perf_counter() - t1)
        made.append(t1 - t0)
    # Typically ~5 ms each on a loaded 2-core machine; the bound leaves room for a busy CI host.
    assert statistics.median(made) < 0.1 and statistics.median(released) < 0.1, (made, released)
    assert not any(m.startswith(str(tmp_path)) for m in _mount_points())


def test_release_discards_unwritten_data_quickly(tmp_path):
    _require_quotas()
    scratch = disk.Scratch.create(tmp_path / "d", 1024)
    with open(scratch.path / "big", "wb") as f:
        for _ in range(256):
            f.write(b"\0" * (1 << 20))
    t0 = time.perf_counter()
    scratch.release()
    assert time.perf_counter() - t0 < 2.0
    assert os.listdir(tmp_path / "d") == []


def test_gc_detaches_what_a_killed_driver_left(tmp_path):
    _require_quotas()
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from ltenv.sandbox import disk
        disk.Scratch.create(Path({str(tmp_path / "d")!r}), {QUOTA_MB})
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert str(tmp_path / "d") in _mount_points()  # a killed process releases nothing itself
    assert disk.gc_scratch() >= 1
    assert str(tmp_path / "d") not in _mount_points()
    assert not [p for p in disk.scratch_dir().glob(f"{disk.IMAGE_PREFIX}{proc.pid}-*")]


@pytest.mark.docker
def test_docker_gc_removes_the_filesystem_of_a_killed_driver(store, fixture_task):
    _require_quotas()
    from ltenv.sandbox.docker import gc_containers

    tag, _ = store.engine_image(image_task(fixture_task("write-greeting")))
    code = textwrap.dedent(
        f"""
        import time
        from ltenv.sandbox.base import SandboxSpec
        from ltenv.sandbox.docker import DockerSandbox
        sb = DockerSandbox({tag!r}, SandboxSpec(storage_mb={QUOTA_MB}))
        sb.start()
        print(sb.container_id, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        cid = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cid and any(m.endswith(f"/containers/{cid}") for m in _mount_points())
    gc_containers()
    assert not any(cid in m for m in _mount_points())


def test_without_a_size_the_folder_is_plain(tmp_path):
    scratch = disk.Scratch.create(tmp_path / "plain", None)
    assert scratch.size_mb is None and scratch.mounts == []
    assert os.stat(scratch.path).st_dev == os.stat(tmp_path).st_dev
    scratch.release()
    assert scratch.path.is_dir()


def test_unavailable_quotas_warn_once(caplog):
    with caplog.at_level("WARNING", logger="ltenv.sandbox.disk"):
        disk.warn_unlimited("test reason 7d1f")
        disk.warn_unlimited("test reason 7d1f")
    hits = [r for r in caplog.records if "test reason 7d1f" in r.getMessage()]
    assert len(hits) == 1 and "WITHOUT a disk quota" in hits[0].getMessage()
