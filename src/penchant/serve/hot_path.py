"""The hot path: ``GET /v1/users/{id}/recommendations`` answered without FastAPI's routing and
dependency solving when the request is plainly valid.

Routing through every included router and solving the key, header and query dependencies cost
about 0.35 ms a request here, more than the answer itself (usually a cached one). This ASGI layer
recognises the path, reads the few query parameters with the route's own limits, checks the key
with the same cache and the same rate limit, and writes the host's answer. Anything it is not sure
of (a parameter out of range, a repeated one, an unknown key, an error while answering) goes on to
the route unchanged, so answers and errors are the route's own; a test compares the two paths.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from penchant.errors import StoreUnavailableError
from penchant.serve.keys import bearer

PATH = re.compile(r"^/v1/users/([^/\x00]{1,255})/recommendations$")  # a NUL: the route's 422
ROUTE_PATH = "/v1/users/{user_id}/recommendations"
BOOLS = {"true": True, "1": True, "false": False, "0": False}
EPSILON = re.compile(r"^(0|1)?(\.[0-9]{1,6})?$")  # plain decimals in [0, 1]; anything else: the route decides
EXPLORE = ("epsilon-greedy", "thompson")  # the route's choices; anything else: its 422


class _Route:
    path = ROUTE_PATH  # what the metrics middleware labels the request with


class FastRecommendations:
    """ASGI middleware in front of FastAPI's routing; ``service`` (the app's
    :class:`~penchant.serve.deps.Service`) answers."""

    def __init__(self, app, service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = PATH.match(scope["path"])
            if match is not None and await self._answer(scope, send, match.group(1)):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope, send, user_id: str) -> bool:
        params = _params(scope["query_string"])
        if params is None:
            return False
        svc = self.service
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        try:  # a shared store's counters, read once for the key check and the answer (one round trip)
            counts = svc.store.fleet_read(user_id) if svc.store.shared else None
        except StoreUnavailableError:  # the route answers 503
            return False
        known, allowed, key_id = svc.keys.check(bearer(auth), "read", counts)
        if not (known and allowed):
            return False  # the route answers 401/403 with its headers
        try:
            admitted = svc.limiter.allow(key_id)
        except StoreUnavailableError:  # the shared limiter's database unreachable: the route answers 503
            return False
        scope["route"] = _Route
        if not admitted:
            await _send(send, 429, {"detail": f"over {svc.settings.rate_limit_per_minute} requests per minute for this key"})
            return True
        try:
            answer = svc.host.recommend(user_id, **params, counts=counts)
        except Exception:  # the route maps errors to answers; let it
            return False
        await _send(send, 200, answer)
        return True


def _params(query: bytes) -> dict | None:
    """The route's query parameters when each is plainly valid (else None: the route decides)."""
    out: dict = {"k": 10, "category": None, "exclude": None, "exclude_seen": True, "epsilon": None, "explore": None}
    seen: set[str] = set()
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value:
            return None
        if name == "exclude":
            out["exclude"] = (out["exclude"] or []) + [value]
            continue
        if name in seen:
            return None
        seen.add(name)
        if name == "k":
            if not (value.isdigit() and len(value) <= 4 and 1 <= int(value) <= 1000):
                return None
            out["k"] = int(value)
        elif name == "category":
            if not 1 <= len(value) <= 255:
                return None
            out["category"] = value
        elif name == "exclude_seen":
            if value not in BOOLS:
                return None
            out["exclude_seen"] = BOOLS[value]
        elif name == "epsilon":
            if not value or not EPSILON.match(value) or float(value) > 1:
                return None
            out["epsilon"] = float(value)
        elif name == "explore":
            if value not in EXPLORE:
                return None
            out["explore"] = value
    return out


async def _send(send, status: int, body: dict) -> None:
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
