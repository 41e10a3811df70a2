"""The sandbox contract, on every backend: what programs see inside, isolation, limits, file transfer."""

from __future__ import annotations

import os
import textwrap
import time


def test_exec_runs_inside_with_image_config(sandbox):
    res = sandbox.exec(["bash", "-c", "pwd; id -u; hostname; cat seed.txt; echo $LANG"])
    assert res.ok, res.text
    assert res.stdout.decode().split("\n")[:5] == ["/app", "0", "sandbox", "seed-write-greeting", "C.UTF-8"]


def test_exit_codes_and_stderr(sandbox):
    res = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (res.exit_code, res.stdout, res.stderr) == (7, b"out\n", b"err\n")
    missing = sandbox.exec(["no-such-program"])
    assert missing.exit_code == 127 and b"no-such-program" in missing.stderr


def test_network_is_off_by_default(sandbox):
    code = textwrap.dedent(
        """
        import socket
        s = socket.socket(); s.settimeout(2)
        try:
            s.connect(("1.1.1.1", 53)); print("CONNECTED")
        except OSError as e:
            print("ERR", e.errno)
        """
    )
    res = sandbox.exec(["python3", "-c", code])
    assert res.stdout.startswith(b"ERR"), res.text
    links = sandbox.exec(["ip", "-o", "link"]).stdout.decode().strip().splitlines()
    assert len(links) == 1 and ": lo:" in links[0]


def test_loopback_works(sandbox):
    code = (
        "import socket,threading;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();p=s.getsockname()[1];"
        "threading.Thread(target=lambda:s.accept()[0].sendall(b'pong'),daemon=True).start();"
        "c=socket.create_connection(('127.0.0.1',p));print(c.recv(4).decode())"
    )
    assert sandbox.exec(["python3", "-c", code]).stdout == b"pong\n"


def test_flooding_exec_output_is_bounded(sandbox):
    res = sandbox.exec(["bash", "-c", "head -c 50000000 /dev/urandom"], max_output=4096, timeout=60)
    assert res.ok
    assert len(res.stdout) < 4096 + 100
    assert res.stdout_dropped > 49_000_000


def test_exec_timeout(sandbox):
    t0 = time.monotonic()
    res = sandbox.exec(["sleep", "30"], timeout=1)
    assert res.timed_out and res.exit_code == 124
    assert time.monotonic() - t0 < 6
    assert sandbox.exec(["true"]).ok


def test_put_and_get(sandbox, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f.txt").write_text("content")
    (tmp_path / "d" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(tmp_path / "d" / "run.sh", 0o755)
    sandbox.put(tmp_path / "d", "/opt/stuff")
    assert sandbox.get("/opt/stuff/sub/f.txt") == b"content"
    assert sandbox.exec(["/opt/stuff/run.sh"]).stdout == b"ran\n"
    sandbox.put_bytes(b"\x00\x01binary", "/tmp/b.bin")
    assert sandbox.get("/tmp/b.bin") == b"\x00\x01binary"
    assert sandbox.get("/does/not/exist") is None


def test_symlinks_planted_by_the_agent_resolve_inside(sandbox, tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    # The agent points /tests at a path that also exists on the host; copying tests in must not write there.
    sandbox.exec(["mkdir", "-p", str(host_dir)])
    sandbox.exec(["ln", "-s", str(host_dir), "/tests"])
    src = tmp_path / "tests"
    src.mkdir()
    (src / "test.sh").write_text("echo hi\n")
    sandbox.put(src, "/tests")
    assert list(host_dir.iterdir()) == []
    assert sandbox.get(f"{host_dir}/test.sh") == b"echo hi\n"  # it landed inside the sandbox


def test_tests_and_solution_are_not_in_the_image(sandbox):
    res = sandbox.exec(["bash", "-c", "ls -d /tests /solution /app/tests /app/solution 2>&1; true"])
    assert b"No such file" in res.stdout and b"/tests\n" not in res.stdout


def test_memory_limit_kills_hog(sandbox):
    res = sandbox.exec(["python3", "-c", "x = bytearray(2 * 1024**3); print('allocated')"], timeout=60)
    assert b"allocated" not in res.stdout
    assert res.exit_code != 0
    assert sandbox.exec(["echo", "alive"]).stdout == b"alive\n"


def test_exec_timeout_kills_the_whole_process_tree(sandbox):
    res = sandbox.exec(["sh", "-c", "sleep 300 & sleep 301 & wait"], timeout=1)
    assert res.timed_out
    left = sandbox.exec(["sh", "-c", "for p in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <$p; echo; done"])
    assert b"sleep 30" not in left.stdout, left.stdout


def test_root_can_do_what_root_does_in_a_container(sandbox):
    """`chown` to other users, dropping to another user (`su`, `setpriv`: what apt does to fetch as `_apt`),
    `chroot`, binding a low port: Docker's default capabilities, on both backends."""
    script = (
        "set -e; touch /tmp/f; chown 65534:65534 /tmp/f; stat -c %u:%g /tmp/f; "
        "su -s /bin/sh nobody -c 'id -u'; "
        "setpriv --reuid=65534 --regid=65534 --init-groups id -g; "
        "chroot / true && echo chroot-ok; "
        'python3 -c \'import socket; s=socket.socket(); s.bind(("127.0.0.1", 80)); print("bind-ok")\''
    )
    res = sandbox.exec(["bash", "-c", script], timeout=60)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [b"65534:65534", b"65534", b"65534", b"chroot-ok", b"bind-ok"], res.stdout
