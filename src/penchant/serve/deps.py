"""What every route depends on: the service's parts (store, model host, conversations, settings,
metrics), key checks by scope with a per-key rate limit, and the batch-size rule. Routes ask for
them through FastAPI dependencies; nothing is captured in closures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Query, Request

from penchant.serve.config import Settings
from penchant.serve.conversations import ConversationHost
from penchant.serve.host import ModelHost
from penchant.serve.keys import bearer, check_key
from penchant.serve.leases import RateLimiter, SharedRateLimiter
from penchant.serve.metrics import Metrics
from penchant.serve.schemas import Text
from penchant.serve.store import MAX_ID_LENGTH, Store

VersionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdPath = Annotated[Text, Path(min_length=1, max_length=MAX_ID_LENGTH)]  # no NUL: a 422, not a database error
#: an optional id in the query string (``after``, ``item_id``)
IdQuery = Annotated[Text | None, Query(min_length=1, max_length=MAX_ID_LENGTH)]


class KeyCache:
    """Verified keys remembered for ``ttl`` seconds, so a request costs no key lookup (no hash of
    the key); a revoked key stops working within ``ttl`` in other workers of one SQLite folder, at
    once in this process, and at once on every replica of a shared store (PostgreSQL: each check
    reads the store's count of revocations, one SELECT, :meth:`~penchant.serve.store.Store.keys_changed`)."""

    def __init__(self, store: Store, ttl: float = 1.0) -> None:
        self.store, self.ttl, self.seen = store, ttl, {}

    def check(self, key: str | None, needed: str,
              counts: tuple[int, int, int] | None = None) -> tuple[bool, bool, str | None]:
        """``counts``: :meth:`~penchant.serve.store.Store.fleet_read` made for this request (else read here)."""
        hit = self.seen.get((key, needed))
        now = time.monotonic()
        revoked = self.store.keys_changed() if counts is None else counts[1]
        if hit is not None and now - hit[0] < self.ttl and hit[1] == revoked:
            return hit[2]
        result = check_key(self.store, key, needed)
        if result[0]:
            self.seen[(key, needed)] = (now, revoked, result)
        return result
@dataclass
class Service:
    """The parts of one running service, kept on app.state.service."""

    store: Store
    host: ModelHost
    talks: ConversationHost
    settings: Settings
    metrics: Metrics
    keys: KeyCache
    limiter: RateLimiter | SharedRateLimiter  # shared through the database on PostgreSQL (penchant.serve.leases)

    def batch(self, rows: list) -> None:
        """422 for a batch over the configured size."""
        if len(rows) > self.settings.max_batch:
            raise HTTPException(422, f"body: at most {self.settings.max_batch} rows per batch, not {len(rows)}")


async def service(request: Request) -> Service:
    return request.app.state.service


Svc = Annotated[Service, Depends(service)]


def key_refusal(svc: Service, authorization: str | None, needed: str) -> tuple[HTTPException | None, str | None]:
    """(401 for a missing, unknown or revoked key, 403 for one without the ``needed`` scope, or None
    when the key may make the request, the rate limit aside; the key's id)."""
    known, allowed, key_id = svc.keys.check(bearer(authorization), needed)
    if not known:
        return HTTPException(401, "a valid API key is needed (Authorization: Bearer <key>)",
                             headers={"WWW-Authenticate": "Bearer"}), key_id
    if not allowed:
        return HTTPException(403, f"this key lacks the {needed!r} scope"), key_id
    return None, key_id


def scope(needed: str):
    """A dependency admitting keys with scope needed (or above) within their rate limit. Its
    ``scope`` attribute names the scope, so the body gate (:mod:`penchant.serve.limits`) checks the
    key before the request's body is read."""

    async def check(svc: Svc, authorization: Annotated[str | None, Header()] = None) -> str:
        refusal, key_id = key_refusal(svc, authorization, needed)
        if refusal is not None:
            raise refusal
        if not svc.limiter.allow(key_id):
            raise HTTPException(429, f"over {svc.settings.rate_limit_per_minute} requests per minute for this key")
        return key_id

    check.scope = needed  # type: ignore[attr-defined]
    return Depends(check)


read, write, admin = scope("read"), scope("write"), scope("admin")
