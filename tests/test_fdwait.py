"""Waiting on descriptors above select's limit of 1024 (a rollout with many sandboxes in flight has them)."""

from __future__ import annotations

import os
import resource
import select
import socket

import pytest

from ltenv.fdwait import wait_fds


@pytest.fixture
def high_pipe():
    """A pipe whose read end is descriptor 1500."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= 1500:
        if hard != resource.RLIM_INFINITY and hard <= 1500:
            pytest.skip(f"the open-files limit ({hard}) is below 1501")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1501, hard))
    r, w = os.pipe()
    os.dup2(r, 1500)
    os.close(r)
    yield 1500, w
    os.close(1500)
    os.close(w)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_select_fails_where_wait_fds_works(high_pipe):
    r, w = high_pipe
    with pytest.raises(ValueError, match="out of range"):
        select.select([r], [], [], 0)
    assert wait_fds([r], [], 0.05) == ([], [])  # nothing written yet: times out
    os.write(w, b"x")
    assert wait_fds([r], [w], 0.05) == ([r], [w])
    assert os.read(r, 1) == b"x"


def test_end_of_file_counts_as_readable_and_objects_come_back_as_given():
    a, b = socket.socketpair()
    try:
        assert wait_fds([a], [], 0) == ([], [])
        ready_r, ready_w = wait_fds([a], [a], 0.05)
        assert ready_r == [] and ready_w == [a]  # the socket object itself, not its number
        b.close()  # the peer hangs up: a read now returns b"", so the caller must be woken
        assert wait_fds([a], [], 1.0)[0] == [a]
        assert a.recv(10) == b""
    finally:
        a.close()


@pytest.mark.bwrap
def test_an_episode_runs_while_the_process_holds_over_1024_descriptors(store, bwrap_ok):
    """What a rollout with ~150 sandboxes in flight looks like to the one starting next: every new pipe,
    terminal and socket gets a number above 1024 (before poll, each reset there failed in select)."""
    import gymnasium as gym

    import ltenv

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-files limit ({hard}) is below 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    env = gym.make("LiteCoder/proc-fix-permission-v0", backend="bwrap", image_store=store, info_timings=False)
    try:
        obs, _ = env.reset(seed=3)
        assert "Set the mode of" in obs
        obs, *_ = env.step("echo high-fds-$((40 + 2))")
        assert "high-fds-42" in obs
        _obs, reward, terminated, _trunc, _ = env.step(ltenv.SUBMIT)
        assert terminated and reward == 0.0  # the verifier ran: nothing was fixed
    finally:
        env.close()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
