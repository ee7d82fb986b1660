"""An async client of the Pusher HTTP API (reference §5), signed as §5.6 describes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

import aiohttp
import orjson

from ressonance.protocol.errors import RessonanceError
from ressonance.protocol.signing import sign_request

JsonObject = dict[str, object]


class RestError(RessonanceError):
    """The server refused a request; `status` is the HTTP status, `message` its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class RestClient:
    """Publish and query through a Ressonance (or Pusher) HTTP API.

    Use as `async with RestClient(app_id, key, secret, "http://127.0.0.1:6001") as api:`.
    """

    def __init__(
        self,
        app_id: str,
        key: str,
        secret: str,
        base_url: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.app_id, self.key, self.secret = app_id, key, secret
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: object,
        *,
        socket_id: str | None = None,
        info: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """Publish `event` to one or more channels; objects are JSON-encoded first.

        With `idempotency_key`, a retry with the same key publishes nothing again and gets
        the first answer. `info=["serial"]` asks for the serial each channel that keeps
        history gave the event (`answer["channels"][name]["serial"]`)."""
        body: JsonObject = {
            "name": event,
            "data": data if isinstance(data, str) else orjson.dumps(data).decode(),
            "channels": [channels] if isinstance(channels, str) else list(channels),
        }
        if socket_id is not None:
            body["socket_id"] = socket_id
        if info:
            body["info"] = ",".join(info)
        path = f"/apps/{self.app_id}/events"
        return await self._request("POST", path, body=body, idempotency_key=idempotency_key)

    async def trigger_batch(
        self, events: Sequence[Mapping[str, object]], *, idempotency_key: str | None = None
    ) -> JsonObject:
        """Publish several events: each a mapping with name, channel, data (socket_id, info)."""
        batch = [
            {
                **e,
                "data": e["data"]
                if isinstance(e["data"], str)
                else orjson.dumps(e["data"]).decode(),
            }
            for e in events
        ]
        return await self._request(
            "POST",
            f"/apps/{self.app_id}/batch_events",
            body={"batch": batch},
            idempotency_key=idempotency_key,
        )

    async def send_to_user(self, user_id: str, event: str, data: object) -> JsonObject:
        return await self.trigger(f"#server-to-user-{user_id}", event, data)

    async def channels(self, prefix: str = "", info: Sequence[str] = ()) -> JsonObject:
        params = {"filter_by_prefix": prefix} if prefix else {}
        if info:
            params["info"] = ",".join(info)
        return await self._request("GET", f"/apps/{self.app_id}/channels", params=params)

    async def channel(self, name: str, info: Sequence[str] = ()) -> JsonObject:
        params = {"info": ",".join(info)} if info else {}
        return await self._request("GET", f"/apps/{self.app_id}/channels/{name}", params=params)

    async def users(self, channel: str) -> list[str]:
        body = await self._request("GET", f"/apps/{self.app_id}/channels/{channel}/users")
        users = body.get("users")
        assert isinstance(users, list)
        return [str(user["id"]) for user in users]

    async def history(
        self,
        channel: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> JsonObject:
        """A page of a channel's history: `events` (serial, name, data, time_ms) in serial
        order, `first_serial`, `last_serial` and `has_more`. The newest page by default;
        `after` pages forward, `before` backward."""
        bounds = {"after": after, "before": before, "limit": limit}
        params = {name: str(value) for name, value in bounds.items() if value is not None}
        return await self._request(
            "GET", f"/apps/{self.app_id}/channels/{channel}/history", params=params
        )

    async def terminate_user_connections(self, user_id: str) -> JsonObject:
        path = f"/apps/{self.app_id}/users/{user_id}/terminate_connections"
        return await self._request("POST", path, body={})

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JsonObject | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        payload = orjson.dumps(body) if body is not None else b""
        query = {
            **(params or {}),
            "auth_key": self.key,
            "auth_timestamp": str(int(self._clock())),
            "auth_version": "1.0",
        }
        if payload:
            query["body_md5"] = hashlib.md5(payload).hexdigest()
        query["auth_signature"] = sign_request(self.secret, method, path, query)
        headers = {"Content-Type": "application/json"} if payload else {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        async with self._session.request(
            method, self.base_url + path, params=query, data=payload or None, headers=headers
        ) as response:
            raw = await response.read()
        try:
            decoded = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            decoded = {"error": raw.decode(errors="replace")}
        if response.status != 200:
            raise RestError(response.status, str(decoded.get("error", decoded)))
        if not isinstance(decoded, dict):
            raise RestError(response.status, "expected a JSON object")
        return decoded
