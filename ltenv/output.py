"""Bounded capture of program output: keep the head and the tail, count what was dropped, strip ANSI."""

from __future__ import annotations

import re

# CSI sequences, OSC sequences (terminated by BEL or ST), other two-byte escapes, and stray C0 controls
# except tab and newline. Carriage returns are handled separately (progress bars).
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS/SOS/PM/APC
    r"|\x1b[@-Z\\-_]"  # Fe escapes
    r"|\x1b[ -/][@-~]"  # nF escapes (charset selection)
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
)


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences and control characters; resolve carriage-return overwrites."""
    text = text.replace("\r\n", "\n")
    text = _ANSI_RE.sub("", text)
    if "\r" in text:
        # A bare CR overwrites the line (progress bars): keep what a terminal would finally show.
        text = "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line else line for line in text.split("\n"))
    return text


class HeadTailBuffer:
    """Keeps the first ``limit // 2`` and last ``limit // 2`` bytes of a stream of any length.

    Memory stays O(limit) however much is written, so ``yes`` or ``cat /dev/urandom`` cannot exhaust it.

    Example:
        >>> b = HeadTailBuffer(8); b.write(b"0123456789abcdef"); b.getvalue()
        b'0123\\n[... 8 bytes truncated ...]\\ncdef'
    """

    def __init__(self, limit: int):
        self.limit = max(2, limit)
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        half = self.limit // 2
        room = half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * half:
                # Trim lazily so a stream of tiny writes stays amortized O(1) per byte.
                del self._tail[: len(self._tail) - half]

    @property
    def dropped(self) -> int:
        return max(0, self.total - self.limit // 2 - min(len(self._tail), self.limit // 2))

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def getvalue(self) -> bytes:
        half = self.limit // 2
        tail = bytes(self._tail[-half:]) if len(self._tail) > half else bytes(self._tail)
        if self.dropped:
            return bytes(self._head) + f"\n[... {self.dropped} bytes truncated ...]\n".encode() + tail
        return bytes(self._head) + tail


def decode(data: bytes) -> str:
    """UTF-8 with invalid bytes replaced (never raises)."""
    return data.decode("utf-8", errors="replace")
