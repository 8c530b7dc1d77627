"""Events and A-versus-B comparisons in; a user's stored events out."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from penchant.serve.deps import IdPath, Svc, read, write
from penchant.serve.schemas import ComparisonIn, EventIn, EventsInserted, Inserted

router = APIRouter()


@router.post("/v1/feedback", tags=["feedback"], dependencies=[write])
def post_feedback(svc: Svc, rows: list[EventIn]) -> EventsInserted:
    """Insert a batch of events; acknowledged after the commit; a retried ``event_id`` is
    counted as a duplicate, not stored twice. Users and items first named here are created and
    counted (``new_users``, ``new_items``), or refused with a 422 naming the first when the setting
    ``unknown_users`` / ``unknown_items`` is ``"reject"``; ``timestamp`` is unix seconds or ISO 8601."""
    svc.batch(rows)
    for k, r in enumerate(rows):
        if svc.settings.meaning(r.type) is None:
            raise HTTPException(422, f"body[{k}].type: unknown feedback type {r.type!r}; configured: "
                                     f"{', '.join(svc.settings.feedback_types)}")
    for field, kind, setting in (("user_id", "users", svc.settings.unknown_users),
                                 ("item_id", "items", svc.settings.unknown_items)):
        if setting == "reject":
            missing = svc.store.missing(kind, (getattr(r, field) for r in rows))
            if missing:
                k = next(k for k, r in enumerate(rows) if getattr(r, field) in missing)
                raise HTTPException(422, f"body[{k}].{field}: unknown {kind[:-1]} {getattr(rows[k], field)!r} "
                                         f"({len(missing)} unknown in this batch; unknown_{kind} = \"reject\": "
                                         f"PUT /v1/{kind} first); nothing was stored")
    now = time.time()
    out = svc.store.insert_feedback([r.model_dump() | {"timestamp": r.timestamp if r.timestamp is not None else now}
                                     for r in rows])
    svc.host.answers.user_changed(r.user_id for r in rows)
    svc.metrics.count("penchant_events_inserted_total", out["inserted"])
    svc.metrics.count("penchant_events_duplicate_total", out["duplicates"])
    return EventsInserted(**out)


@router.post("/v1/comparisons", tags=["feedback"], dependencies=[write])
def post_comparisons(svc: Svc, rows: list[ComparisonIn]) -> Inserted:
    """A-versus-B choices (``user_id`` optional): batch, idempotent by ``event_id``, committed
    before the answer; preference models (``pbt``, ``bt``, ``gpm``, ``pal``, ``vpl``) learn from them."""
    svc.batch(rows)
    for k, r in enumerate(rows):
        if r.winner == r.loser:
            raise HTTPException(422, f"body[{k}].loser: the same as the winner")
    now = time.time()
    return Inserted(**svc.store.insert_comparisons([r.model_dump() | {"timestamp": r.timestamp if r.timestamp is not None
                                                                      else now} for r in rows]))


@router.get("/v1/users/{user_id}/feedback", tags=["feedback"], dependencies=[read])
def user_feedback(svc: Svc, user_id: IdPath, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
    return svc.store.user_feedback(user_id, limit)
