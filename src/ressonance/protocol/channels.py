"""Channel names: what kind a name denotes and whether it is allowed (reference §3).

Prefixes are matched with their trailing dash, longest first, so `private-encrypted-cache-x`
is an encrypted cache channel and `privatex` is a public channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

USER_CHANNEL_PREFIX: Final = "#server-to-user-"

_NAME_RE: Final = re.compile(r"[-a-zA-Z0-9_=@,.;]+")


class ChannelKind(Enum):
    """How a channel is authorized and what it carries."""

    PUBLIC = "public"
    PRIVATE = "private"
    ENCRYPTED = "encrypted"
    PRESENCE = "presence"
    USER = "user"


# Not frozen (a frozen dataclass's __init__ sets each field through object.__setattr__:
# ~1 % of a connect or publish each); built per channel name read, never changed once built.
@dataclass(slots=True)
class Channel:
    """A classified channel name."""

    name: str
    kind: ChannelKind
    cached: bool

    @property
    def needs_auth(self) -> bool:
        """Private, encrypted and presence channels need a signature to subscribe."""
        return self.kind in (ChannelKind.PRIVATE, ChannelKind.ENCRYPTED, ChannelKind.PRESENCE)

    @property
    def is_presence(self) -> bool:
        return self.kind is ChannelKind.PRESENCE

    @property
    def accepts_client_events(self) -> bool:
        """Client events only on private and presence channels (reference §2.4)."""
        return self.kind in (ChannelKind.PRIVATE, ChannelKind.PRESENCE)

    @property
    def user_id(self) -> str:
        """The user a `#server-to-user-{id}` channel belongs to ("" for other kinds)."""
        if self.kind is ChannelKind.USER:
            return self.name[len(USER_CHANNEL_PREFIX) :]
        return ""


# Longest prefix first; (prefix, kind, cached).
_PREFIXES: Final = (
    ("private-encrypted-cache-", ChannelKind.ENCRYPTED, True),
    ("private-encrypted-", ChannelKind.ENCRYPTED, False),
    ("private-cache-", ChannelKind.PRIVATE, True),
    ("presence-cache-", ChannelKind.PRESENCE, True),
    ("cache-", ChannelKind.PUBLIC, True),
    ("private-", ChannelKind.PRIVATE, False),
    ("presence-", ChannelKind.PRESENCE, False),
    (USER_CHANNEL_PREFIX, ChannelKind.USER, False),
)


def classify(name: str) -> Channel:
    """Return the kind of channel `name` denotes (it is not validated here)."""
    for prefix, kind, cached in _PREFIXES:
        if name.startswith(prefix):
            return Channel(name, kind, cached)
    return Channel(name, ChannelKind.PUBLIC, False)


def channel_name_problem(name: object, max_length: int) -> str | None:
    """Say what is wrong with a channel name, or None when it is valid.

    Allowed: `[-a-zA-Z0-9_=@,.;]`, at most `max_length` characters; `#` only as the
    `#server-to-user-` prefix (reference §3).
    """
    if not isinstance(name, str) or not name:
        return "Channel name must be a non-empty string"
    if len(name) > max_length:
        return f"Channel name is longer than {max_length} characters"
    body = name[len(USER_CHANNEL_PREFIX) :] if name.startswith(USER_CHANNEL_PREFIX) else name
    if not _NAME_RE.fullmatch(body):
        return "Channel name may only contain letters, digits and -_=@,.;"
    return None
