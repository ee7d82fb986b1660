"""Picking a backbone by URL scheme (backbone/__init__.py), and NATS subject names.

Subjects are made from the topic name `<app id>:<channel>`, as in every wire version, so
nodes of two versions share them in a rolling deploy.
"""

from __future__ import annotations

import base64
import re
from importlib.util import find_spec

import pytest

from ressonance.backbone import create_backbone
from ressonance.backbone.base import Topic
from ressonance.backbone.memory import MemoryBackbone
from ressonance.backbone.nats import NatsBackbone, subject_of
from ressonance.backbone.redis import RedisBackbone
from ressonance.protocol.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryBackbone),
        ("redis://127.0.0.1:6379/0", RedisBackbone),
        ("rediss://user:pw@redis.example:6380", RedisBackbone),
        ("nats://127.0.0.1:4222", NatsBackbone),
        ("tls://nats.example:4222", NatsBackbone),
    ],
)
def test_the_scheme_picks_the_backbone(url: str, kind: type) -> None:
    assert isinstance(create_backbone(url), kind)


@pytest.mark.parametrize("url", ["kafka://broker:9092", "127.0.0.1:6379", ""])
def test_an_unknown_scheme_names_the_accepted_ones(url: str) -> None:
    with pytest.raises(ValueError, match="memory://, redis://, rediss://, nats://, tls://"):
        create_backbone(url)


@pytest.mark.parametrize(
    ("module", "extra", "url"),
    [("redis", "redis", "redis://localhost"), ("nats", "nats", "nats://localhost")],
)
def test_a_missing_client_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str, url: str
) -> None:
    target = f"ressonance.backbone.{module}.find_spec"
    monkeypatch.setattr(target, lambda name: None if name == module else find_spec(name))

    with pytest.raises(ConfigError, match=rf"pip install 'ressonance\[{extra}\]'"):
        create_backbone(url)


@pytest.mark.parametrize(
    "topic", ["1:news", "1:presence-a.b", "1:#watchlist-u", "1:x@y,z;w=v", "1:*>", "1:a b", "1:é"]
)
def test_a_topic_is_one_safe_reversible_subject_token(topic: str) -> None:
    app_id, _, channel = topic.partition(":")

    subject = subject_of("ressonance.prod", Topic(app_id, channel))

    prefix, _, token = subject.rpartition(".")
    assert prefix == "ressonance.prod"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode() == topic


@pytest.mark.parametrize("prefix", ["", "a..b", "a.*", ">", "has space"])
def test_a_prefix_that_is_not_a_subject_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="nats prefix"):
        NatsBackbone("nats://localhost", prefix=prefix)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "nats://127.0.0.1:4222"])
@pytest.mark.parametrize("version", [1, 2])
def test_a_networked_backbone_writes_the_wire_version_it_is_given(url: str, version: int) -> None:
    backbone = create_backbone(url, wire_version=version)

    assert isinstance(backbone, RedisBackbone | NatsBackbone)
    assert backbone._wire_version == version
