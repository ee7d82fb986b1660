"""The Ressonance Python SDK: an HTTP API client, auth helpers and an async WebSocket client.

Built on `ressonance.protocol` only, so signatures and message shapes are the server's own.
"""

from ressonance.client.auth import authenticate_user, authorize_channel
from ressonance.client.rest import RestClient, RestError
from ressonance.client.socket import ChannelMessage, PusherSocket, SubscriptionRefusedError

__all__ = [
    "ChannelMessage",
    "PusherSocket",
    "RestClient",
    "RestError",
    "SubscriptionRefusedError",
    "authenticate_user",
    "authorize_channel",
]
