"""The bytes of a BackboneMessage between nodes: one format for Redis and NATS.

Rules this module keeps:
- Pure: bytes in, a message out, and back. No I/O, no clock.
- Decoding is one fixed-size header unpack and a few slices: the frame is carried as is
  (never parsed or re-encoded), so a receiving node pays nothing per byte of event data.
- Every variable field is length-prefixed; the frame is the rest of the payload.
- The first byte is a format version, so a node can refuse a message from a newer node
  instead of misreading it.

Layout (network byte order):

    offset  size  field
    0       1     version (1)
    1       1     flags: bit 0 except_socket_id present, bit 1 close_code present
    2       2     close_code (0 when absent)
    4       2     topic length T
    6       1     origin length O
    7       1     except_socket_id length E (0 when absent)
    8       T     topic, UTF-8
    8+T     O     origin, UTF-8
    8+T+O   E     except_socket_id, UTF-8
    8+T+O+E ...   frame (the WebSocket frame, to the end)
"""

from __future__ import annotations

import struct
from typing import Final

from ressonance.backbone.base import BackboneMessage
from ressonance.protocol.errors import RessonanceError

VERSION: Final = 1
HAS_EXCEPT: Final = 0x01
HAS_CLOSE_CODE: Final = 0x02

_HEADER: Final = struct.Struct("!BBHHBB")
MAX_TOPIC_BYTES: Final = 0xFFFF
MAX_SHORT_FIELD_BYTES: Final = 0xFF


class WireError(RessonanceError, ValueError):
    """A backbone payload that is not a message of this format (corrupt, truncated, newer)."""


def encode_message(message: BackboneMessage) -> bytes:
    """The wire bytes of `message`."""
    topic = message.topic.encode()
    origin = message.origin.encode()
    except_id = b"" if message.except_socket_id is None else message.except_socket_id.encode()
    if len(topic) > MAX_TOPIC_BYTES:
        raise WireError(f"topic is {len(topic)} bytes; at most {MAX_TOPIC_BYTES} fit")
    if len(origin) > MAX_SHORT_FIELD_BYTES or len(except_id) > MAX_SHORT_FIELD_BYTES:
        raise WireError(f"origin and except_socket_id fit in {MAX_SHORT_FIELD_BYTES} bytes")
    flags = 0
    if message.except_socket_id is not None:
        flags |= HAS_EXCEPT
    close_code = 0
    if message.close_code is not None:
        if not 0 <= message.close_code <= 0xFFFF:
            raise WireError(f"close code {message.close_code} does not fit in 16 bits")
        flags |= HAS_CLOSE_CODE
        close_code = message.close_code
    header = _HEADER.pack(VERSION, flags, close_code, len(topic), len(origin), len(except_id))
    return b"".join((header, topic, origin, except_id, message.frame))


def decode_message(data: bytes) -> BackboneMessage:
    """The message that `encode_message` turned into `data`; WireError if it is not one."""
    if len(data) < _HEADER.size:
        raise WireError(f"payload of {len(data)} bytes is shorter than the header")
    version, flags, close_code, topic_len, origin_len, except_len = _HEADER.unpack_from(data)
    if version != VERSION:
        raise WireError(f"wire format version {version}; this node reads {VERSION}")
    start = _HEADER.size
    origin_at = start + topic_len
    except_at = origin_at + origin_len
    frame_at = except_at + except_len
    if frame_at > len(data):
        raise WireError("payload is shorter than its field lengths")
    try:
        topic = data[start:origin_at].decode()
        origin = data[origin_at:except_at].decode()
        except_id = data[except_at:frame_at].decode() if flags & HAS_EXCEPT else None
    except UnicodeDecodeError as exc:
        raise WireError(f"a text field is not UTF-8: {exc}") from None
    return BackboneMessage(
        topic=topic,
        frame=data[frame_at:],
        except_socket_id=except_id,
        origin=origin,
        close_code=close_code if flags & HAS_CLOSE_CODE else None,
    )
