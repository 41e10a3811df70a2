"""Bounded output capture and terminal text cleanup."""

from ltenv.output import HeadTailBuffer, decode, strip_ansi


def test_head_tail_keeps_both_ends_and_counts_dropped():
    b = HeadTailBuffer(10)
    for i in range(1000):
        b.write(f"{i:04d}".encode())
    value = b.getvalue()
    assert value.startswith(b"00000")
    assert value.endswith(b"80999")  # last 5 bytes of "...09980999"
    assert b.total == 4000
    assert b.dropped == 4000 - 10
    assert b"3990 bytes truncated" in value


def test_head_tail_memory_is_bounded():
    b = HeadTailBuffer(1024)
    chunk = b"x" * 65536
    for _ in range(200):
        b.write(chunk)
    assert len(b._tail) <= 2 * 512 + len(chunk)  # trimmed after every write
    assert len(b.getvalue()) < 1100


def test_small_output_is_untouched():
    b = HeadTailBuffer(100)
    b.write(b"hello\n")
    assert b.getvalue() == b"hello\n" and not b.truncated


def test_strip_ansi_and_carriage_returns():
    assert strip_ansi("\x1b[01;34mdir\x1b[0m\r\n") == "dir\n"
    assert strip_ansi("\x1b]0;title\x07prompt") == "prompt"
    assert strip_ansi("progress 10%\rprogress 100%\n") == "progress 100%\n"
    assert strip_ansi("a\x00b\x07c\td") == "abc\td"


def test_decode_replaces_invalid_utf8():
    assert decode(b"ok \xff\xfe end") == "ok \ufffd\ufffd end"
