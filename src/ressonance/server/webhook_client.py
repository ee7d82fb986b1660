"""The HTTP client of webhooks: one POST per batch, to addresses the operator allows.

The second module that imports aiohttp (the first is the transport): its client, with a
resolver that drops every address `NetworkPolicy` refuses, so the connection goes only to an
address that was checked (a name that resolves to a refused address is refused; DNS rebinding
gains nothing). A URL whose host is an IP address is checked before connecting.

Rules:
1. No redirects (a 3xx is an answer that failed), no proxy from the environment, a total
   timeout per request, connections kept alive and reused per host.
2. `post` never raises for what the endpoint or the network does: it returns an `Answer`
   (status 0 when there was no HTTP answer). The error text names what happened (timeout,
   refused address, connection failure, status), never a header value or the body sent.
3. `Retry-After` (seconds or an HTTP date) is read on 429 and 503 answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ressonance.protocol.errors import RessonanceError
from ressonance.server.webhook_networks import NetworkPolicy

REFUSED: Final = "address refused by webhook_allowed_networks"
MAX_RETRY_AFTER: Final = 86_400.0


class RefusedAddressError(RessonanceError, OSError):
    """Every address of a host is one the network policy refuses (an OSError, as aiohttp
    expects of a resolver)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a webhook request got: the HTTP status (0: none), Retry-After, what went wrong."""

    status: int
    retry_after: float | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


class GuardedResolver(AbstractResolver):
    """Resolves names as aiohttp does, keeping only the addresses the policy allows."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [result for result in found if self.policy.allows(result["host"])]
        if not allowed:
            raise RefusedAddressError(REFUSED)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class WebhookClient:
    """POSTs webhook bodies; made and closed inside the running event loop."""

    def __init__(self, policy: NetworkPolicy, timeout: float) -> None:
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=False
        )

    async def close(self) -> None:
        await self._session.close()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        host = urlsplit(url).hostname or ""
        if _is_address(host) and not self.policy.allows(host):
            return Answer(0, error=REFUSED)
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False, timeout=self.timeout
            ) as response:
                await response.read()
                wait = None
                if response.status in (429, 503):
                    wait = retry_after(response.headers.get("Retry-After"), time.time())
                error = "" if 200 <= response.status < 300 else f"HTTP {response.status}"
                return Answer(response.status, wait, error)
        except TimeoutError:
            return Answer(0, error="timeout")
        except aiohttp.ClientConnectorError as exc:
            if _refused(exc):
                return Answer(0, error=REFUSED)
            return Answer(0, error=f"cannot connect: {exc.strerror or type(exc).__name__}")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return Answer(0, error=f"request failed: {type(exc).__name__}")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _refused(exc: BaseException) -> bool:
    """Whether the resolver refused every address (aiohttp wraps what it raised)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, RefusedAddressError):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False
