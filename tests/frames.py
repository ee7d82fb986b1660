"""Client WebSocket frames (RFC 6455 §5.2) as tests send them: the one builder of every layer.

The frame reader's tables and properties, the front door and the raw-socket e2e tests all
build what a client sends here. A client frame is masked (§5.3); `masked=False`, `rsv` bits
and a `length` other than the payload's build the violations the server must refuse. The
mask is fixed unless one is given, so a frame's bytes are the same on every run. Masking is
written out from §5.3 here, not borrowed from the server's reader, so that tests check it.
"""

from __future__ import annotations

import struct
from typing import Final

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
MASK: Final = b"\x37\xfa\x21\x3d"


def frame_header(
    opcode: int, size: int, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """The first 2, 4 or 10 bytes: FIN, RSV and opcode, the mask bit and a 7, 16 or 64-bit
    payload length (the mask key, when there is one, follows)."""
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    if size < 126:
        return bytes((first, bit | size))
    if size < 1 << 16:
        return struct.pack("!BBH", first, bit | 126, size)
    return struct.pack("!BBQ", first, bit | 127, size)


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes = MASK,
    length: int | None = None,
) -> bytes:
    """A client frame; `length` overrides the payload length written in the header."""
    size = len(payload) if length is None else length
    header = frame_header(opcode, size, fin=fin, rsv=rsv, masked=masked)
    if not masked:
        return header + payload
    return header + mask + masked_payload(payload, mask)


def masked_payload(payload: bytes, mask: bytes) -> bytes:
    """Byte i of `payload` XOR byte i % 4 of `mask` (§5.3), in one big-integer operation."""
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The body of a close frame: a 2-byte status code, then a UTF-8 reason (§5.5.1)."""
    return struct.pack("!H", code) + reason
