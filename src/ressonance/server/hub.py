"""Local index of topics to sessions, and delivery of pre-encoded frames.

Rules: delivery is a loop of `session.write(frame)` with the same bytes object; nothing is
encoded, allocated or logged per recipient. The index is keyed by `Topic`, the (app id,
channel) pair the backbone message carries, so a delivery is one dict lookup.
"""

from __future__ import annotations

from typing import Protocol

from ressonance.backbone.base import Topic


class Recipient(Protocol):
    socket_id: str

    def write(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class Hub:
    """topic -> {socket_id: session} for the sessions of this node."""

    def __init__(self) -> None:
        self._topics: dict[Topic, dict[str, Recipient]] = {}

    def add(self, topic: Topic, session: Recipient) -> bool:
        """Index `session` under `topic`; True when it is the topic's first local session."""
        sessions = self._topics.get(topic)
        if sessions is None:
            self._topics[topic] = {session.socket_id: session}
            return True
        sessions[session.socket_id] = session
        return False

    def remove(self, topic: Topic, session: Recipient) -> bool:
        """Drop `session` from `topic`; True when the topic has no local session left."""
        sessions = self._topics.get(topic)
        if sessions is None or sessions.pop(session.socket_id, None) is None:
            return False
        if sessions:
            return False
        del self._topics[topic]
        return True

    def replace(self, topic: Topic, old: Recipient, new: Recipient) -> bool:
        """Index `new` in place of `old` (same socket id) under `topic`, if `old` is there."""
        sessions = self._topics.get(topic)
        if sessions is None or sessions.get(old.socket_id) is not old:
            return False
        sessions[old.socket_id] = new
        return True

    def sessions(self, topic: Topic) -> list[Recipient]:
        return list(self._topics.get(topic, {}).values())

    def deliver(self, topic: Topic, frame: bytes, except_socket_id: str | None = None) -> int:
        """Write `frame` to every local session of `topic` but one; returns the count."""
        sessions = self._topics.get(topic)
        if not sessions:
            return 0
        if except_socket_id is None or except_socket_id not in sessions:
            recipients = list(sessions.values())
            for session in recipients:
                session.write(frame)
            return len(recipients)
        delivered = 0
        for socket_id, session in list(sessions.items()):
            if socket_id != except_socket_id:
                session.write(frame)
                delivered += 1
        return delivered

    def topics(self) -> int:
        return len(self._topics)
