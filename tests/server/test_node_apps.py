"""Apps changed while connections are open (`SessionRegistry.apps_changed`, fed by the
app catalog)."""

from __future__ import annotations

import dataclasses

from ressonance.protocol.app import App
from ressonance.protocol.errors import ErrorCode
from ressonance.server.node import Node
from tests.server.clients import Client
from tests.server.conftest import APP, Connect

OTHER = dataclasses.replace(APP, id="2", key="other-key", secret="other-secret")


def change(node: Node, *after: App) -> None:
    """The catalog saw APP and OTHER become `after`."""
    node.registry.apps_changed({APP.id: APP, OTHER.id: OTHER}, {app.id: app for app in after})


async def test_a_disabled_apps_connections_are_closed_with_4003(
    node: Node, connect: Connect
) -> None:
    mine, other = connect(APP), Client.connect(node, OTHER)
    other.outlet.clear()

    change(node, dataclasses.replace(APP, enabled=False), OTHER)

    mine.outlet.assert_received("pusher:error", data={"code": 4003, "message": "App is disabled"})
    mine.outlet.assert_closed(ErrorCode.APP_DISABLED)
    other.outlet.assert_open()
    other.outlet.assert_nothing_received()


async def test_a_deleted_apps_connections_are_closed_with_4001(
    node: Node, connect: Connect
) -> None:
    mine = connect(APP)

    change(node, OTHER)

    mine.outlet.assert_received(
        "pusher:error", data={"code": 4001, "message": "App no longer exists"}
    )
    mine.outlet.assert_closed(ErrorCode.APP_NOT_FOUND)


async def test_a_changed_key_closes_its_connections_like_a_deleted_app(
    node: Node, connect: Connect
) -> None:
    mine = connect(APP)

    change(node, dataclasses.replace(APP, key="rotated-key"), OTHER)

    mine.outlet.assert_closed(ErrorCode.APP_NOT_FOUND)


async def test_other_changes_apply_to_live_connections(node: Node, connect: Connect) -> None:
    mine = connect(APP)
    rotated = dataclasses.replace(APP, secret="new-secret", enable_client_messages=False)

    change(node, rotated, OTHER)

    mine.outlet.assert_open()
    assert mine.session.connection.app == rotated
    # a subscription signed with the old secret is refused, one with the new secret is not
    await mine.subscribe("private-a")
    mine.outlet.assert_received("pusher:subscription_error", channel="private-a")
    mine.app = rotated
    await mine.subscribe("private-b")
    mine.outlet.assert_received("pusher_internal:subscription_succeeded", channel="private-b")


async def test_nothing_changed_touches_nothing(node: Node, connect: Connect) -> None:
    mine = connect(APP)

    change(node, APP, OTHER)

    mine.outlet.assert_open()
    mine.outlet.assert_nothing_received()
    assert mine.session.connection.app is APP
