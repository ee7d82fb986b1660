"""The hub: which local sessions a topic has, and delivery of one frame to all of them."""

from __future__ import annotations

from ressonance.backbone.base import Topic
from ressonance.protocol.frames import text_frame
from ressonance.server.hub import Hub
from tests.fakes import FakeOutlet


class Recipient:
    """The part of a session the hub uses."""

    def __init__(self, socket_id: str) -> None:
        self.socket_id = socket_id
        self.outlet = FakeOutlet()
        self.frames: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.outlet.write(frame)

    def close(self, code: int, reason: str) -> None:
        self.outlet.close(code, reason)


T, NEWS, SPORTS = Topic("1", "t"), Topic("1", "news"), Topic("1", "sports")
FRAME = text_frame(b'{"event":"e","channel":"news","data":"{}"}')


def test_the_first_add_and_the_last_remove_of_a_topic_are_reported() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")

    assert hub.add(T, a) is True
    assert hub.add(T, b) is False
    assert hub.add(T, a) is False  # again: still not the first
    assert hub.remove(T, a) is False
    assert hub.remove(T, b) is True
    assert hub.topics() == 0


def test_removing_what_is_not_there_reports_nothing() -> None:
    hub = Hub()
    a = Recipient("1.1")
    hub.add(T, a)

    assert hub.remove(Topic("1", "other"), a) is False
    assert hub.remove(T, Recipient("9.9")) is False
    assert hub.remove(T, a) is True
    assert hub.remove(T, a) is False


def test_deliver_writes_the_same_bytes_to_every_session_but_the_excluded_one() -> None:
    hub = Hub()
    a, b, c = Recipient("1.1"), Recipient("1.2"), Recipient("1.3")
    for recipient in (a, b, c):
        hub.add(NEWS, recipient)

    delivered = hub.deliver(NEWS, FRAME, except_socket_id="1.2")

    assert delivered == 2
    assert a.frames[0] is FRAME  # encoded once, shared by every recipient
    assert c.frames[0] is FRAME
    assert b.frames == []
    a.outlet.assert_received("e", channel="news")


def test_deliver_to_a_topic_without_sessions_delivers_nothing() -> None:
    hub = Hub()
    bystander = Recipient("1.1")
    hub.add(SPORTS, bystander)

    assert hub.deliver(NEWS, FRAME) == 0
    bystander.outlet.assert_nothing_received()


def test_a_session_removed_from_a_topic_receives_no_more() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")
    hub.add(NEWS, a)
    hub.add(NEWS, b)
    hub.remove(NEWS, a)

    assert hub.deliver(NEWS, FRAME) == 1
    assert a.frames == []


def test_sessions_lists_a_topics_sessions() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")
    hub.add(NEWS, a)
    hub.add(NEWS, b)

    assert hub.sessions(NEWS) == [a, b]
    assert hub.sessions(Topic("1", "nothing")) == []
    assert hub.topics() == 1


def test_a_session_may_leave_during_delivery() -> None:
    """A write that closes a session (a slow client) must not break the loop for the others."""
    hub = Hub()
    received: list[str] = []

    class Leaving(Recipient):
        def write(self, frame: bytes) -> None:
            received.append(self.socket_id)
            hub.remove(NEWS, self)

    for socket_id in ("1.1", "1.2", "1.3"):
        hub.add(NEWS, Leaving(socket_id))

    assert hub.deliver(NEWS, FRAME) == 3
    assert received == ["1.1", "1.2", "1.3"]
    assert hub.topics() == 0
