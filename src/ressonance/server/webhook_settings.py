"""The operator's webhook settings (`[server] webhook_*`): delivery, retries and networks.

Defaults: retries for a day (Pusher gives up after 5 minutes), batches of up to 50 events
gathered for at most 50 ms, 4 requests at a time per endpoint, 10 s per request, Pusher's
3 s delay before channel_vacated and member_removed, and requests to public, private and
loopback addresses (never link-local or cloud metadata; server/webhook_networks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ressonance.server.webhook_networks import DEFAULT_ALLOWED

# [server] keys and the Settings field each one sets (config.py checks their types).
SECONDS: Final = (
    "webhook_retry_window",
    "webhook_retry_initial",
    "webhook_retry_max",
    "webhook_timeout",
    "webhook_batch_wait",
    "webhook_leave_delay",
)
COUNTS: Final = ("webhook_batch_size", "webhook_concurrency")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    retry_window: float = 86_400.0
    retry_initial: float = 1.0
    retry_max: float = 600.0
    timeout: float = 10.0
    batch_size: int = 50
    batch_wait: float = 0.05
    concurrency: int = 4
    leave_delay: float = 3.0
    allowed_networks: tuple[str, ...] = DEFAULT_ALLOWED
    # Not operator settings: how the sender works its lanes.
    lease_ttl: float = 10.0  # the node's (node_ttl): a lane's lease lasts as long
    poll_interval: float = 0.2  # an idle lane is read this often (a cluster's new events)
    flush_interval: float = 0.005  # buffered events wait at most this long to be written
    circuit_failures: int = 5
    read_ahead: int = 1000
    idle_release: float = 10.0  # an empty lane is let go after this long
