"""The hub: which local sessions a topic has, and delivery of one frame to all of them."""

from __future__ import annotations

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


FRAME = text_frame(b'{"event":"e","channel":"news","data":"{}"}')


def test_the_first_add_and_the_last_remove_of_a_topic_are_reported() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")

    assert hub.add("t", a) is True
    assert hub.add("t", b) is False
    assert hub.add("t", a) is False  # again: still not the first
    assert hub.remove("t", a) is False
    assert hub.remove("t", b) is True
    assert hub.topics() == 0


def test_removing_what_is_not_there_reports_nothing() -> None:
    hub = Hub()
    a = Recipient("1.1")
    hub.add("t", a)

    assert hub.remove("other", a) is False
    assert hub.remove("t", Recipient("9.9")) is False
    assert hub.remove("t", a) is True
    assert hub.remove("t", a) is False


def test_deliver_writes_the_same_bytes_to_every_session_but_the_excluded_one() -> None:
    hub = Hub()
    a, b, c = Recipient("1.1"), Recipient("1.2"), Recipient("1.3")
    for recipient in (a, b, c):
        hub.add("news", recipient)

    delivered = hub.deliver("news", FRAME, except_socket_id="1.2")

    assert delivered == 2
    assert a.frames[0] is FRAME  # encoded once, shared by every recipient
    assert c.frames[0] is FRAME
    assert b.frames == []
    a.outlet.assert_received("e", channel="news")


def test_deliver_to_a_topic_without_sessions_delivers_nothing() -> None:
    hub = Hub()
    bystander = Recipient("1.1")
    hub.add("sports", bystander)

    assert hub.deliver("news", FRAME) == 0
    bystander.outlet.assert_nothing_received()


def test_a_session_removed_from_a_topic_receives_no_more() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")
    hub.add("news", a)
    hub.add("news", b)
    hub.remove("news", a)

    assert hub.deliver("news", FRAME) == 1
    assert a.frames == []


def test_sessions_lists_a_topics_sessions() -> None:
    hub = Hub()
    a, b = Recipient("1.1"), Recipient("1.2")
    hub.add("news", a)
    hub.add("news", b)

    assert hub.sessions("news") == [a, b]
    assert hub.sessions("nothing") == []
    assert hub.topics() == 1


def test_a_session_may_leave_during_delivery() -> None:
    """A write that closes a session (a slow client) must not break the loop for the others."""
    hub = Hub()
    received: list[str] = []

    class Leaving(Recipient):
        def write(self, frame: bytes) -> None:
            received.append(self.socket_id)
            hub.remove("news", self)

    for socket_id in ("1.1", "1.2", "1.3"):
        hub.add("news", Leaving(socket_id))

    assert hub.deliver("news", FRAME) == 3
    assert received == ["1.1", "1.2", "1.3"]
    assert hub.topics() == 0
