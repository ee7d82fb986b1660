"""Backbones: how a publish travels to every node with subscribers.

`create_backbone(url)` picks one by URL scheme. The client library of a networked backbone
is imported only when its URL is used (extras `ressonance[redis]`, `ressonance[nats]`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ressonance.backbone.base import Backbone
from ressonance.backbone.wire import VERSION

SCHEMES = "memory://, redis://, rediss://, nats://, tls://"


def create_backbone(
    url: str, *, prefix: str = "ressonance", wire_version: int = VERSION
) -> Backbone:
    """The backbone for `url`; `prefix` names this deployment's channels or subjects.

    `wire_version` is the format a networked backbone writes (every version in
    `wire.VERSIONS` is read): an older one lets a cluster be upgraded node by node."""
    match urlsplit(url).scheme:
        case "memory":
            from ressonance.backbone.memory import MemoryBackbone

            return MemoryBackbone()
        case "redis" | "rediss":
            from ressonance.backbone.redis import RedisBackbone

            return RedisBackbone(url, prefix=prefix, wire_version=wire_version)
        case "nats" | "tls":
            from ressonance.backbone.nats import NatsBackbone

            return NatsBackbone(url, prefix=prefix, wire_version=wire_version)
        case other:
            raise ValueError(f"backbone URL scheme {other!r} is not one of {SCHEMES}")
