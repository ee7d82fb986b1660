"""WebSocket frames built once and written to many connections (RFC 6455 §5.2).

A server frame is never masked; a text frame is FIN + opcode 1 and a 7, 16 or 64-bit length.
A close frame is FIN + opcode 8 with a 2-byte code and a UTF-8 reason (§5.5.1).
"""

from __future__ import annotations

import struct
from typing import Final

_FIN_TEXT: Final = 0x81
_FIN_CLOSE: Final = 0x88
_FIN_PONG: Final = 0x8A
MAX_CLOSE_REASON_BYTES: Final = 123  # a control frame carries at most 125 bytes


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame carrying `payload` (UTF-8 JSON)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, length) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """One unmasked close frame with `code` and `reason`, cut to whole UTF-8 characters."""
    encoded = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore").encode()
    payload = struct.pack("!H", code) + encoded
    return bytes((_FIN_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """One unmasked pong answering a ping with `payload` (at most 125 bytes, §5.5.3)."""
    return bytes((_FIN_PONG, len(payload))) + payload
