"""Save-file format used by Quarry Knights (QSAV).

Layout (all integers little-endian):

    offset  size  field
    0       4     magic  b"QSAV"
    4       1     format version (1 = legacy build, 2 = current build)
    5       1     flags (bit 0: payload is zlib-compressed)
    6       2     slot number
    8       4     payload length in bytes (as stored on disk)
    12      4     integrity word (see _integrity)
    16      n     payload

The decoded payload is UTF-8 text, one `key=value` per line.
"""
import struct
import zlib

MAGIC = b"QSAV"
HEADER = struct.Struct("<4sBBHII")
FLAG_ZLIB = 0x01
_V2_MASK = 0x0BADC0DE
REQUIRED_KEYS = ("player", "level", "gold", "hp", "checkpoint")


class SaveError(Exception):
    pass


def _integrity(version, head12, payload):
    if version == 1:
        # legacy build: plain Adler-32 over the stored payload
        return zlib.adler32(payload) & 0xFFFFFFFF
    if version == 2:
        # current build: CRC-32 over the first 12 header bytes and the stored payload, masked
        return (zlib.crc32(head12 + payload) ^ _V2_MASK) & 0xFFFFFFFF
    raise SaveError(f"unsupported version {version}")


def load_bytes(data):
    if len(data) < HEADER.size:
        raise SaveError("file too short")
    magic, version, flags, slot, length, word = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SaveError("bad magic")
    if version not in (1, 2):
        raise SaveError(f"unsupported version {version}")
    if len(data) != HEADER.size + length:
        raise SaveError(f"size mismatch: header says {length} payload bytes, file has {len(data) - HEADER.size}")
    payload = data[HEADER.size:]
    if _integrity(version, data[:12], payload) != word:
        raise SaveError("integrity check failed")
    if flags & FLAG_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise SaveError(f"cannot decompress payload: {exc}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SaveError("payload is not UTF-8")
    values = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise SaveError(f"malformed line {line!r}")
        k, v = line.split("=", 1)
        values[k.strip()] = v.strip()
    missing = [k for k in REQUIRED_KEYS if k not in values]
    if missing:
        raise SaveError(f"missing keys: {', '.join(missing)}")
    return {"version": version, "flags": flags, "slot": slot, "values": values}


def load(path):
    with open(path, "rb") as f:
        return load_bytes(f.read())
