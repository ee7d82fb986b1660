"""WebSocket frames built once and written to many connections (RFC 6455 §5.2).

A server frame is never masked; a text frame is FIN + opcode 1 and a 7, 16 or 64-bit length.
"""

from __future__ import annotations

import struct
from typing import Final

_FIN_TEXT: Final = 0x81


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame carrying `payload` (UTF-8 JSON)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, length) + payload
