"""Waiting on descriptors of any number.

``select.select`` refuses descriptors at or above ``FD_SETSIZE`` (1024): a rollout with a hundred sandboxes in
flight, each holding a terminal, pipes and sockets, passes that number and every ``select`` then raises
``ValueError: filedescriptor out of range``. :func:`wait_fds` has the same contract on ``poll(2)``, which has
no such limit.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


def _fileno(obj: Any) -> int:
    return obj if isinstance(obj, int) else obj.fileno()


def wait_fds(
    read: Sequence[T], write: Sequence[T] = (), timeout: float | None = None
) -> tuple[list[T], list[T]]:
    """The members of ``read`` that are readable and of ``write`` that are writable, waiting up to ``timeout``
    seconds (``None``: until one is). Members are descriptor numbers or objects with ``fileno()``, returned
    as given. As with ``select``, end of file, a hang-up or an error counts as ready, so the caller's read
    or write sees it."""
    poller = select.poll()
    masks: dict[int, int] = {}
    for obj in read:
        masks[_fileno(obj)] = masks.get(_fileno(obj), 0) | select.POLLIN | select.POLLPRI
    for obj in write:
        masks[_fileno(obj)] = masks.get(_fileno(obj), 0) | select.POLLOUT
    for fd, mask in masks.items():
        poller.register(fd, mask)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    events = dict(poller.poll(ms))
    readable = [obj for obj in read if events.get(_fileno(obj), 0) & _READABLE]
    writable = [obj for obj in write if events.get(_fileno(obj), 0) & _WRITABLE]
    return readable, writable
