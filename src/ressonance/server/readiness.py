"""Whether a node is ready for traffic (`/readyz`), from what its parts report.

Ready means: started, not draining, the backbone connected and the shared state answering.
Each fact has one writer: the node marks itself started and stopped, the service marks it
draining on a stop signal, liveness reports whether the shared state answered its last
heartbeat, and the backbone reports its own health. The HTTP API and `/readyz` only read
`ready`.
"""

from __future__ import annotations

from ressonance.backbone.base import Backbone


class Readiness:
    """The readiness of one node."""

    __slots__ = ("_backbone", "draining", "started", "state_healthy")

    def __init__(self, backbone: Backbone) -> None:
        self._backbone = backbone
        self.started = False
        self.draining = False
        self.state_healthy = True

    @property
    def ready(self) -> bool:
        """Ready for traffic: started, not draining, and every shared backend reachable."""
        return self.started and not self.draining and self._backbone.healthy and self.state_healthy
