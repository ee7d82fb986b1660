"""Backbones: how a publish travels to every node with subscribers.

`create_backbone(url)` picks one by URL scheme. The client library of a networked backbone
is imported only when its URL is used (extras `ressonance[redis]`, `ressonance[nats]`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ressonance.backbone.base import Backbone

SCHEMES = "memory://, redis://, rediss://, nats://, tls://"


def create_backbone(url: str, *, prefix: str = "ressonance") -> Backbone:
    """The backbone for `url`; `prefix` names this deployment's channels or subjects."""
    match urlsplit(url).scheme:
        case "memory":
            from ressonance.backbone.memory import MemoryBackbone

            return MemoryBackbone()
        case "redis" | "rediss":
            from ressonance.backbone.redis import RedisBackbone

            return RedisBackbone(url, prefix=prefix)
        case "nats" | "tls":
            from ressonance.backbone.nats import NatsBackbone

            return NatsBackbone(url, prefix=prefix)
        case other:
            raise ValueError(f"backbone URL scheme {other!r} is not one of {SCHEMES}")
