"""The bytes of a BackboneMessage between nodes: one format for Redis and NATS.

Rules this module keeps:
- Pure: bytes in, a message out, and back. No I/O, no clock.
- Decoding is one fixed-size header unpack and a few slices: the frame is carried as is
  (never parsed or re-encoded), so a receiving node pays nothing per byte of event data.
- Every variable field is length-prefixed; the frame is the rest of the payload.
- The first byte is a format version, so a node can refuse a message from a newer node
  instead of misreading it.
- A node writes VERSION and reads it and PREVIOUS_VERSION, so during a rolling deploy the
  upgraded nodes understand what the others still publish. `encode_message` can still write
  PREVIOUS_VERSION, for a cluster whose other nodes do not read VERSION yet.

Version 2 (written): the app id and the channel are two fields, so the receiving node has
the message's topic (and app) without splitting a string.

    offset      size  field
    0           1     version (2)
    1           1     flags: bit 0 except_socket_id present, bit 1 close_code present
    2           2     close_code (0 when absent)
    4           2     app id length A
    6           2     channel length C
    8           1     origin length O
    9           1     except_socket_id length E (0 when absent)
    10          A     app id, UTF-8
    10+A        C     channel, UTF-8
    10+A+C      O     origin, UTF-8
    10+A+C+O    E     except_socket_id, UTF-8
    10+A+C+O+E  ...   frame (the WebSocket frame, to the end)

Version 1 (read): one topic field, the topic's name `<app id>:<channel>`, in place of the
two; its app id is what comes before the first `:` (app ids have none).

    offset  size  field
    0       1     version (1)
    1       1     flags, as in version 2
    2       2     close_code (0 when absent)
    4       2     topic length T
    6       1     origin length O
    7       1     except_socket_id length E (0 when absent)
    8       T     topic name, UTF-8
    8+T     O     origin, UTF-8
    8+T+O   E     except_socket_id, UTF-8
    8+T+O+E ...   frame (the WebSocket frame, to the end)
"""

from __future__ import annotations

import struct
from typing import Final

from ressonance.backbone.base import BackboneMessage, Topic
from ressonance.protocol.errors import RessonanceError

VERSION: Final = 2
PREVIOUS_VERSION: Final = 1
VERSIONS: Final = (PREVIOUS_VERSION, VERSION)  # what a node reads, and may be told to write
HAS_EXCEPT: Final = 0x01
HAS_CLOSE_CODE: Final = 0x02

_HEADER: Final = struct.Struct("!BBHHHBB")
_HEADER_V1: Final = struct.Struct("!BBHHBB")
MAX_TOPIC_BYTES: Final = 0xFFFF  # the app id and the channel each; the whole name in version 1
MAX_SHORT_FIELD_BYTES: Final = 0xFF


class WireError(RessonanceError, ValueError):
    """A backbone payload that is not a message of this format (corrupt, truncated, newer)."""


def encode_message(message: BackboneMessage, version: int = VERSION) -> bytes:
    """The wire bytes of `message`, in format `version` (VERSION or PREVIOUS_VERSION)."""
    origin = message.origin.encode()
    except_id = b"" if message.except_socket_id is None else message.except_socket_id.encode()
    if len(origin) > MAX_SHORT_FIELD_BYTES or len(except_id) > MAX_SHORT_FIELD_BYTES:
        raise WireError(f"origin and except_socket_id fit in {MAX_SHORT_FIELD_BYTES} bytes")
    flags = 0 if message.except_socket_id is None else HAS_EXCEPT
    close_code = 0
    if message.close_code is not None:
        if not 0 <= message.close_code <= 0xFFFF:
            raise WireError(f"close code {message.close_code} does not fit in 16 bits")
        flags |= HAS_CLOSE_CODE
        close_code = message.close_code
    topic = message.topic
    if version == VERSION:
        app_id, channel = _topic_field(topic.app_id), _topic_field(topic.channel)
        header = _HEADER.pack(
            VERSION, flags, close_code, len(app_id), len(channel), len(origin), len(except_id)
        )
        return b"".join((header, app_id, channel, origin, except_id, message.frame))
    if version == PREVIOUS_VERSION:
        if ":" in topic.app_id:
            raise WireError(f"app id {topic.app_id!r} has a ':', which version 1 cannot carry")
        name = _topic_field(topic.name)
        header = _HEADER_V1.pack(
            PREVIOUS_VERSION, flags, close_code, len(name), len(origin), len(except_id)
        )
        return b"".join((header, name, origin, except_id, message.frame))
    raise WireError(f"wire format version {version} is not {PREVIOUS_VERSION} or {VERSION}")


def decode_message(data: bytes) -> BackboneMessage:
    """The message that `encode_message` turned into `data`; WireError if it is not one."""
    version = data[0] if data else None
    if version == VERSION:
        return _decode(data)
    if version == PREVIOUS_VERSION:
        return _decode_v1(data)
    if version is None:
        raise WireError("payload of 0 bytes is shorter than the header")
    raise WireError(
        f"wire format version {version}; this node reads {PREVIOUS_VERSION} and {VERSION}"
    )


def _decode(data: bytes) -> BackboneMessage:
    if len(data) < _HEADER.size:
        raise WireError(f"payload of {len(data)} bytes is shorter than the header")
    _, flags, close_code, app_len, channel_len, origin_len, except_len = _HEADER.unpack_from(data)
    channel_at = _HEADER.size + app_len
    origin_at = channel_at + channel_len
    if origin_at + origin_len + except_len > len(data):
        raise WireError("payload is shorter than its field lengths")
    try:
        topic = Topic(data[_HEADER.size : channel_at].decode(), data[channel_at:origin_at].decode())
    except UnicodeDecodeError as exc:
        raise WireError(f"a text field is not UTF-8: {exc}") from None
    return _message(data, topic, flags, close_code, origin_at, origin_len, except_len)


def _decode_v1(data: bytes) -> BackboneMessage:
    if len(data) < _HEADER_V1.size:
        raise WireError(f"payload of {len(data)} bytes is shorter than the header")
    _, flags, close_code, topic_len, origin_len, except_len = _HEADER_V1.unpack_from(data)
    origin_at = _HEADER_V1.size + topic_len
    if origin_at + origin_len + except_len > len(data):
        raise WireError("payload is shorter than its field lengths")
    try:
        name = data[_HEADER_V1.size : origin_at].decode()
    except UnicodeDecodeError as exc:
        raise WireError(f"a text field is not UTF-8: {exc}") from None
    app_id, colon, channel = name.partition(":")
    if not colon:
        raise WireError(f"topic {name!r} has no ':' between app id and channel")
    return _message(
        data, Topic(app_id, channel), flags, close_code, origin_at, origin_len, except_len
    )


def _message(
    data: bytes,
    topic: Topic,
    flags: int,
    close_code: int,
    origin_at: int,
    origin_len: int,
    except_len: int,
) -> BackboneMessage:
    """The message of `topic` whose origin, except_socket_id and frame start at `origin_at`."""
    except_at = origin_at + origin_len
    frame_at = except_at + except_len
    try:
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


def _topic_field(text: str) -> bytes:
    encoded = text.encode()
    if len(encoded) > MAX_TOPIC_BYTES:
        raise WireError(f"topic field is {len(encoded)} bytes; at most {MAX_TOPIC_BYTES} fit")
    return encoded
