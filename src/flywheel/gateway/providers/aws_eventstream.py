"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's ConverseStream sends it.

One message: total length (u32), headers length (u32), CRC32 of those 8 bytes, headers, payload, CRC32 of all
that precedes it (big-endian). A header is a 1-byte name length, the name, a 1-byte value type and the value;
Bedrock uses string values (type 7: a u16 length and UTF-8) for `:event-type`, `:message-type`,
`:content-type` and `:exception-type`. The decoder takes bytes as they arrive and yields whole messages; a bad
CRC or a malformed header raises `ValueError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_PRELUDE = struct.Struct(">II")
# fixed sizes of the non-string header value types: bool true/false, byte, short, int, long, timestamp, uuid
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
MAX_MESSAGE = 24 * 1024 * 1024  # the format's own limit is 16 MiB of payload


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string-valued headers."""
    head = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        head += bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(head) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _headers(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(raw):
        n = raw[i]
        name = raw[i + 1:i + 1 + n].decode()
        i += 1 + n
        if i >= len(raw):
            raise ValueError("event-stream header without a value type")
        kind = raw[i]
        i += 1
        if kind in (6, 7):
            (length,) = struct.unpack_from(">H", raw, i)
            value = raw[i + 2:i + 2 + length]
            i += 2 + length
            out[name] = value.decode() if kind == 7 else value.hex()
        elif kind in _FIXED:
            i += _FIXED[kind]
            out[name] = ""  # not used by Bedrock's events
        else:
            raise ValueError(f"unknown event-stream header value type {kind}")
    if i != len(raw):
        raise ValueError("event-stream headers overrun their length")
    return out


class EventStreamDecoder:
    """Feed bytes as they arrive; iterate the (headers, payload) of every message completed so far."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[dict[str, str], bytes]]:
        self._buf += data
        while len(self._buf) >= 12:
            total, head_len = _PRELUDE.unpack_from(self._buf)
            (prelude_crc,) = struct.unpack_from(">I", self._buf, 8)
            if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
                raise ValueError("event-stream prelude CRC mismatch")
            if not 16 <= total <= MAX_MESSAGE or head_len > total - 16:
                raise ValueError(f"event-stream message length {total} is out of range")
            if len(self._buf) < total:
                return
            message = bytes(self._buf[:total])
            del self._buf[:total]
            (crc,) = struct.unpack_from(">I", message, total - 4)
            if zlib.crc32(message[:-4]) != crc:
                raise ValueError("event-stream message CRC mismatch")
            yield _headers(message[12:12 + head_len]), message[12 + head_len:-4]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message (non-zero at the end of a stream: it was cut)."""
        return len(self._buf)
